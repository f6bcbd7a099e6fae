"""Checks that only make sense inside a real uWSGI process.

Not collected by a plain pytest run (the name does not start with ``test_``):
``tests/test_uwsgi.py`` runs this file inside uWSGI through ``tests/uwsgi_runner.py``.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from typing import Any

import pytest
import uwsgi
from flask import Flask

from flask_uwsgicache import BoundCache, UWSGICache, edgeindex
from flask_uwsgicache.backends.uwsgi import UWSGIBackend

CACHE = os.environ.get("UWSGICACHE_TEST_CACHE", "default")


def test_auto_picks_the_uwsgi_backend_and_logs_it(
    caplog: pytest.LogCaptureFixture, make_app: Callable[..., Flask]
) -> None:
    caplog.set_level("INFO", logger="flask_uwsgicache")
    app = make_app(UWSGICACHE_NAME=CACHE)
    UWSGICache(app)
    assert isinstance(app.extensions["uwsgicache"].backend, UWSGIBackend)
    assert "using the uwsgi backend" in caplog.text


@pytest.mark.parametrize("backend", ["auto", "uwsgi"])
def test_an_unknown_cache_name_fails_at_init_app(
    backend: str, make_app: Callable[..., Flask]
) -> None:
    app = make_app(UWSGICACHE_BACKEND=backend, UWSGICACHE_NAME="no_such_cache")
    with pytest.raises(ValueError, match="cache2 = name=no_such_cache,items="):
        UWSGICache(app)


def test_a_remote_cache_name_is_refused(make_app: Callable[..., Flask]) -> None:
    app = make_app(UWSGICACHE_NAME="c@127.0.0.1:1")
    with pytest.raises(ValueError, match="UWSGICACHE_NAME"):
        UWSGICache(app)


def test_init_app_fails_without_any_cache2(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    with pytest.raises(ValueError, match="has no cache named 'default'"):
        UWSGICache(app)


def test_the_limits_come_from_the_cache2_line() -> None:
    line = uwsgi.opt["cache2"]
    assert isinstance(line, bytes)
    backend = UWSGIBackend(CACHE)
    for option in line.decode().split(","):
        name, _, value = option.partition("=")
        if name in ("items", "blocksize", "keysize"):
            assert getattr(backend.options, name) == int(value)


def test_every_cache_line_is_read() -> None:
    # Run with tests/test_uwsgi.py's EVERY_LINE only. uwsgi.opt shows only the last line
    # (unbit/uwsgi#1374); uWSGI's cache structure has them all.
    assert uwsgi.opt["cache2"] == b"name=last,items=7,blocksize=4096"
    first, middle, last = (
        UWSGIBackend(name).options for name in ("first", "middle", "last")
    )
    assert (first.items, first.blocksize, first.keysize, first.blocks) == (30, 1000, 70, 90)
    assert first.bitmap and not first.purge_lru
    assert (middle.items, middle.keysize, middle.blocksize) == (12, 300, 65536)
    assert middle.purge_lru and middle.no_expire and not middle.bitmap
    assert (last.items, last.blocksize, last.keysize) == (7, 4096, 2048)
    assert not (last.purge_lru or last.lazy_expire or last.no_expire)


def test_uwsgi_keeps_an_expired_entry_that_reads_as_a_miss(cache: BoundCache) -> None:
    cache.set("k", "v", timeout=1)
    time.sleep(1.2)
    # Without a master (and with purge_lru) uWSGI still holds the item...
    assert uwsgi.cache_exists(cache.storage_key("k"), CACHE)
    # ...but it is a miss for every reader.
    assert cache.get("k") is None


def test_a_raw_cache_update_under_a_live_key_is_rejected(cache: BoundCache) -> None:
    cache.set("k", {"v": 1})
    evil = b"cos\nsystem\n(S'echo pwned > /tmp/flask-uwsgicache-pwned'\ntR."
    uwsgi.cache_update(cache.storage_key("k"), evil, 0, CACHE)
    uwsgi.cache_update(cache.storage_key("other"), pickle.dumps(["x"]), 0, CACHE)
    assert cache.get("k") is None
    assert cache.get("other") is None
    assert not os.path.exists("/tmp/flask-uwsgicache-pwned")


def test_a_memory_backend_under_uwsgi_warns_that_it_is_not_shared(
    caplog: pytest.LogCaptureFixture, make_app: Callable[..., Flask]
) -> None:
    UWSGICache(make_app(UWSGICACHE_BACKEND="memory"))
    assert "not shared" in caplog.text


@pytest.mark.parametrize("implementation", ["c", "python"], indirect=True)
def test_a_sweep_of_a_full_cache_reads_a_window_not_every_value(
    implementation: str, cache: BoundCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_uwsgicache.backends import uwsgi as uwsgi_backend

    monkeypatch.setattr(uwsgi_backend, "SWEEP_READS", 3)
    backend = cache.backend
    assert isinstance(backend, UWSGIBackend)
    if backend.options.purge_lru:
        # uWSGI evicts instead of refusing: no write ever waits for a sweep.
        assert all(cache.set(f"new{number}", number) for number in range(300))
        return
    number = 0
    while number < 5000 and cache.set(f"dead{number}", number, timeout=1):
        number += 1
    assert number >= 7  # the cache is full
    time.sleep(1.2)  # all of ours are dead now (uWSGI keeps them: no master)
    reads: list[bytes] = []
    real_get = backend.get

    def get(key: bytes) -> bytes | None:
        reads.append(key)
        return real_get(key)

    monkeypatch.setattr(backend, "get", get)
    assert cache.set("fresh", 1) is True  # a sweep made room
    assert 1 <= len(reads) <= 3  # ...reading 3 of the full cache's values
    first = set(reads)
    reads.clear()
    time.sleep(1.05)  # the next sweep (at most one a second) reads the next window
    while number < 10000 and cache.set(f"more{number}", number):
        number += 1
    assert 1 <= len(reads) <= 3 and not first & set(reads)


def test_the_c_speedups_run_inside_uwsgi(speedups: Any, cache: BoundCache) -> None:
    # Skips locally without them, fails under CI: there the contract suite above must
    # have run the C get and set against uWSGI's cache (and the Python ones: it is
    # parametrized over both).
    assert cache.describe()["speedups"] is True
    assert type(cache.get).__name__ == "builtin_function_or_method"
    assert cache.backend.fast_update() is uwsgi.cache_update  # the C write path


@pytest.mark.parametrize("implementation", ["c", "python"], indirect=True)
def test_a_refused_write_asks_uwsgi_once(implementation: str, cache: BoundCache) -> None:
    backend = cache.backend
    assert isinstance(backend, UWSGIBackend) and backend._structure is not None
    if backend.options.purge_lru:
        # uWSGI evicts (and counts each eviction as "full"): every write goes in.
        assert all(cache.set(f"new{number}", number) for number in range(300))
        return
    number = 0
    while number < 5000 and cache.set(f"fill{number}", number):
        number += 1
    assert cache.delete("fill0")  # room for one, and the next write goes straight in
    assert cache.set("one more", 1) is True
    refused = backend._structure.full  # uWSGI's count of refused writes ("full")
    assert cache.set("one too many", 1) is False
    # One refusal, one "DANGER cache is FULL" line, one more in uWSGI's stats.
    assert backend._structure.full == refused + 1


def test_an_edge_entry_is_found_by_its_paths_records_alone() -> None:
    uwsgi.cache_clear(CACHE)
    keys = [b"|a.test/p", b"|a.test/p?x=1", b"|b.test/p"]
    for key in keys:
        taken = edgeindex.take(CACHE, "/p", key, 60)
        assert taken is not None and taken[0].startswith(b"\0")
        assert uwsgi.cache_update(key, b"body", 60, CACHE)
        assert edgeindex.keep(CACHE, *taken, 60)
    assert uwsgi.cache_update(b"|a.test/q", b"other path", 60, CACHE)
    # Storing the same entry again takes its own record over, not a new one.
    again = edgeindex.take(CACHE, "p", keys[0], 60)
    assert again is not None and again[0] == edgeindex.records("/p")[0]
    assert edgeindex.forget(CACHE, "/p") == len(keys)
    assert [uwsgi.cache_exists(key, CACHE) for key in keys] == [None] * len(keys)
    assert not any(uwsgi.cache_exists(record, CACHE) for record in edgeindex.records("/p"))
    assert uwsgi.cache_get(b"|a.test/q", CACHE) == b"other path"  # the control
    assert edgeindex.forget(CACHE, "/p") == 0


def test_a_store_whose_record_was_taken_meanwhile_undoes_its_write() -> None:
    uwsgi.cache_clear(CACHE)
    first = edgeindex.take(CACHE, "/p", b"|a.test/p", 60)
    assert first is not None
    edgeindex.forget(CACHE, "/p")  # a delete between taking the record and keeping it
    assert not edgeindex.keep(CACHE, *first, 60)
    # A later store of the same entry takes the record over: the earlier one (computed
    # before a delete, written after the later one) finds it is not its own any more.
    early = edgeindex.take(CACHE, "/p", b"|a.test/p", 60)
    late = edgeindex.take(CACHE, "/p", b"|a.test/p", 60)
    assert early is not None and late is not None and early[0] == late[0]
    assert not edgeindex.keep(CACHE, *early, 60)
    assert edgeindex.keep(CACHE, *late, 60)  # the control


def test_a_path_full_of_other_variants_makes_room_at_random() -> None:
    uwsgi.cache_clear(CACHE)
    for number in range(edgeindex.VARIANTS):  # entries for a few (the cache is small)
        key = f"|junk{number}.test/p".encode()
        assert edgeindex.take(CACHE, "/p", key, 60) is not None
        if number < 2:  # the reference line has 19 usable items
            assert uwsgi.cache_update(key, b"junk", 60, CACHE)
    # Hosts a client made up fill every record; the real page still gets one, and an
    # entry whose record it took is deleted with it: never left without a record.
    assert edgeindex.put(CACHE, "/p", b"|a.test/p", b"page", 60) is None
    named = {uwsgi.cache_get(record, CACHE) for record in edgeindex.records("/p")}
    entries = [key for key in uwsgi.cache_keys(CACHE) if key.startswith(b"|")]
    assert b"|a.test/p" in entries
    assert all(
        any(value[edgeindex.TOKEN :] == key for value in named if value) for key in entries
    )
    assert edgeindex.forget(CACHE, "/p") == len(entries)
    assert not [key for key in uwsgi.cache_keys(CACHE) if key.startswith(b"|")]


def test_a_refused_edge_write_leaves_no_entry_behind() -> None:
    # An older copy of the entry is there; a new store of it is refused (too large):
    # the copy goes too, or no delete could find it once its record was taken over.
    uwsgi.cache_clear(CACHE)
    assert edgeindex.put(CACHE, "/p", b"|a.test/p", b"old page", 60) is None
    assert uwsgi.cache_get(b"|a.test/p", CACHE) == b"old page"  # the control
    why = edgeindex.put(CACHE, "/p", b"|a.test/p", b"x" * (2 << 20), 60)  # > any cache here
    assert why is not None and "refused" in why
    assert uwsgi.cache_exists(b"|a.test/p", CACHE) is None
    assert not any(uwsgi.cache_exists(record, CACHE) for record in edgeindex.records("/p"))


def test_a_set_of_the_uwsgi_backends_own_is_the_one_written_through(
    make_app: Callable[..., Flask],
) -> None:
    # The C set writes with uWSGI's cache_update itself, unless the backend's set is
    # replaced (instrumentation, a test's spy): then through that.
    app = make_app(UWSGICACHE_NAME=CACHE)
    UWSGICache(app)
    cache: BoundCache = app.extensions["uwsgicache"]
    cache.clear()
    writes: list[bytes] = []
    original = cache.backend.set

    def spy(key: bytes, entry: bytes, ttl: float) -> None:
        writes.append(key)
        original(key, entry, ttl)

    assert cache.set("before", 1) is True and writes == []  # the control
    cache.backend.set = spy  # type: ignore[method-assign]
    assert cache.set("k", {"a": 1}) is True
    assert len(writes) == 1 and cache.get("k") == {"a": 1}
