"""cache2 option strings, read the way uWSGI reads them, or strictly."""

from __future__ import annotations

import pytest

from flask_uwsgicache import cache2


def test_the_reference_deployments_line_parses() -> None:
    parsed = cache2.parse("name=default,items=20,blocksize=65536,keysize=60,bitmap=1")
    assert (parsed.name, parsed.items, parsed.keysize, parsed.bitmap) == (
        "default",
        20,
        60,
        True,
    )
    assert parsed.usable_items == 19
    assert parsed.max_value_size == 20 * 65536


def test_loose_parsing_matches_uwsgi() -> None:
    parsed = cache2.parse("name=c,max_items=10,blocksize=64k,purge_lru=0,lazy,max-items=5")
    assert parsed.items == 10
    assert parsed.blocksize == 64  # strtoul stops at "k"
    assert parsed.purge_lru is True  # flags count by presence
    assert parsed.lazy_expire is False  # a bare word is ignored


def test_backslash_escapes_a_comma() -> None:
    assert cache2.split(r"name=a\,b,items=2") == [("name", "a,b"), ("items", "2")]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("items=10,purge_lru=0", "presence only"),
        ("items=10,blocksize=64k", "strtoul"),
        ("items=10,max-items=5", "did you mean items"),
        ("items=10,purge_lru", "bare words"),
        ("items=1", "slot 0 is reserved, so every write is refused"),
        ("items=10,blocks=5", "invalid number of cache blocks"),
        ("items=10,keysize=70000", "keysize"),
        ("items=10, blocksize=4096", "' blocksize' is not a cache2 option"),
    ],
)
def test_strict_parsing_explains_what_uwsgi_would_do(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cache2.parse(line, strict=True)


def test_nothing_is_stripped_around_commas_and_equals() -> None:
    # uwsgi_kvlist_parse compares keys as written: " items" is not "items".
    assert cache2.split("name=c , items=20") == [("name", "c "), (" items", "20")]
    parsed = cache2.parse("name=c , items=20")
    assert (parsed.name, parsed.items) == ("c ", 0)


def test_numbers_are_read_like_strtoul() -> None:
    assert [cache2.loose_number(text) for text in (" 20", "+5", "64k", "abc", "")] == [
        20,
        5,
        64,
        0,
        0,
    ]
    assert cache2.loose_number("-1") == 2**64 - 1  # wrapped around, as in C


@pytest.mark.parametrize(
    ("key", "meant"),
    [
        ("block-size", "blocksize"),
        ("max-items", "items"),
        ("purge-lru", "purge_lru"),
        (" items", "items"),
        ("Lazy-Expire", "lazy_expire"),
        ("itmes", "items"),
    ],
)
def test_near_misses_get_a_did_you_mean(key: str, meant: str) -> None:
    (problem,) = cache2.problems(f"name=c,items=10,{key}=1")
    assert problem.effect == cache2.IGNORED
    assert f"did you mean {meant}?" in problem.text


def test_an_unrelated_key_gets_no_guess() -> None:
    (problem,) = cache2.problems("name=c,items=10,colour=blue")
    assert "did you mean" not in problem.text


def test_a_bad_items_is_fixed_with_items() -> None:
    (problem,) = cache2.problems("name=c,items=abc")
    assert problem.effect == cache2.EXITS
    assert problem.log == "you have to specify the maximum number of cache items"
    assert "write items=N" in problem.text and "blocksize" not in problem.text


def test_a_unit_suffix_gets_the_number_in_full() -> None:
    (problem,) = cache2.problems("name=c,items=10,blocksize=64k")
    assert problem.effect == cache2.MISREAD
    assert "read as 64" in problem.text and "write blocksize=65536" in problem.text


@pytest.mark.parametrize(
    ("line", "effect"),
    [
        ("name=c,items=1", cache2.STORES_NOTHING),
        ("name=c,items=10,hash=random", cache2.STORES_NOTHING),
        ("name=c,items=10,hash=md5", cache2.EXITS),
        ("name=c,items=10,blocks=0", cache2.EXITS),
        ("name=c,items=10,hashsize=0", cache2.EXITS),
        ("name=c,items=10,keysize=65536", cache2.EXITS),
        ("name=,items=10", cache2.MISREAD),
        ("name=c,items=10,items=20", cache2.IGNORED),
    ],
)
def test_each_problem_says_what_uwsgi_does(line: str, effect: str) -> None:
    assert [problem.effect for problem in cache2.problems(line)] == [effect]


def test_uwsgi_logs_only_its_first_failed_check() -> None:
    # uwsgi_cache_create checks name, then items: the doctor quotes the name's log.
    first, second = cache2.problems("items=0")
    assert first.log == "you have to specify a cache name"
    assert second.log == "you have to specify the maximum number of cache items"


def test_a_sound_line_has_no_problems() -> None:
    assert (
        cache2.problems("name=default,items=20,blocksize=65536,keysize=60,bitmap=1") == []
    )
