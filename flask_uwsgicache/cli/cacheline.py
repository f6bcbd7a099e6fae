"""What uWSGI makes of one cache2 line: capacity, memory, largest value, keys, expiry,
counters, and the line's problems (:func:`flask_uwsgicache.cache2.problems`)."""

from __future__ import annotations

from .. import cache2
from ..envelope import MAC_SIZE, TRAILER_SIZE
from ..ini import IniOption, flag, last, number
from ..keys import DIGEST_CHARS, HASH_MARK
from .report import ERROR, STARTS, STORES_NOTHING, WARNING, WILL_NOT_START, Section

# Per slot, uWSGI keeps 11 uint64 fields plus the key (struct uwsgi_cache_item).
_SLOT_OVERHEAD = 88


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


# The doctor's level for each effect of a cache2 line's problem (options.problems).
_LEVELS = {
    cache2.EXITS: ERROR,
    cache2.STORES_NOTHING: ERROR,
    cache2.MISREAD: ERROR,
    cache2.IGNORED: WARNING,
}


def explain_cache(line: str, where: str, instance: list[IniOption]) -> Section:
    """The section for one cache2 line; its ``outcome`` says whether uWSGI starts with
    it and whether this package can store anything in it."""
    parsed = cache2.parse(line)
    section = Section(f"cache {parsed.name!r} ({where}): {line}")
    found = cache2.problems(line)
    for problem in found:
        section.problem(_LEVELS[problem.effect], problem.text)
    exits = [problem for problem in found if problem.effect == cache2.EXITS]
    if exits:
        # uWSGI stops at the first check that fails (options.problems keeps its order).
        logs = f"logs '{exits[0].log}' and exits" if exits[0].log else "crashes"
        section.outcome = WILL_NOT_START
        section.fact("uWSGI", f"{WILL_NOT_START}: it {logs}")
        return section  # nothing more to explain
    stores_nothing = any(problem.effect == cache2.STORES_NOTHING for problem in found)
    raw = parsed.raw
    section.fact(
        "usable items", f"{parsed.usable_items} (items={parsed.items}; slot 0 is reserved)"
    )
    memory = (
        parsed.items * (_SLOT_OVERHEAD + parsed.keysize)
        + parsed.blocks * parsed.blocksize
        + (parsed.blocks + 7) // 8 * parsed.bitmap
        + parsed.hashsize * 8
    )
    section.fact(
        "memory",
        f"about {_size(memory)}: {parsed.items} slots x (88 + keysize) bytes, "
        f"{parsed.blocks} blocks x {parsed.blocksize} bytes, {parsed.hashsize} hash "
        f"buckets",
    )
    overhead = TRAILER_SIZE + MAC_SIZE
    if parsed.max_value_size <= overhead:
        stores_nothing = True
        section.problem(
            ERROR,
            f"values may be {parsed.max_value_size} bytes, and an entry alone takes "
            f"{TRAILER_SIZE} ({overhead} signed): uWSGI starts, but every write is "
            f"refused (as in unbit/uwsgi#1881); raise blocksize",
        )
    elif parsed.max_value_size < 1024:
        section.problem(
            WARNING,
            f"values over {parsed.max_value_size - overhead} bytes (signed) are refused: "
            f"is blocksize={parsed.blocksize} meant?",
        )
    section.fact(
        "largest value",
        f"{parsed.max_value_size} bytes "
        + ("(blocksize x blocks, bitmap)" if parsed.bitmap else "(one block, no bitmap)")
        + f"; an entry adds {TRAILER_SIZE} bytes ({overhead} signed)",
    )
    section.fact(
        "keys",
        f"up to {parsed.keysize} bytes; longer keys are hashed to fit (a readable head, "
        f"byte 0x{HASH_MARK.hex().upper()} and a {DIGEST_CHARS}-character digest)",
    )
    if parsed.keysize < 32:
        section.problem(
            WARNING,
            f"keysize={parsed.keysize} leaves little room: most keys will be hashed and "
            f"unreadable in uWSGI's tools (the app still works)",
        )
    section.fact("expiry", _expiry(parsed, instance, section))
    if parsed.bitmap:
        section.fact(
            "counters",
            "bitmap: uWSGI's cache_inc does not count here; the package's "
            "inc/dec do (under uWSGI's lock). Do not use cacheinc routes on it",
        )
    else:
        section.fact("counters", "exact with the package's inc/dec")
    if parsed.bitmap and raw.get("store"):
        section.problem(
            WARNING,
            "bitmap with store=: after a restart uWSGI does not rebuild the block bitmap "
            "and new items overwrite restored ones; drop bitmap or store",
        )
    for option in ("udp", "node", "sync"):
        if raw.get(option):
            section.problem(
                WARNING,
                f"{option}= replication is unauthenticated and lossy (no deletes, values "
                f"over 64 KiB truncated): entries are signed, keep it on a trusted net",
            )
    if "clear_on_full" in raw:
        section.problem(WARNING, "clear_on_full: a full cache drops every entry at once")
    section.outcome = STORES_NOTHING if stores_nothing else STARTS
    section.facts.insert(0, ("uWSGI", section.outcome))
    return section


def _expiry(
    parsed: cache2.Cache2Options, instance: list[IniOption], section: Section
) -> str:
    exact = "the package reads expired entries as misses either way"
    if parsed.purge_lru:
        return (
            f"purge_lru: uWSGI ignores expiry and evicts the least recently used; {exact}"
        )
    if parsed.lazy_expire:
        several = number(instance, "processes", "workers") > 1
        if several and last(instance, "lock-engine") != "ipcsem":
            section.problem(
                WARNING,
                "lazy_expire with several processes on the default lock engine can "
                "corrupt the cache: remove it or set lock-engine = ipcsem",
            )
        return f"lazy_expire: an expired item is deleted when a lookup meets it; {exact}"
    if parsed.no_expire or flag(instance, "cache-no-expire"):
        return (
            f"no sweeper (no_expire / cache-no-expire): slots free only when full; {exact}"
        )
    if not flag(instance, "master"):
        section.problem(
            WARNING,
            "no master: uWSGI never frees expired items (the package sweeps when the "
            "cache is full); set master = true",
        )
        return f"none in uWSGI (no master); {exact}"
    freq = last(instance, "cache-expire-freq", "3")
    return f"the master's sweeper frees expired items every {freq} s; {exact}"
