"""How operations grow with the number of items in the store; run by benchmarks/run.py.

``uwsgi --cache2 name=growth,items=...,blocksize=512,keysize=128 --pyrun
benchmarks/growth.py`` with BENCH_OUT (a JSON file to write), BENCH_SIZES (item counts,
comma separated), BENCH_NUMBER (calls per round of a fast operation) and BENCH_SLOW_REPS
(timed calls of ``clear()``, which walks the store, and ``delete_edge``) in the
environment. At each size the store is emptied and filled with this package's ``set``
of small values, then this package (signed, as with a ``SECRET_KEY``) and Flask-Caching's
uWSGI backend do the same operations on it, interleaved; the sizes are measured
ascending, then descending, and each keeps its faster measurement.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import uwsgi
from flask import Flask
from flask_caching import Cache
from werkzeug.test import EnvironBuilder

from flask_uwsgicache import UWSGICache

CACHE = "growth"
FLASK_CACHING_UWSGI = "flask_caching.contrib.uwsgicache.UWSGICache"
SMALL = {"id": 42, "name": "a user name", "roles": ["admin", "editor"], "score": 3.5}
SAMPLE = 100  # keys each library reads and writes at every size, spread over the store
ROUNDS = 5
OURS, FLASK_CACHING = "ours", "flask-caching"
view_runs = {OURS: 0, FLASK_CACHING: 0}
Timer = Callable[[], float]  # one measurement: nanoseconds per call


class Setup:
    """The two apps on the growth cache: this package's and Flask-Caching's, each with
    one cached view (an anonymous GET of it is the "cached view" row)."""

    def __init__(self) -> None:
        self.ours_app = Flask("growth_ours")
        self.ours_app.config.update(SECRET_KEY="bench secret", UWSGICACHE_NAME=CACHE)
        self.ext = UWSGICache(self.ours_app)
        self.bound: Any = self.ours_app.extensions["uwsgicache"]
        self.fc_app = Flask("growth_flask_caching")
        self.fc = Cache(
            self.fc_app,
            config={"CACHE_TYPE": FLASK_CACHING_UWSGI, "CACHE_UWSGI_NAME": CACHE},
        )
        self.fc_backend: Any = self.fc.cache
        self.ours_app.add_url_rule("/view", "view", self.ext.cached(3600)(page(OURS)))
        self.fc_app.add_url_rule("/view", "view", self.fc.cached(3600)(page(FLASK_CACHING)))
        self.ours_keys: list[str] = []
        self.fc_keys: list[str] = []

    def fill(self, items: int) -> None:
        """Empty the store, then put ``items`` entries in it with this package's
        ``set``, a sample of them (and Flask-Caching's own sample) holding SMALL."""
        uwsgi.cache_clear(CACHE)
        sample = max(min(SAMPLE, items // 10), 1)
        ours_items = items - sample
        for number in range(ours_items):
            self.bound.set(f"k{number}", number)
        step = max(ours_items // sample, 1)
        self.ours_keys = [f"k{number}" for number in range(0, ours_items, step)][:sample]
        self.fc_keys = [f"fc{number}" for number in range(sample)]
        for key in self.ours_keys:
            self.bound.set(key, SMALL)
        for key in self.fc_keys:
            self.fc_backend.set(key, SMALL)


def page(library: str) -> Callable[[], str]:
    """A view that counts its runs (a cached view should run once per size)."""

    def view() -> str:
        view_runs[library] += 1
        return "a cached page"

    view.__name__ = f"view_{library.replace('-', '_')}"
    return view


def wsgi_get(app: Flask, path: str) -> Callable[[], bytes]:
    """One anonymous GET of ``path`` through the app's WSGI callable, as a server makes
    it (a prebuilt environ, copied per request); returns the body."""
    environ = EnvironBuilder(path=path).get_environ()

    def start_response(*_args: Any) -> Callable[[bytes], None]:
        return lambda _data: None

    def request() -> bytes:
        body: Iterable[bytes] = app(dict(environ), start_response)
        try:
            return b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return request


def per_call(operation: Callable[[], object], number: int) -> Timer:
    """Nanoseconds per call over ``number`` calls, after one warm-up call."""

    def timed() -> float:
        operation()
        started = time.perf_counter_ns()
        for _ in range(number):
            operation()
        return (time.perf_counter_ns() - started) / number

    return timed


def cycling(keys: list[str], operation: Callable[[str], object]) -> Callable[[], object]:
    """``operation`` on the next of ``keys`` at each call."""
    following = itertools.cycle(keys).__next__
    return lambda: operation(following())


def fast_timers(setup: Setup, number: int) -> dict[str, dict[str, Timer]]:
    """The operations that do not change what the store holds, by row and library."""
    bound, backend = setup.bound, setup.fc_backend
    return {
        "get": {
            OURS: per_call(cycling(setup.ours_keys, bound.get), number),
            FLASK_CACHING: per_call(cycling(setup.fc_keys, backend.get), number),
        },
        "set": {
            OURS: per_call(cycling(setup.ours_keys, lambda k: bound.set(k, SMALL)), number),
            FLASK_CACHING: per_call(
                cycling(setup.fc_keys, lambda k: backend.set(k, SMALL)), number
            ),
        },
        "cached view": {
            OURS: per_call(wsgi_get(setup.ours_app, "/view"), number),
            FLASK_CACHING: per_call(wsgi_get(setup.fc_app, "/view"), number),
        },
        "stats()": {OURS: per_call(bound.stats, number)},
    }


def fastest(timers: dict[str, dict[str, Timer]]) -> dict[str, dict[str, float]]:
    """Each timer's fastest of ``ROUNDS`` rounds, the timers interleaved in each round
    (the least disturbed round on a shared machine; every timer gets the same chances)."""
    best: dict[str, dict[str, float]] = {
        row: dict.fromkeys(by_library, float("inf")) for row, by_library in timers.items()
    }
    for _ in range(ROUNDS):
        for row, by_library in timers.items():
            for library, timer in by_library.items():
                best[row][library] = min(best[row][library], timer())
    return best


def time_delete_edge(setup: Setup, reps: int) -> float:
    """The fastest of ``reps`` calls of ``delete_edge`` for the cached view's path (the
    first forgets the stored page)."""
    with setup.ours_app.app_context():
        return per_call(lambda: setup.ext.delete_edge("/view"), reps)()


def time_clear(setup: Setup, items: int, reps: int) -> dict[str, float]:
    """The fastest of ``reps`` calls of each library's ``clear()`` on a store refilled
    to ``items`` before each call."""
    clears = {OURS: setup.bound.clear, FLASK_CACHING: setup.fc_backend.clear}
    best = dict.fromkeys(clears, float("inf"))
    for _ in range(reps):
        for library, clear in clears.items():
            setup.fill(items)
            started = time.perf_counter_ns()
            clear()
            best[library] = min(best[library], time.perf_counter_ns() - started)
    return best


def at_size(setup: Setup, items: int, number: int, slow_reps: int) -> dict[str, Any]:
    """Every row at ``items`` items: ns per call by library."""
    setup.fill(items)
    rows: dict[str, dict[str, float]] = fastest(fast_timers(setup, number))
    rows["delete_edge(path)"] = {OURS: time_delete_edge(setup, slow_reps)}
    rows["clear()"] = time_clear(setup, items, slow_reps)
    return rows


def both_ways(
    setup: Setup, sizes: list[int], number: int, slow_reps: int
) -> dict[str, dict[str, list[float]]]:
    """Every row at every size, sizes ascending then descending, each size keeping the
    faster of its two measurements: a drift of the machine's load during the run does
    not pass for growth. ``{row: {library: [ns per call at each size]}}``."""
    best: dict[int, dict[str, dict[str, float]]] = {}
    for items in [*sizes, *reversed(sizes)]:
        for row, by_library in at_size(setup, items, number, slow_reps).items():
            kept = best.setdefault(items, {}).setdefault(row, {})
            for library, value in by_library.items():
                kept[library] = min(kept.get(library, float("inf")), value)
    rows: dict[str, dict[str, list[float]]] = {}
    for items in sizes:
        for row, by_library in best[items].items():
            for library, value in by_library.items():
                rows.setdefault(row, {}).setdefault(library, []).append(value)
    return rows


def main() -> None:
    """Measure at every size and write the JSON; a failure exits non-zero (uWSGI
    would exit 0 otherwise)."""
    sizes = [int(size) for size in os.environ["BENCH_SIZES"].split(",")]
    number = int(os.environ.get("BENCH_NUMBER", "2000"))
    slow_reps = int(os.environ.get("BENCH_SLOW_REPS", "3"))
    setup = Setup()
    at_size(setup, sizes[0], number, 1)  # a warm-up, not recorded: the first size ran slow
    results = {"sizes": sizes, "rows": both_ways(setup, sizes, number, slow_reps)}
    # A cached view runs once per fill that is followed by requests: the warm-up and
    # each size, both ways.
    if max(view_runs.values()) > 2 * len(sizes) + 1:
        raise RuntimeError(f"the cached views ran too often: {view_runs}")
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(results, out)


try:
    main()
except BaseException:
    import sys
    import traceback

    traceback.print_exc()
    sys.exit(1)
