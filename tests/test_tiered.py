"""The tiered backend: Redis, with local copies kept coherent by a listener.

In-process, two apps stand for two machines (each its own local store, coherence table
and listener) over one redis-server. ``tests/test_tiered_uwsgi.py`` runs two uWSGI
instances. The shared contract runs on it in test_contract.py (and the views' and
memoize's suites in theirs).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from flask_uwsgicache import BoundCache, UWSGICache
from flask_uwsgicache.backends.coherence import BOUND, EPOCH, MAX_AGE, SERVE_UNTIL
from flask_uwsgicache.backends.tiered import TieredBackend

RedisServer = Any  # tests/conftest.py's RedisServer: url, port, stop(), start()
Machines = Callable[..., tuple[BoundCache, BoundCache]]


def in_sync(cache: BoundCache, timeout: float = 5) -> BoundCache:
    """``cache``, once its listener is in sync with Redis (a read starts one)."""
    deadline = time.monotonic() + timeout
    while not cache.backend.describe()["local_copies"]:
        assert time.monotonic() < deadline, "no listener came in sync"
        cache.get("a key nobody writes")
        time.sleep(0.01)
    return cache


def tiered(cache: BoundCache) -> TieredBackend:
    assert isinstance(cache.backend, TieredBackend)
    return cache.backend


@pytest.fixture
def machines(make_app: Callable[..., Flask], redis_server: RedisServer) -> Machines:
    """``machines(url=...)``: two tiered caches of one name over one Redis, in sync."""

    def make(
        url: str = redis_server.url, **config: object
    ) -> tuple[BoundCache, BoundCache]:
        caches = []
        for _ in range(2):
            app = make_app(
                UWSGICACHE_BACKEND="tiered",
                UWSGICACHE_REDIS_URL=url,
                UWSGICACHE_NAME="tiered",
                **config,
            )
            UWSGICache(app)
            caches.append(app.extensions["uwsgicache"])
        caches[0].clear()
        return in_sync(caches[0]), in_sync(caches[1])

    return make


def commands(url: str, name: str) -> int:
    """How many ``name`` commands the server has run."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats").get(f"cmdstat_{name}", {})
    return int(stats.get("calls", 0))


def test_a_write_on_one_machine_is_read_on_the_other(
    machines: Machines, redis_server: RedisServer
) -> None:
    a, b = machines()
    assert a.set("greeting", {"hello": "world"})
    time.sleep(BOUND)  # the notice of the write has come (it would drop the copy)
    assert b.get("greeting") == {"hello": "world"}  # from Redis, and copied
    reads = commands(redis_server.url, "mget")
    for _ in range(20):
        assert b.get("greeting") == {"hello": "world"}
    assert commands(redis_server.url, "mget") == reads  # the copy answered
    assert a.set("greeting", "changed")
    time.sleep(BOUND)
    assert b.get("greeting") == "changed"


def test_a_delete_on_one_machine_is_a_miss_on_the_other(machines: Machines) -> None:
    a, b = machines()
    a.set("k", 1)
    assert (a.get("k"), b.get("k")) == (1, 1)
    assert b.delete("k")
    assert b.get("k") is None  # the writer's own copy goes at once
    time.sleep(BOUND)
    assert a.get("k") is None
    assert not a.has("k")


def test_clear_and_flushdb_drop_every_copy(
    machines: Machines, redis_server: RedisServer
) -> None:
    a, b = machines()
    a.set_many({"x": 1, "y": 2})
    assert b.get_many("x", "y") == [1, 2]
    assert a.clear()
    time.sleep(BOUND)
    assert b.get_many("x", "y") == [None, None]
    a.set_many({"x": 1, "y": 2})
    assert b.get_many("x", "y") == [1, 2]
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()  # a notice without keys: everything changed
    time.sleep(BOUND)
    assert b.get_many("x", "y") == [None, None]


def test_counters_and_add_are_decided_in_redis(machines: Machines) -> None:
    a, b = machines()

    def count(cache: BoundCache) -> None:
        for _ in range(100):
            cache.inc("hits")

    threads = [threading.Thread(target=count, args=(cache,)) for cache in (a, b, a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    time.sleep(BOUND)
    assert a.get("hits") == b.get("hits") == 400
    assert a.add("once", "a")
    assert b.get("once") == "a"  # b has a copy now
    assert not b.add("once", "b")
    assert a.delete("once")
    time.sleep(BOUND)
    assert b.add("once", "b")  # b's old copy did not decide
    assert a.get("once") == "b"


def test_a_local_copy_never_outlives_its_redis_expiry(machines: Machines) -> None:
    a, b = machines()
    storage_key = b"plain key"
    written = time.time()
    a.backend.set(storage_key, b"entry", 0.5)
    time.sleep(BOUND)  # the notice of the write has come (it would drop the copy)
    assert b.backend.get(storage_key) == b"entry"
    copy = tiered(b).local.get(storage_key)
    assert copy is not None
    # The copy carries Redis' expiry (0.5 s from the write, to the millisecond), and
    # the epoch it was made in.
    expires, epoch, _cell, _noted = struct.unpack_from("<dqqq", copy)
    assert abs(expires - (written + 0.5)) < 0.05
    coherence = tiered(b).coherence
    assert coherence is not None and epoch == coherence.cells[EPOCH] != 0
    time.sleep(max(0.0, written + 0.55 - time.time()))
    assert b.backend.get(storage_key) is None
    # Without an expiry in Redis, none on the copy.
    a.backend.set(storage_key, b"entry", 0)
    time.sleep(BOUND)
    assert b.backend.get(storage_key) == b"entry"
    copy = tiered(b).local.get(storage_key)
    assert copy is not None and struct.unpack_from("<d", copy)[0] == 0.0


def test_an_entry_too_large_for_the_local_store_is_read_from_redis(
    machines: Machines, redis_server: RedisServer
) -> None:
    a, b = machines(UWSGICACHE_MEMORY="items=100,blocksize=1024")
    big = "x" * 5000
    assert a.set("big", big)
    reads = commands(redis_server.url, "mget")
    assert b.get("big") == big
    assert b.get("big") == big
    assert commands(redis_server.url, "mget") == reads + 2  # no copy: too large


def test_staleness_stays_within_the_bound_under_load(machines: Machines) -> None:
    """A writer on one machine counts up; every value a reader on the other sees was
    the newest at most BOUND seconds before it was read."""
    a, b = machines()
    written: list[tuple[float, int]] = []  # (when the write returned, value)
    stop = time.monotonic() + 2

    def write() -> None:
        number = 0
        while time.monotonic() < stop:
            number += 1
            a.set("n", number)
            written.append((time.monotonic(), number))
            time.sleep(0.001)

    writer = threading.Thread(target=write)
    a.set("n", 0)
    writer.start()
    late: list[tuple[int, int]] = []
    reads = 0
    while writer.is_alive():
        asked = time.monotonic()
        seen = b.get("n")
        reads += 1
        # The newest value whose write had returned BOUND before the read began.
        due = max((value for at, value in written if at < asked - BOUND), default=0)
        if seen is None or seen < due:
            late.append((seen or -1, due))
    writer.join()
    assert reads > 100 and not late, late[:5]


def test_a_restarted_redis_leaves_no_stale_copy(
    machines: Machines, own_redis: RedisServer, log_lines: Callable[[], list[str]]
) -> None:
    a, b = machines(own_redis.url)
    a.set("k", "before")
    assert b.get("k") == "before"
    own_redis.stop()
    time.sleep(MAX_AGE)
    assert b.get("k") is None  # no listener in sync: Redis is asked, and is gone
    own_redis.start()  # empty: a copy of "before" would now be stale
    time.sleep(1.1)  # the redis backend tries again a second after a failure
    in_sync(b)
    assert b.get("k") is None
    assert any("listener lost Redis" in line for line in log_lines())
    a.set("k", "after")
    assert b.get("k") == "after"


def test_reads_go_to_redis_when_no_listener_is_in_sync(
    machines: Machines, redis_server: RedisServer
) -> None:
    a, b = machines()
    a.set("k", 1)
    assert b.get("k") == 1
    listener = tiered(b)._listener
    assert listener is not None
    tiered(b)._next_claim = time.monotonic() + 60  # no new listener for this test
    listener.stop()
    # Heartbeat: stale within MAX_AGE; then a write b's listener cannot tell it of.
    time.sleep(MAX_AGE)
    assert not tiered(b)._serving()
    a.set("k", 2)
    reads = commands(redis_server.url, "get")
    assert b.get("k") == 2
    assert commands(redis_server.url, "get") == reads + 1


@pytest.mark.parametrize("read", ["get", "get_many"])
def test_a_copy_stored_after_its_notice_is_never_served(
    machines: Machines, read: str
) -> None:
    """A filler reads the old value; another machine writes, and the notice comes
    (nothing to drop yet); then the filler stores its copy and is descheduled for a
    while before it could check anything. The copy must be a miss from the start."""
    a, b = machines()
    a.set("k", "old")
    time.sleep(BOUND)
    backend = tiered(b)
    (storage_key,) = [key for key in backend.keys() if key.endswith(b"k")]
    read_redis, store_copy = backend.remote.get_with_ttl, backend.local.set
    written: list[float] = []

    def read_then_a_write(keys: list[bytes]) -> Any:
        answers = read_redis(keys)  # "old"
        a.set("k", "new")
        written.append(time.monotonic())
        time.sleep(BOUND)  # b's listener has had the notice
        return answers

    def store_then_stall(key: bytes, copy: bytes, ttl: float) -> None:
        store_copy(key, copy, ttl)
        time.sleep(0.4)

    backend.remote.get_with_ttl = read_then_a_write  # type: ignore[method-assign]
    backend.local.set = store_then_stall  # type: ignore[method-assign,assignment]
    filler = threading.Thread(target=backend.get, args=(storage_key,))
    filler.start()
    time.sleep(BOUND + 0.05)
    backend.remote.get_with_ttl = read_redis  # type: ignore[method-assign]
    seen, stored = set(), False
    while filler.is_alive():
        stored = stored or backend.local.get(storage_key) is not None
        seen.add(b.get("k") if read == "get" else b.get_many("k")[0])
        time.sleep(0.01)
    filler.join()
    backend.local.set = store_copy  # type: ignore[method-assign]
    assert stored  # the stale copy was there, for other workers to read
    assert seen == {"new"}


def test_two_caches_over_one_table_have_one_listener(machines: Machines) -> None:
    """Under uWSGI two apps with the same cache and Redis share the instance's table:
    when its heartbeat lapses while its listener lives on, the other starts none."""
    first, second = machines()
    shared = tiered(first).coherence
    assert shared is not None and tiered(first)._listener is not None
    tiered(second).coherence, tiered(second)._cells = shared, shared.cells
    second_own = tiered(second)._listener
    assert second_own is not None
    second_own.stop()
    tiered(second)._listener = None
    shared.cells[SERVE_UNTIL] = 0  # a lapse: the listener is alive, not in sync
    tiered(second)._next_claim = 0.0
    assert second.get("k") is None
    assert tiered(second)._listener is None


@pytest.mark.parametrize("planted", [b"x", b"\x00" * 31, b"\xff" * 40])
def test_what_else_sits_under_a_key_in_the_local_store_is_no_copy(
    machines: Machines, planted: bytes
) -> None:
    """The local cache may hold other entries (another app's, or planted over the
    uwsgi protocol): none is served, nor raises; the entry comes from Redis."""
    a, b = machines()
    a.set("k", "value")
    time.sleep(BOUND)
    (storage_key,) = [key for key in tiered(b).keys() if key.endswith(b"k")]
    tiered(b).local.set(storage_key, planted, 0)
    assert b.get("k") == "value"
    assert b.get_many("k") == ["value"]


def test_a_copy_expires_when_its_entry_does_however_late_redis_answered(
    machines: Machines,
) -> None:
    """The copy's expiry counts from when Redis was asked, not from its answer; an
    entry with less than a millisecond left is not copied at all."""
    a, b = machines()
    backend = tiered(b)
    read_redis = backend.remote.get_with_ttl

    def slow_answer(keys: list[bytes]) -> Any:
        answers = read_redis(keys)
        time.sleep(0.2)
        return answers

    a.backend.set(b"late", b"entry", 0.5)
    written = time.time()
    time.sleep(BOUND)
    backend.remote.get_with_ttl = slow_answer  # type: ignore[method-assign]
    assert backend.get(b"late") == b"entry"
    copy = backend.local.get(b"late")
    assert copy is not None
    assert struct.unpack_from("<d", copy)[0] <= written + 0.5 + 0.005

    def expiring_now(keys: list[bytes]) -> Any:
        return [(entry, 0.0) for entry, _ttl in read_redis(keys)]

    backend.remote.get_with_ttl = expiring_now  # type: ignore[method-assign]
    a.backend.set(b"now", b"entry", 60)
    time.sleep(BOUND)
    assert backend.get(b"now") == b"entry"
    assert backend.local.get(b"now") is None


def test_edge_views_are_cached_the_normal_way_and_say_why(
    make_app: Callable[..., Flask],
    redis_server: RedisServer,
    log_lines: Callable[[], list[str]],
) -> None:
    """uWSGI's routing answers from the edge cache without Python: another machine's
    delete would not reach it. The view is still cached, where deletes reach it."""
    app = make_app(
        UWSGICACHE_BACKEND="tiered",
        UWSGICACHE_REDIS_URL=redis_server.url,
        UWSGICACHE_NAME="tiered edge",
    )
    ext = UWSGICache(app)
    app.extensions["uwsgicache"].clear()
    runs: list[int] = []

    @app.route("/news")
    @ext.cached(timeout=60, edge=True)
    def news() -> str:
        runs.append(1)
        return f"render {len(runs)}"

    client = app.test_client()
    assert [client.get("/news").text for _ in range(3)] == ["render 1"] * 3
    edge = app.extensions["uwsgicache"].describe()["edge"]
    assert edge["on"] is False and "tiered backend" in edge["reason"]
    assert any("tiered backend" in line and "edge=True" in line for line in log_lines())
    with app.test_request_context():
        assert ext.delete_edge("/news")
    assert client.get("/news").text == "render 2"
