"""``flask uwsgicache doctor``: what uWSGI will really do with an ini's cache2 lines.

uWSGI reads cache2 lines loosely (docs/uwsgi-cache2-facts.rst §3): unknown and dashed
options are ignored, flags count by presence (``purge_lru=0`` turns LRU on), numbers
stop at the first non-digit (``blocksize=64k`` is 64 bytes), and only ``items - 1``
slots are usable. The doctor says for each cache whether uWSGI starts with its line and
whether this package can store anything in it (§13; ``tests/test_doctor_truth.py``
checks each verdict against the uWSGI binary), explains it (capacity, memory, largest
value, keys, expiry, counters) and reports problems: *errors* (uWSGI will not start, the
app cannot work, or uWSGI reads a value other than the one written) and *warnings*
(uWSGI ignores part of the line, or it runs but not as the line reads).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from .. import cache2
from ..edge import parse_config
from ..edgeroutes import EDGE_ROUTE_KEY, route_guards
from ..envelope import MAC_SIZE, TRAILER_SIZE
from ..ini import IniOption, last, read_ini, values
from ..keys import DIGEST_CHARS, HASH_MARK
from ..privacy import personal_headers

ERROR, WARNING = "error", "warning"
# What uWSGI does with a cache2 line (Section.outcome), as tests/test_doctor_truth.py
# checks against the uWSGI binary.
WILL_NOT_START = "will not start"
STORES_NOTHING = "starts, but this package can store nothing in the cache"
STARTS = "starts"
_OFF = ("0", "false", "no", "off")
# Per slot, uWSGI keeps 11 uint64 fields plus the key (struct uwsgi_cache_item).
_SLOT_OVERHEAD = 88
_ROUTE_CACHE = re.compile(r"\bcache(?:-continue)?:(?P<args>\S.*)")


@dataclasses.dataclass
class Section:
    """What the doctor says about one cache, or about the whole instance."""

    title: str
    facts: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    problems: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    outcome: str = ""  # for a cache: WILL_NOT_START, STORES_NOTHING or STARTS

    def fact(self, label: str, text: str) -> None:
        self.facts.append((label, text))

    def problem(self, level: str, text: str) -> None:
        self.problems.append((level, text))


@dataclasses.dataclass
class Report:
    """Every section; ``exit_code`` is 1 when there is an error, else 0."""

    sections: list[Section]

    def count(self, level: str) -> int:
        return sum(
            1 for s in self.sections for found, _text in s.problems if found == level
        )

    @property
    def exit_code(self) -> int:
        return 1 if self.count(ERROR) else 0

    def render(self) -> str:
        lines: list[str] = []
        for section in self.sections:
            lines.append(section.title)
            lines += [f"  {label:<14} {text}" for label, text in section.facts]
            lines += [f"  {level.upper()}: {text}" for level, text in section.problems]
            lines.append("")
        lines.append(f"{self.count(ERROR)} error(s), {self.count(WARNING)} warning(s)")
        return "\n".join(lines) + "\n"


def _on(options: list[IniOption], key: str) -> bool:
    value = last(options, key)
    return value is not None and value.lower() not in _OFF


def _count(options: list[IniOption], *keys: str) -> int:
    """A number option, at least 1; the first of ``keys`` that is set (aliases)."""
    for key in keys:
        value = last(options, key)
        if value is not None:
            return max(cache2.loose_number(value), 1)
    return 1


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
        several = _count(instance, "processes", "workers") > 1
        if several and last(instance, "lock-engine") != "ipcsem":
            section.problem(
                WARNING,
                "lazy_expire with several processes on the default lock engine can "
                "corrupt the cache: remove it or set lock-engine = ipcsem",
            )
        return f"lazy_expire: an expired item is deleted when a lookup meets it; {exact}"
    if parsed.no_expire or _on(instance, "cache-no-expire"):
        return (
            f"no sweeper (no_expire / cache-no-expire): slots free only when full; {exact}"
        )
    if not _on(instance, "master"):
        section.problem(
            WARNING,
            "no master: uWSGI never frees expired items (the package sweeps when the "
            "cache is full); set master = true",
        )
        return f"none in uWSGI (no master); {exact}"
    freq = last(instance, "cache-expire-freq", "3")
    return f"the master's sweeper frees expired items every {freq} s; {exact}"


def _routes(instance: list[IniOption]) -> dict[str, str]:
    """``{cache name: route line}`` for every route line with a ``cache`` action."""
    found: dict[str, str] = {}
    for option in instance:
        if not option.key.startswith("route"):
            continue
        match = _ROUTE_CACHE.search(option.value)
        if match:
            name = dict(
                (key, value or "") for key, value in cache2.split(match["args"])
            ).get("name", "")
            found[name] = option.where
    return found


def _instance(instance: list[IniOption], names: list[str]) -> Section:
    section = Section("instance")
    processes = _count(instance, "processes", "workers")
    threads = _count(instance, "threads")
    section.fact("workers", f"{processes} process(es) x {threads} thread(s); master: "
                 f"{'yes' if _on(instance, 'master') else 'no'}")  # fmt: skip
    engine = last(instance, "lock-engine")
    if engine == "ipcsem":
        section.fact("lock engine", "ipcsem: the kernel releases a dead worker's lock")
    else:
        section.fact(
            "lock engine", f"{engine or 'default (process-shared pthread rwlock)'}"
        )
        if processes * threads > 1:
            section.problem(
                WARNING,
                "a worker killed while holding a cache's write lock (harakiri, OOM) "
                "blocks every cache call forever (unbit/uwsgi#1202); set "
                "lock-engine = ipcsem",
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            section.problem(ERROR, f"two caches are named {name!r}: names must be unique")
        seen.add(name)
    for name, where in _routes(instance).items():
        if name not in seen:
            section.problem(
                ERROR, f"the route at {where} reads cache {name!r}, which does not exist"
            )
    return section


def _app(config: Mapping[str, Any], names: list[str], instance: list[IniOption]) -> Section:
    section = Section("this app")
    name = config.get("UWSGICACHE_NAME", "default")
    section.fact(
        "cache",
        f"{name!r} (UWSGICACHE_NAME), backend {config.get('UWSGICACHE_BACKEND', 'auto')!r}",
    )
    if name not in names:
        section.problem(
            ERROR,
            f"no cache2 line has name={name}: init_app fails under uWSGI; add "
            f"'{cache2.ini_hint(name)}'",
        )
    _responses(config, name, instance, section)
    routes = _routes(instance)
    credentials = personal_headers(config.get("UWSGICACHE_PERSONAL_HEADERS", ()))
    for content_type, edge in parse_config(config.get("UWSGICACHE_EDGE")).items():
        if edge in names and edge not in routes:
            section.problem(
                WARNING,
                f"edge cache {edge!r} ({content_type}) has no route line: it is filled "
                f"but never served",
            )
        elif edge in names:
            unsafe = _unsafe_edge_route(instance, edge, credentials)
            if unsafe is not None:
                section.problem(ERROR, unsafe)
            section.fact(
                "edge", f"{edge!r} serves {content_type} (route at {routes[edge]})"
            )
    return section


def _responses(
    config: Mapping[str, Any], name: str, instance: list[IniOption], section: Section
) -> None:
    """Where responses of cached views go (``UWSGICACHE_RESPONSES_NAME``, from the app's
    config or an ``env = FLASK_UWSGICACHE_RESPONSES_NAME=...`` line of the ini)."""
    caches = {
        parsed.name: parsed
        for parsed in (cache2.parse(line) for line in values(instance, "cache2"))
    }
    responses = config.get("UWSGICACHE_RESPONSES_NAME")
    for line in values(instance, "env"):
        key, _, value = line.partition("=")
        if key.strip() == "FLASK_UWSGICACHE_RESPONSES_NAME":
            responses = value.strip()
    if not responses or responses == name:
        section.fact(
            "responses",
            f"in {name!r} with the app's data: a client requesting unique URLs of a "
            f"cached view can fill it (UWSGICACHE_RESPONSES_NAME gives them a cache of "
            f"their own; see deploy/uwsgi.ini)",
        )
        return
    if responses not in caches:
        section.problem(
            ERROR,
            f"no cache2 line has name={responses} (UWSGICACHE_RESPONSES_NAME): init_app "
            f"fails under uWSGI; add "
            f"'{cache2.ini_hint(responses)},purge_lru=1'",
        )
        return
    section.fact("responses", f"in {responses!r} (UWSGICACHE_RESPONSES_NAME)")
    if not caches[responses].purge_lru:
        section.problem(
            WARNING,
            f"the responses' cache {responses!r} has no purge_lru: a flood of unique URLs "
            f"fills it and no new page is cached until entries expire; add purge_lru=1",
        )


def _unsafe_edge_route(
    instance: list[IniOption], edge: str, credentials: tuple[str, ...]
) -> str | None:
    """Why the route serving edge cache ``edge`` could answer the wrong request, with
    these personal headers (``UWSGICACHE_PERSONAL_HEADERS``)."""
    needed = route_guards(credentials)
    guards = set(needed)
    for option in instance:
        line = f"{option.key} = {option.value}"
        if line in guards:
            guards.discard(line)
            continue
        match = (
            _ROUTE_CACHE.search(option.value) if option.key.startswith("route") else None
        )
        if not match:
            continue
        args = dict((key, value or "") for key, value in cache2.split(match["args"]))
        if args.get("name") != edge:
            continue
        if args.get("key") != EDGE_ROUTE_KEY or guards:
            return (
                f"the route at {option.where} serves edge cache {edge!r} to requests "
                f"the app would answer differently: it must come after "
                f"{' and '.join(repr(guard) for guard in needed)} and use "
                f"key={EDGE_ROUTE_KEY} (see flask_uwsgicache.edge.route_lines)"
            )
        return None
    return None


def diagnose(instance: list[IniOption], config: Mapping[str, Any] | None = None) -> Report:
    """The report for an ini's options, and for an app's config when given."""
    lines = [option for option in instance if option.key == "cache2"]
    sections = [explain_cache(option.value, option.where, instance) for option in lines]
    names = [cache2.parse(option.value).name for option in lines]
    legacy = last(instance, "cache")
    if legacy is not None:
        names.insert(0, "default")
        blocksize = last(instance, "cache-blocksize", "65536")
        sections.insert(
            0,
            explain_cache(
                f"name=default,items={legacy},blocksize={blocksize}", "--cache", instance
            ),
        )
    top = _instance(instance, names)
    if not names:
        top.problem(
            ERROR,
            f"no cache2 line: add '{cache2.ini_hint('default')}'",
        )
    sections.append(top)
    if config is not None:
        sections.append(_app(config, names, instance))
    return Report(sections)


def check(config: Mapping[str, Any], ini: str | None = None) -> Report:
    """The doctor's report for an app's config, with the ini it is served with if given."""
    if ini is not None:
        return diagnose(read_ini(ini), config)
    section = Section("this app (give --ini FILE to check uWSGI's side as well)")
    section.fact("cache", f"{config.get('UWSGICACHE_NAME', 'default')!r} (UWSGICACHE_NAME)")
    for key, parse in (
        ("UWSGICACHE_MEMORY", lambda value: cache2.parse(str(value), strict=True)),
        ("UWSGICACHE_EDGE", parse_config),
    ):
        try:
            parse(config.get(key))
        except ValueError as error:
            section.problem(ERROR, f"{key}: {error}")
    return Report([section])
