"""cache2 option strings, read the way uWSGI reads them, or strictly."""

from __future__ import annotations

import pytest

from flask_uwsgicache import options


def test_the_reference_deployments_line_parses() -> None:
    parsed = options.parse("name=default,items=20,blocksize=65536,keysize=60,bitmap=1")
    assert (parsed.name, parsed.items, parsed.keysize, parsed.bitmap) == (
        "default",
        20,
        60,
        True,
    )
    assert parsed.usable_items == 19
    assert parsed.max_value_size == 20 * 65536


def test_loose_parsing_matches_uwsgi() -> None:
    parsed = options.parse("name=c,max_items=10,blocksize=64k,purge_lru=0,lazy,max-items=5")
    assert parsed.items == 10
    assert parsed.blocksize == 64  # strtoul stops at "k"
    assert parsed.purge_lru is True  # flags count by presence
    assert parsed.lazy_expire is False  # a bare word is ignored


def test_backslash_escapes_a_comma() -> None:
    assert options.split(r"name=a\,b,items=2") == [("name", "a,b"), ("items", "2")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("items=10,purge_lru=0", "presence only"),
        ("items=10,blocksize=64k", "strtoul"),
        ("items=10,max-items=5", "did you mean max_items"),
        ("items=10,purge_lru", "bare words"),
        ("items=1", "reserves slot 0"),
        ("items=10,blocks=5", "invalid number of cache blocks"),
        ("items=10,keysize=70000", "keysize"),
    ],
)
def test_strict_parsing_explains_what_uwsgi_would_do(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options.parse(line, strict=True)
