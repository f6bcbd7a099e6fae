"""Parse a uWSGI ``cache2`` option string (``name=c,items=20,blocksize=65536,...``).

:func:`parse` reads a line the way uWSGI 2.0 does (see docs/uwsgi-cache2-facts.rst §3
and §13): unknown keys and bare words are ignored, nothing is stripped
(``name=c, items=20`` has an option ``" items"``, which uWSGI ignores), flags count by
presence only (``purge_lru=0`` *enables* LRU), numbers are read like C ``strtoul`` (so
``64k`` is 64).

:func:`problems` lists where uWSGI departs from what a line says: it exits at start, it
starts but stores nothing, it reads a value other than the one written, or it ignores
part of the line. The doctor reports them all; ``parse(strict=True)``, for lines this
package is given in its own config (``UWSGICACHE_MEMORY``), raises the first as a
``ValueError``.
"""

from __future__ import annotations

import dataclasses
import difflib
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
# The hash functions uWSGI registers (core/hash.c, uwsgi_hash_algo_register_all); the
# last three do not give a key the same bucket twice.
HASHES = ("djb33x", "murmur2")
RANDOM_HASHES = ("random", "rand", "rr")
# What strtoul reads: leading C whitespace, a sign, digits.
_STRTOUL = re.compile(r"[ \t\n\v\f\r]*([+-]?)(\d*)")
_WHOLE_NUMBER = re.compile(r"[ \t\n\v\f\r]*\+?\d+[ \t\n\v\f\r]*")
_SUFFIX = re.compile(r"\s*(\d+)\s*([kmg])i?b?\s*", re.IGNORECASE)
_ULONG = 2**64
_OFF = ("0", "false", "no", "off", "")

# uWSGI's own defaults (core/cache.c).
DEFAULT_BLOCKSIZE = 65536
DEFAULT_KEYSIZE = 2048
DEFAULT_HASHSIZE = 65536

# What uWSGI does with a problem of a line (Problem.effect).
EXITS = "exits"  # it logs Problem.log and exits at start
STORES_NOTHING = "stores nothing"  # it starts, but no value can be stored and read back
MISREAD = "misread"  # it starts, with a value other than the one written
IGNORED = "ignored"  # it starts, ignoring part of the line


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing uWSGI does with a cache2 line other than what the line says.

    ``effect`` is :data:`EXITS`, :data:`STORES_NOTHING`, :data:`MISREAD` or
    :data:`IGNORED`; ``text`` says what uWSGI does and the fix; ``log`` is the start
    of the line uWSGI logs before it exits (empty when it logs none, or does not exit).
    """

    effect: str
    text: str
    log: str = ""


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
    hashsize: int = DEFAULT_HASHSIZE
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
    """Split like ``uwsgi_kvlist_parse``: ``,`` between items, ``\\`` escapes, the key
    up to the first ``=``; nothing is stripped (uWSGI compares keys as written).

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
        pairs.append((key, value if sep else None))
    return pairs


def loose_number(value: str) -> int:
    """``value`` as C ``strtoul`` reads it on 64-bit Linux: leading whitespace and
    digits, 0 without digits, a negative number wrapped modulo 2**64."""
    match = _STRTOUL.match(value)
    if match is None or not match.group(2):
        return 0
    number = min(int(match.group(2)), _ULONG - 1)
    return (-number) % _ULONG if match.group(1) == "-" else number


def _meant(key: str) -> str | None:
    """The option a near-miss key was probably meant as (``block-size``: blocksize)."""
    squashed = re.sub(r"[\s_-]", "", key.lower())
    for alias, canonical in CANONICAL.items():
        if alias.replace("_", "") == squashed:
            return canonical
    close = difflib.get_close_matches(key.strip().lower(), CANONICAL, n=1, cutoff=0.8)
    return CANONICAL[close[0]] if close else None


def _unknown(key: str, value: str | None) -> Problem:
    meant = _meant(key)
    hint = f"did you mean {meant}?" if meant else ""
    if key != key.strip():
        hint += " uWSGI keeps the spaces around ',' and '=' as part of the name"
    hint = f" ({hint.strip()})" if hint else ""
    bare = " and has no '='" if value is None else ""
    return Problem(IGNORED, f"{key!r} is not a cache2 option{hint}{bare}: uWSGI ignores it")


def _number(key: str, value: str) -> tuple[int, str]:
    """The number uWSGI reads from ``key=value``, and why it differs from the text
    (empty when it does not)."""
    read = loose_number(value)
    if _WHOLE_NUMBER.fullmatch(value):
        return read, ""
    if value.strip().startswith("-"):
        return read, (
            f"{key}={value} is read as {read} (strtoul wraps negative numbers around)"
        )
    suffix = _SUFFIX.fullmatch(value)
    if suffix:
        scale = 1024 ** ("kmg".index(suffix.group(2).lower()) + 1)
        fix = f"write {key}={int(suffix.group(1)) * scale}"
    else:
        fix = "write the number in full"
    return read, (
        f"{key}={value} is read as {read} (uWSGI reads numbers with strtoul: the leading "
        f"digits, no unit suffixes); {fix}"
    )


def problems(text: str, *, named: bool = True) -> list[Problem]:
    """What uWSGI 2.0 does with cache2 line ``text`` other than what it says.

    Problems with the effect :data:`EXITS` come in the order uWSGI checks them
    (docs/uwsgi-cache2-facts.rst §13), so the first one's ``log`` is the line uWSGI
    logs. ``named=False`` is for lines without ``name=`` (``UWSGICACHE_MEMORY``).
    """
    found: list[Problem] = []
    given: dict[str, tuple[str, str]] = {}
    for key, value in split(text):
        canonical = CANONICAL.get(key)
        if canonical is None:
            found.append(_unknown(key, value))
        elif value is None:
            write = f"{key}=1" if canonical in FLAGS else f"{key}=<value>"
            found.append(
                Problem(IGNORED, f"{key!r} has no '=': uWSGI ignores bare words; {write}")
            )
        else:
            if canonical in given:
                earlier = "=".join(given[canonical])
                found.append(
                    Problem(
                        IGNORED,
                        f"{earlier} and {key}={value} set the same option: uWSGI uses "
                        f"the last one; keep one",
                    )
                )
            given[canonical] = (key, value)
    for canonical, (key, value) in given.items():
        if canonical in FLAGS and value.strip().lower() in _OFF:
            found.append(
                Problem(
                    IGNORED,
                    f"{key}={value} turns {canonical} ON: uWSGI checks flags for presence "
                    f"only; leave the option out to turn it off",
                )
            )
    name = given.get("name", ("", ""))[1]
    exits: list[Problem] = []

    def exit_with(log: str, what: str, fix: str) -> None:
        exits.append(Problem(EXITS, f"{what}: uWSGI will not start ('{log}'); {fix}", log))

    def ignored(option: str) -> str:
        keys = [key for key, _value in split(text) if key not in CANONICAL]
        meant = [repr(key) for key in keys if _meant(key) == option]
        return f" ({', '.join(meant)} is ignored)" if meant else ""

    if named and "name" not in given:
        exit_with(
            "you have to specify a cache name",
            f"no name={ignored('name')}",
            "write name=<cache name>",
        )
    elif named and not name:
        found.append(
            Problem(
                MISREAD,
                "name= is empty: uWSGI starts a cache named '', which no "
                "UWSGICACHE_NAME can select; give the cache a name",
            )
        )
    elif name != name.strip():
        found.append(
            Problem(
                MISREAD,
                f"name={name!r} keeps its spaces in uWSGI: the cache is named "
                f"{name!r}; remove them",
            )
        )
    numbers: dict[str, int] = {}
    for canonical in NUMBERS:
        if canonical not in given:
            continue
        key, value = given[canonical]
        if canonical == "math_initial":  # strtol: a sign is fine
            if not re.fullmatch(r"\s*[+-]?\d+\s*", value):
                found.append(Problem(MISREAD, f"{key}={value} is not a whole number"))
            continue
        numbers[canonical], misread = _number(key, value)
        zero_exits = canonical in ("items", "blocksize", "blocks", "hashsize", "keysize")
        if misread and not (numbers[canonical] == 0 and zero_exits):
            found.append(Problem(MISREAD, misread))
    items = numbers.get("items", 0)
    items_text = "=".join(given["items"]) if "items" in given else ""
    if not items:
        exit_with(
            "you have to specify the maximum number of cache items",
            f"{items_text} is read as 0" if items_text else f"no items={ignored('items')}",
            "write items=N, the number of entries you need plus one",
        )
    for canonical in ("blocksize", "blocks"):
        if canonical in numbers and not numbers[canonical]:
            exit_with(
                f'invalid cache {canonical} for "{name}"',
                f"{'='.join(given[canonical])} is read as 0",
                "write a positive number"
                + (" or leave blocks out" if canonical == "blocks" else ""),
            )
    hash_name = given.get("hash", ("hash", "djb33x"))[1]
    if hash_name not in HASHES + RANDOM_HASHES:
        exit_with(
            f'invalid cache hash for "{name}"',
            f"hash={hash_name} is unknown",
            "use djb33x (the default) or murmur2",
        )
    if "hashsize" in numbers and not numbers["hashsize"]:
        exit_with(
            f'invalid cache hashsize for "{name}"',
            f"{'='.join(given['hashsize'])} is read as 0",
            "leave hashsize out",
        )
    keysize = numbers.get("keysize", DEFAULT_KEYSIZE)
    if not 1 <= keysize < 65536:
        exit_with(
            f'invalid cache keysize for "{name}"',
            f"{'='.join(given['keysize'])} is read as {keysize}",
            "keysize must be 1 to 65535",
        )
    blocks = numbers.get("blocks", items)
    if items and blocks and blocks < items:
        exit_with(
            f'invalid number of cache blocks for "{name}"',
            f"blocks={blocks} is below items={items}",
            "leave blocks out or raise it",
        )
    if given.get("sync") and numbers.get("hashsize", DEFAULT_HASHSIZE) != 65536:
        exits.append(
            Problem(
                EXITS,
                "sync= with hashsize other than 65536: uWSGI crashes at start "
                "(it clears 65536 hash buckets)",
            )
        )
    if items == 1:
        found.append(
            Problem(
                STORES_NOTHING,
                "items=1: uWSGI starts, but slot 0 is reserved, so every write is "
                "refused; set items to the number of entries you need plus one",
            )
        )
    if hash_name in RANDOM_HASHES:
        found.append(
            Problem(
                STORES_NOTHING,
                f"hash={hash_name}: uWSGI starts, but puts a key in a different bucket "
                f"each time, so every read misses; use djb33x (the default) or murmur2",
            )
        )
    return exits + found


def parse(text: str, *, strict: bool = False) -> Cache2Options:
    """Parse a cache2 option string as uWSGI reads it; ``strict=True`` raises a
    ``ValueError`` for the first of its :func:`problems` (a line without ``name=`` is
    fine then)."""
    if strict:
        for problem in problems(text, named=False):
            raise ValueError(f"cache2 line {text!r}: {problem.text}.")
    found: dict[str, str] = {}
    for key, value in split(text):
        canonical = CANONICAL.get(key)
        if canonical is not None and value is not None:
            found[canonical] = value
    values: dict[str, object] = {}
    for name in ("items", "blocksize", "blocks", "keysize", "hashsize"):
        if name in found:
            values[name] = loose_number(found[name])
    for name in ("bitmap", "purge_lru", "lazy_expire", "no_expire"):
        values[name] = name in found
    if "name" in found:
        values["name"] = found["name"]
    options = Cache2Options(raw=found, **values)  # type: ignore[arg-type]
    if "blocks" not in found:
        options = dataclasses.replace(options, blocks=options.items)
    return options
