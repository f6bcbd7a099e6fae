"""The memory backend applies the limits of the cache2 line it mirrors."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from flask import Flask

from flask_uwsgicache import UWSGICache
from flask_uwsgicache.backends.memory import MemoryBackend
from flask_uwsgicache.errors import CacheFullError, ValueTooLargeError


def test_only_items_minus_one_entries_fit() -> None:
    backend = MemoryBackend("items=3")
    backend.set(b"a", b"1", 0)
    backend.set(b"b", b"2", 0)
    with pytest.raises(CacheFullError, match="2 usable items"):
        backend.set(b"c", b"3", 0)
    backend.set(b"a", b"updated", 0)
    assert backend.get(b"a") == b"updated"
    assert backend.add(b"b", b"x", 0) is False


def test_without_bitmap_a_value_must_fit_one_block() -> None:
    backend = MemoryBackend("items=10,blocksize=100")
    backend.set(b"k", b"x" * 100, 0)
    with pytest.raises(ValueTooLargeError, match="blocksize=100"):
        backend.set(b"k", b"x" * 101, 0)
    assert backend.get(b"k") == b"x" * 100


def test_with_bitmap_a_value_may_span_blocks_until_they_run_out() -> None:
    backend = MemoryBackend("items=10,blocksize=100,blocks=12,bitmap=1")
    backend.set(b"big", b"x" * 1000, 0)  # 10 blocks
    with pytest.raises(ValueTooLargeError):
        backend.set(b"huge", b"x" * 1201, 0)
    with pytest.raises(CacheFullError, match="12 blocks"):
        backend.set(b"more", b"x" * 300, 0)
    backend.set(b"small", b"x" * 200, 0)
    backend.delete(b"big")
    backend.set(b"more", b"x" * 300, 0)


def test_purge_lru_evicts_the_least_recently_used() -> None:
    backend = MemoryBackend("items=3,purge_lru=1")
    backend.set(b"a", b"1", 0)
    backend.set(b"b", b"2", 0)
    backend.get(b"a")
    backend.set(b"c", b"3", 0)
    assert backend.keys() == [b"a", b"c"]


def test_its_own_expiry_frees_slots() -> None:
    now = [100.0]
    backend = MemoryBackend("items=2", clock=lambda: now[0])
    backend.set(b"a", b"1", 5)
    now[0] += 6
    assert backend.get(b"a") is None
    backend.set(b"b", b"2", 0)


def test_threads_share_it_safely() -> None:
    backend = MemoryBackend("items=100")

    def work(number: int) -> None:
        for step in range(500):
            key = b"k%d" % (step % 50)
            backend.set(key, b"%d" % number, 0)
            backend.get(key)
            backend.delete(key)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Every set was followed by its own delete: whatever the interleaving, nothing is
    # left, and the slot and block accounting came back to zero.
    assert backend.keys() == []
    backend.set(b"a", b"1", 0)
    assert backend.keys() == [b"a"]


def test_threads_count_exactly_through_the_cache(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    UWSGICache(app)
    cache = app.extensions["uwsgicache"]

    def work() -> None:
        for _ in range(500):
            cache.inc("n")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("n") == 2000
