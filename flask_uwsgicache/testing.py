"""A pytest plugin for apps that use flask-uwsgicache (its ``pytest11`` entry point).

The ``uwsgicache`` fixture gives your ``app`` fixture's app a fresh memory cache with
the limits of your production cache2 line (item count, block size, key size, bitmap,
LRU), and a clock you move by hand, for the duration of one test::

    def test_the_page_is_cached(client, uwsgicache):
        with uwsgicache.expect_miss(views.page):
            client.get("/page")
        with uwsgicache.expect_hit(views.page):
            client.get("/page")
        uwsgicache.advance(301)
        with uwsgicache.expect_miss(views.page):
            client.get("/page")

The cache2 line comes from, first to last: a ``@pytest.mark.uwsgicache("items=20,...")``
marker; the ``uwsgicache_line`` fixture if you override it; the ``uwsgicache_line`` ini
option; the cache2 line of the app's ``UWSGICACHE_NAME`` in the file named by the
``uwsgicache_ini`` ini option (your uWSGI ini); else ``items=1000``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from . import cache2
from .appcache import BoundCache
from .backends.memory import MemoryBackend
from .config import EXTENSION_KEY
from .extension import build_cache
from .ini import read_ini, values
from .viewcounts import shown_name
from .wrapping import function_name

_ABSENT: Any = object()


class CacheTester:
    """The test's cache (:attr:`cache`), its clock, and assertions about hits and misses."""

    def __init__(self, cache: BoundCache, now: float) -> None:
        self.cache = cache
        self.now = now
        cache.envelope.clock = self._clock
        if isinstance(cache.backend, MemoryBackend):
            cache.backend.clock = self._clock

    def _clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the cache: entries expire without sleeping."""
        self.now += seconds

    def assert_hit(self, key: str, value: Any = _ABSENT) -> None:
        """Fail unless ``key`` holds a live value (equal to ``value`` when given)."""
        found = self.cache.get(key, _ABSENT)
        assert found is not _ABSENT, f"expected a hit for {key!r}, got a miss"
        if value is not _ABSENT:
            assert found == value, f"{key!r} holds {found!r}, expected {value!r}"

    def assert_miss(self, key: str) -> None:
        """Fail if ``key`` holds a live value."""
        found = self.cache.get(key, _ABSENT)
        assert found is _ABSENT, f"expected a miss for {key!r}, found {found!r}"

    def counts(self, view: Callable[..., Any] | str) -> dict[str, int]:
        """``{"hits", "misses", "refused"}`` of a cached view or memoized function."""
        name = view if isinstance(view, str) else function_name(view)
        return self.cache.view_counts.totals().get(
            shown_name(name), {"hits": 0, "misses": 0, "refused": 0}
        )

    @contextlib.contextmanager
    def expect_hit(self, view: Callable[..., Any] | str, times: int = 1) -> Iterator[None]:
        """Fail unless the block makes ``view`` hit the cache ``times`` times, no miss."""
        yield from self._expect(view, hits=times, misses=0)

    @contextlib.contextmanager
    def expect_miss(self, view: Callable[..., Any] | str, times: int = 1) -> Iterator[None]:
        """Fail unless the block makes ``view`` miss ``times`` times, and never hit."""
        yield from self._expect(view, hits=0, misses=times)

    def _expect(
        self, view: Callable[..., Any] | str, hits: int, misses: int
    ) -> Iterator[None]:
        before = self.counts(view)
        yield
        after = self.counts(view)
        seen = (after["hits"] - before["hits"], after["misses"] - before["misses"])
        assert seen == (hits, misses), (
            f"expected {hits} hit(s) and {misses} miss(es) of "
            f"{view if isinstance(view, str) else function_name(view)}, "
            f"got {seen[0]} and {seen[1]}"
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("uwsgicache_line", "the cache2 line the uwsgicache fixture mirrors")
    parser.addini(
        "uwsgicache_ini", "a uWSGI ini whose cache2 line of the app's cache to use"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "uwsgicache(line): the cache2 line the uwsgicache fixture mirrors"
    )


def line_from_ini(path: str, name: str) -> str:
    """The cache2 line of cache ``name`` in the uWSGI ini ``path``."""
    for line in values(read_ini(path), "cache2"):
        if cache2.parse(line).name == name:
            return line
    raise ValueError(f"{path} has no cache2 line with name={name}")


@pytest.fixture
def uwsgicache_line(request: pytest.FixtureRequest, app: Flask) -> str:
    """The cache2 line the ``uwsgicache`` fixture mirrors (see the module docstring)."""
    line = request.config.getini("uwsgicache_line")
    if line:
        return str(line)
    ini = request.config.getini("uwsgicache_ini")
    if ini:
        path = request.config.rootpath / str(ini)
        return line_from_ini(str(path), app.config.get("UWSGICACHE_NAME", "default"))
    return "items=1000"


@pytest.fixture
def uwsgicache(
    request: pytest.FixtureRequest, app: Flask, uwsgicache_line: str
) -> Iterator[CacheTester]:
    """``app`` with a fresh memory cache that has the limits of ``uwsgicache_line``."""
    marker = request.node.get_closest_marker("uwsgicache")
    line = str(marker.args[0]) if marker is not None and marker.args else uwsgicache_line
    if EXTENSION_KEY not in app.extensions:
        raise RuntimeError(
            "the app has no UWSGICache: call init_app(app) in your app fixture"
        )
    original = app.extensions[EXTENSION_KEY]
    options = cache2.parse(line)  # loose: a production line, as uWSGI reads it
    memory_line = (
        f"items={options.items},blocksize={options.blocksize},blocks={options.blocks},"
        f"keysize={options.keysize}"
        + ",bitmap=1" * options.bitmap
        + ",purge_lru=1" * options.purge_lru
    )
    config = {
        **original.settings,
        "UWSGICACHE_BACKEND": "memory",
        "UWSGICACHE_MEMORY": memory_line,
    }
    cache = build_cache(config)
    app.extensions[EXTENSION_KEY] = cache
    try:
        yield CacheTester(cache, now=1_000_000.0)
    finally:
        app.extensions[EXTENSION_KEY] = original
