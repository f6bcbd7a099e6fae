"""The tiered backend across two uWSGI instances (two machines: separate cache2 stores,
4 workers each) over one redis-server of the test's own, talking HTTP to the example
app (tests/apps/tiered.ini)."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import redis

from flask_uwsgicache.backends.coherence import BOUND

pytestmark = pytest.mark.launches_uwsgi

Start = Callable[..., Any]
RedisServer = Any
#: What a request may take at most while Redis is gone or paused: the backend's
#: socket timeout (1 s) for a call or two, and the worker's own time.
REDIS_TIMEOUT = 1.0


def instance(start_uwsgi: Start, url: str, *extra: str) -> Any:
    pidfile = os.path.join(tempfile.gettempdir(), "flask-uwsgicache-tiered-{port}.pid")
    server = start_uwsgi(
        ["--ini", "tests/apps/tiered.ini", "--pidfile", pidfile, *extra],
        {"REDIS_URL": url},
    )
    in_sync(server)
    return server


def in_sync(server: Any, timeout: float = 10) -> dict[str, Any]:
    """The instance's stats once a listener of its is in sync with Redis."""
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Any] = server.json("/stats")["stats"]
        if stats["local_copies"]:
            return stats
        assert time.monotonic() < deadline, "no listener came in sync"
        time.sleep(0.05)


def copied(start_uwsgi: Start, url: str, value: str) -> tuple[Any, Any]:
    """Two instances, ``k`` written on the first as ``value`` and copied by the
    second."""
    a, b = instance(start_uwsgi, url), instance(start_uwsgi, url)
    put(a, "k", value)
    time.sleep(BOUND)
    assert reads(b, "k") == [value] * 16
    return a, b


def put(server: Any, key: str, value: object) -> None:
    assert server.json(f"/api/keys/{key}", "PUT", {"value": value})["stored"]


def reads(server: Any, key: str, count: int = 16) -> list[object]:
    """``count`` reads of ``key`` (the workers take turns)."""
    return [server.json(f"/api/keys/{key}")["value"] for _ in range(count)]


def redis_reads(url: str) -> int:
    """How many reads of an entry the server has answered: GET and MGET, less the two
    GETs of each counter script (the example app counts every request; Redis counts
    the commands a script runs too)."""
    with redis.Redis.from_url(url) as client:
        stats = client.info("commandstats")

    def calls(name: str) -> int:
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    return calls("get") + calls("mget") - 2 * calls("evalsha")


def test_a_write_on_one_instance_is_read_on_the_other(
    start_uwsgi: Start, own_redis: RedisServer
) -> None:
    a, b = instance(start_uwsgi, own_redis.url), instance(start_uwsgi, own_redis.url)
    put(a, "greeting", "hello")
    time.sleep(BOUND)
    assert reads(b, "greeting") == ["hello"] * 16
    # The instance's copy answers every worker: no read reaches Redis.
    before = redis_reads(own_redis.url)
    assert reads(b, "greeting") == ["hello"] * 16
    assert redis_reads(own_redis.url) == before
    put(a, "greeting", "changed")
    time.sleep(BOUND)
    assert reads(b, "greeting") == ["changed"] * 16
    assert b.json("/api/keys/greeting", "DELETE")["deleted"]
    time.sleep(BOUND)
    assert reads(a, "greeting") == [None] * 16


@pytest.mark.parametrize(
    "recycled",
    [(), ("--max-requests", "40", "--min-worker-lifetime", "1")],
    ids=["steady", "workers recycled"],
)
def test_nothing_stale_past_the_bound_under_load(
    start_uwsgi: Start, own_redis: RedisServer, recycled: tuple[str, ...]
) -> None:
    """One instance writes a count as fast as it can; three clients read the other
    (whose workers are recycled, listener and all, every 40 requests in the second
    run): every value read was the newest BOUND seconds before the read began."""
    a = instance(start_uwsgi, own_redis.url)
    b = instance(start_uwsgi, own_redis.url, *recycled)
    put(a, "n", 0)
    written: list[tuple[float, int]] = [(time.monotonic(), 0)]
    late: list[tuple[object, int]] = []
    pids: set[int] = set()
    stop = time.monotonic() + 3

    def write() -> None:
        number = 0
        while time.monotonic() < stop:
            number += 1
            put(a, "n", number)
            written.append((time.monotonic(), number))

    def read() -> None:
        while time.monotonic() < stop:
            asked = time.monotonic()
            answer = b.json("/api/keys/n")
            seen = answer["value"]
            pids.add(answer["pid"])
            due = max(
                (value for at, value in list(written) if at < asked - BOUND), default=0
            )
            if not isinstance(seen, int) or seen < due:
                late.append((seen, due))

    threads = [threading.Thread(target=write)] + [
        threading.Thread(target=read) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(written) > 20 and not late, late[:5]
    assert len(pids) > 4 if recycled else len(pids) <= 4


def test_counters_stay_exact_across_instances(
    start_uwsgi: Start, own_redis: RedisServer
) -> None:
    a, b = instance(start_uwsgi, own_redis.url), instance(start_uwsgi, own_redis.url)

    def visit(server: Any) -> None:
        for _ in range(50):
            server.json("/counter")

    threads = [threading.Thread(target=visit, args=(server,)) for server in (a, b, a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    time.sleep(BOUND)
    assert a.json("/counter")["visits"] == 201
    assert b.json("/counter")["visits"] == 202


def test_a_killed_listener_is_replaced_and_nothing_stale_is_served(
    start_uwsgi: Start, own_redis: RedisServer
) -> None:
    a, b = copied(start_uwsgi, own_redis.url, "old")
    listener = in_sync(b)["listener_pid"]
    os.kill(listener, signal.SIGKILL)
    put(a, "k", "new")  # no listener of b's hears of it
    time.sleep(BOUND)
    assert reads(b, "k") == ["new"] * 16  # from Redis, until a listener is back
    stats = in_sync(b)  # another worker's
    assert stats["listener_pid"] not in (None, listener)
    # The copy of "old" missed its notice: the new listener's epoch has killed it.
    assert reads(b, "k") == ["new"] * 16
    put(a, "k", "newer")
    time.sleep(BOUND)
    assert reads(b, "k") == ["newer"] * 16


def test_a_restarted_redis_leaves_no_stale_copy(
    start_uwsgi: Start, own_redis: RedisServer
) -> None:
    a, b = copied(start_uwsgi, own_redis.url, "before")
    own_redis.stop()
    started = time.monotonic()
    assert reads(b, "k", 4) == [None] * 4  # answered, by Redis' absence
    assert time.monotonic() - started < 4 * (2 * REDIS_TIMEOUT + 1)
    own_redis.start()  # empty: every copy of "before" is stale now
    time.sleep(1.1)  # each worker's Redis client tries again a second after a failure
    in_sync(b)
    assert reads(b, "k") == [None] * 16
    put(a, "k", "after")
    time.sleep(BOUND)
    assert reads(b, "k") == ["after"] * 16


def test_a_paused_redis_makes_no_request_hang_and_serves_nothing_stale(
    start_uwsgi: Start, own_redis: RedisServer
) -> None:
    a, b = copied(start_uwsgi, own_redis.url, "before")
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    slowest = 0.0
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                answer = b.json("/api/keys/k")["value"]
            except urllib.error.HTTPError as error:  # a 500 is the cache's fault
                pytest.fail(f"a request failed while Redis was paused: {error}")
            slowest = max(slowest, time.monotonic() - started)
            assert answer in ("before", None)
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert slowest < 2 * REDIS_TIMEOUT + 1
    put(a, "k", "after")
    time.sleep(BOUND)
    assert reads(b, "k") == ["after"] * 16
    urllib.request.urlopen(b.url + "/stats", timeout=5).close()
