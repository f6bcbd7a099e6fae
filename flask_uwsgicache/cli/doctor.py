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

import re
from collections.abc import Mapping
from typing import Any

from .. import cache2
from ..edge import parse_config
from ..edgeroutes import EDGE_ROUTE_KEY, route_guards
from ..ini import IniOption, flag, last, number, read_ini, values
from ..privacy import personal_headers
from .cacheline import explain_cache
from .report import (
    ERROR,
    WARNING,
    Report,
    Section,
)

_ROUTE_CACHE = re.compile(r"\bcache(?:-continue)?:(?P<args>\S.*)")


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
    processes = number(instance, "processes", "workers")
    threads = number(instance, "threads")
    section.fact("workers", f"{processes} process(es) x {threads} thread(s); master: "
                 f"{'yes' if flag(instance, 'master') else 'no'}")  # fmt: skip
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
