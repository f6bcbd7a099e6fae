"""Parse a uWSGI ``cache2`` option string (``name=c,items=20,blocksize=65536,...``).

Two modes. ``strict=False`` reads a line the way uWSGI 2.0 does (see
docs/uwsgi-cache2-facts.rst §3): unknown keys and bare words are ignored, flags count by
presence only (``purge_lru=0`` *enables* LRU), numbers are read like C ``strtoul`` (so
``64k`` is 64). ``strict=True`` is for lines this package is given in its own config
(``UWSGICACHE_MEMORY``): everything uWSGI would silently misread is a ``ValueError`` that
says what uWSGI would do and how to write it instead.
"""

from __future__ import annotations

import dataclasses
import re

# uWSGI's names for each option (core/cache.c, uwsgi_cache_create), canonical name first.
NUMBERS = {
    "items": ("items", "max_items", "maxitems"),
    "blocksize": ("blocksize",),
    "blocks": ("blocks",),
    "keysize": ("keysize", "key_size"),
    "hashsize": ("hashsize", "hash_size"),
    "store_sync": ("store_sync", "storesync"),
    "sweep_on_full": ("sweep_on_full",),
    "math_initial": ("math_initial",),
}
FLAGS = {
    "bitmap": ("bitmap",),
    "purge_lru": ("purge_lru", "lru"),
    "lazy_expire": ("lazy_expire", "lazyexpire", "lazy"),
    "ignore_full": ("ignore_full",),
    "clear_on_full": ("clear_on_full",),
    "no_expire": ("no_expire",),
    "lastmod": ("lastmod",),
    "store_delete": ("store_delete", "storedelete"),
}
STRINGS = {
    "name": ("name",),
    "hash": ("hash",),
    "store": ("store",),
    "node": ("node", "nodes"),
    "sync": ("sync",),
    "udp": ("udp", "udp_servers", "udp_server", "udpservers", "udpserver"),
}
CANONICAL = {
    alias: name
    for table in (NUMBERS, FLAGS, STRINGS)
    for name, aliases in table.items()
    for alias in aliases
}
_LEADING_DIGITS = re.compile(r"\s*\+?(\d*)")

# uWSGI's own defaults (core/cache.c).
DEFAULT_BLOCKSIZE = 65536
DEFAULT_KEYSIZE = 2048


@dataclasses.dataclass(frozen=True)
class Cache2Options:
    """One cache2 line, with uWSGI's defaults applied."""

    name: str = "default"
    items: int = 0
    blocksize: int = DEFAULT_BLOCKSIZE
    blocks: int = 0
    keysize: int = DEFAULT_KEYSIZE
    bitmap: bool = False
    purge_lru: bool = False
    lazy_expire: bool = False
    no_expire: bool = False
    raw: dict[str, str] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def usable_items(self) -> int:
        """Items that can be stored: uWSGI reserves slot 0, so ``items - 1``."""
        return max(self.items - 1, 0)

    @property
    def max_value_size(self) -> int:
        """Largest value in bytes: one block, or every block in bitmap mode."""
        return self.blocksize * self.blocks if self.bitmap else self.blocksize


def ini_hint(name: str) -> str:
    """The ini line that creates cache ``name``, for messages that suggest one."""
    return f"cache2 = name={name},items=1000,blocksize=65536,keysize=250"


def split(text: str) -> list[tuple[str, str | None]]:
    """Split like ``uwsgi_kvlist_parse``: ``,`` between items, ``\\`` escapes.

    Returns ``(key, value)`` pairs; ``value`` is ``None`` for a bare word.
    """
    items: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    pairs: list[tuple[str, str | None]] = []
    for item in items:
        if not item:
            continue
        key, sep, value = item.partition("=")
        pairs.append((key.strip(), value if sep else None))
    return pairs


def _strict_number(key: str, value: str) -> int:
    if not value.isdigit():
        raise ValueError(
            f"cache2 option {key}={value!r} is not a plain number of bytes or items: "
            f"uWSGI reads it with strtoul and takes only the leading digits "
            f"({loose_number(value)}), with no unit suffixes. Write the full number."
        )
    return int(value)


def loose_number(value: str) -> int:
    match = _LEADING_DIGITS.match(value)
    return int(match.group(1)) if match and match.group(1) else 0


def parse(text: str, *, strict: bool = False) -> Cache2Options:
    """Parse a cache2 option string; see the module docstring for ``strict``."""
    found: dict[str, str | None] = {}
    for key, value in split(text):
        canonical = CANONICAL.get(key)
        if canonical is None:
            if strict:
                hint = key.replace("-", "_")
                known = f" (did you mean {hint}?)" if hint in CANONICAL else ""
                raise ValueError(
                    f"unknown cache2 option {key!r}{known}: uWSGI ignores unknown "
                    f"options without a warning. Known options: "
                    f"{', '.join(sorted(CANONICAL))}."
                )
            continue
        if value is None:
            if strict:
                raise ValueError(
                    f"cache2 option {key!r} has no '=': uWSGI ignores bare words. "
                    f"Write {key}=1."
                )
            continue
        if strict and canonical in FLAGS and value.lower() in ("0", "false", "no", "off"):
            raise ValueError(
                f"cache2 flag {key}={value} would turn {canonical} ON: uWSGI checks flags "
                f"for presence only. Leave the option out to turn it off."
            )
        found[canonical] = value
    number = _strict_number if strict else (lambda _key, value: loose_number(value))
    values: dict[str, object] = {}
    for name in ("items", "blocksize", "blocks", "keysize"):
        text_value = found.get(name)
        if text_value is not None:
            values[name] = number(name, text_value)
    for name in ("bitmap", "purge_lru", "lazy_expire", "no_expire"):
        values[name] = name in found
    if found.get("name"):
        values["name"] = found["name"]
    options = Cache2Options(
        raw={key: value or "" for key, value in found.items()},
        **values,  # type: ignore[arg-type]
    )
    if not options.blocks:
        options = dataclasses.replace(options, blocks=options.items)
    if strict:
        _check(options)
    return options


def _check(options: Cache2Options) -> None:
    """The checks uWSGI makes at startup (it exits on each), as ``ValueError``."""
    if options.items < 2:
        raise ValueError(
            f"cache2 items={options.items} leaves no usable slot: uWSGI reserves slot 0. "
            f"Set items to the number of entries you need plus one."
        )
    if options.blocks < options.items:
        raise ValueError(
            f"cache2 blocks={options.blocks} is below items={options.items}: uWSGI exits "
            f"with 'invalid number of cache blocks'. Leave blocks out or raise it."
        )
    if options.blocksize < 1:
        raise ValueError("cache2 blocksize must be at least 1 byte.")
    if not 1 <= options.keysize < 65536:
        raise ValueError(
            f"cache2 keysize={options.keysize} is out of range: it must be 1 to 65535."
        )
