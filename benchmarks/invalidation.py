"""How fast Redis can tell other machines that a key changed: the choice for a local copy
in front of Redis (issue 18), ``python benchmarks/invalidation.py``.

Two ways, each measured on a redis-server on loopback, from the moment a writer sends a
write until a listener on another connection has read the notice of it:

* **pub/sub**: the writer sends ``SET`` and ``PUBLISH`` of the key in one round trip
  (a pipeline); the listener is subscribed to that channel.
* **client tracking** (``CLIENT TRACKING on BCAST PREFIX ... REDIRECT``): the writer
  sends only ``SET``; Redis itself publishes the key on ``__redis__:invalidate`` to the
  listener (RESP2: the notice arrives as a pub/sub message), and also for keys that
  expire or are evicted, and for writes by clients that know nothing of it.

* **the tiered backend**, as it runs: a write through one tiered cache until another's
  listener has applied the notice (dropped its copy).

A background writer keeps Redis busy with other writes meanwhile. Bounded: ``--count``
writes per way (at most ``--seconds`` each). Prints milliseconds (p50, p99, max) and the
commands a write costs, and writes them into docs/tiered.rst (not with ``--quick``).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import redis
from flask import Flask
from provenance import provenance, publish
from redis.connection import Connection
from report import simple_table
from servers import redis_server, uwsgi_binary

from flask_uwsgicache import UWSGICache

PREFIX = "inv:"
CHANNEL = "invalidate"


def raw_connection(url: str) -> Any:
    """A connection of its own (not from a pool: tracking and subscriptions belong to
    one), RESP2, connected. (redis-py's Connection has no type hints: Any.)"""
    parts = urlparse(url)
    make: Any = Connection
    connection = make(
        host=parts.hostname or "127.0.0.1", port=parts.port or 6379, protocol=2
    )
    connection.connect()
    return connection


def listener(url: str, subscribe: Callable[[Any], None]) -> Any:
    """The connection Redis sends the notices to, subscribed."""
    connection = raw_connection(url)
    subscribe(connection)
    return connection


def receive(
    connection: Any,
    sent: dict[bytes, float],
    delays: list[float],
    written: threading.Event,
    stop: float,
) -> None:
    """Read notices until the writes are done and each was seen, or until ``stop`` (a
    monotonic time)."""
    while time.monotonic() < stop and not (written.is_set() and len(delays) >= len(sent)):
        if not connection.can_read(timeout=0.05):
            continue
        message = connection.read_response()
        now = time.perf_counter()
        if not isinstance(message, list) or message[0] != b"message":
            continue
        keys = message[2] if isinstance(message[2], list) else [message[2]]
        for key in keys:
            if key in sent:
                delays.append(now - sent[key])


def busy(client: redis.Redis, stop: threading.Event) -> None:
    """Other writes, meanwhile (keys outside the prefix), at most until ``stop``."""
    deadline = time.monotonic() + 120
    number = 0
    while not stop.is_set() and time.monotonic() < deadline:
        client.set(f"other:{number % 1000}", b"x" * 100)
        number += 1


def measure(url: str, way: str, count: int, seconds: float) -> list[float]:
    """Seconds from each write to its notice, for ``way``."""
    client = redis.Redis.from_url(url, protocol=2)
    if way == "pub/sub":

        def subscribe(connection: Any) -> None:
            connection.send_command("SUBSCRIBE", CHANNEL)
            connection.read_response()

    else:

        def subscribe(connection: Any) -> None:
            connection.send_command("CLIENT", "ID")
            client_id = connection.read_response()
            connection.send_command("SUBSCRIBE", "__redis__:invalidate")
            connection.read_response()
            # Tracking belongs to a connection: one of its own, kept open meanwhile.
            tracker.send_command(
                "CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST",
                "PREFIX", PREFIX,
            )  # fmt: skip
            tracker.read_response()

        tracker = raw_connection(url)
    connection = listener(url, subscribe)
    sent: dict[bytes, float] = {}
    delays: list[float] = []
    stop = time.monotonic() + seconds
    written = threading.Event()
    reader = threading.Thread(
        target=receive, args=(connection, sent, delays, written, stop)
    )
    quiet = threading.Event()
    noise = threading.Thread(
        target=busy, args=(redis.Redis.from_url(url, protocol=2), quiet)
    )
    noise.start()
    try:
        reader.start()
        for number in range(count):
            if time.monotonic() > stop:
                break
            key = f"{PREFIX}{way}:{number}".encode()
            sent[key] = time.perf_counter()
            if way == "pub/sub":
                pipe = client.pipeline(transaction=False)
                pipe.set(key, b"v")
                pipe.publish(CHANNEL, key)
                pipe.execute()
            else:
                client.set(key, b"v")
            time.sleep(0.001)
        written.set()
        reader.join(timeout=max(0.0, stop - time.monotonic()) + 1)
    finally:
        quiet.set()
        noise.join()
        connection.disconnect()
    return delays


def measure_tiered(url: str, count: int, seconds: float) -> list[float]:
    """Seconds from each write through one tiered cache (one machine) until another's
    listener has dropped its copy: the delay the staleness bound is built on, as the
    backend lives it (in one process here: both listeners share its interpreter)."""
    machines = []
    for name in ("a", "b"):
        app = Flask(name)
        app.config.update(
            SECRET_KEY="bench", UWSGICACHE_BACKEND="tiered", UWSGICACHE_REDIS_URL=url,
            UWSGICACHE_NAME="invalidation",
        )  # fmt: skip
        UWSGICache(app)
        machines.append(app.extensions["uwsgicache"])
    writer, reader = (cache.backend for cache in machines)
    deadline = time.monotonic() + 10
    while not reader.describe()["local_copies"]:  # a read starts its listener
        if time.monotonic() > deadline:
            raise SystemExit("the tiered backend's listener did not come in sync")
        reader.get(b"start")
        time.sleep(0.01)
    sent: dict[bytes, float] = {}
    delays: list[float] = []
    dropped = reader._drop

    def drop(key: bytes) -> None:
        dropped(key)
        if key in sent:
            delays.append(time.perf_counter() - sent.pop(key))

    reader._drop = drop  # the listener calls it for each notice
    reader._listener.drop = lambda name: drop(name[len(reader.remote.namespace) :])
    quiet = threading.Event()
    noise = threading.Thread(
        target=busy, args=(redis.Redis.from_url(url, protocol=2), quiet)
    )
    noise.start()
    try:
        stop = time.monotonic() + seconds
        for number in range(count):
            if time.monotonic() > stop:
                break
            key = f"w{number}".encode()
            sent[key] = time.perf_counter()
            writer.set(key, b"v", 60)
            time.sleep(0.001)
        time.sleep(0.5)
    finally:
        quiet.set()
        noise.join()
        for backend in (writer, reader):
            backend.close()
    return delays


def table(results: dict[str, tuple[list[float], int]]) -> str:
    rows = []
    for way, (delays, sent) in results.items():
        ms = sorted(delay * 1000 for delay in delays)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
        rows.append([
            way, f"{len(ms)}/{sent}", f"{statistics.median(ms):.3f}" if ms else "-",
            f"{p99:.3f}", f"{max(ms):.3f}" if ms else "-",
            {"pub/sub": "SET+PUBLISH (1 round trip)"}.get(way, "SET"),
        ])  # fmt: skip
    header = ["way", "notices", "p50 ms", "p99 ms", "max ms", "a write sends"]
    return "\n".join(simple_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="writes per way")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most, per way")
    parser.add_argument(
        "--quick", action="store_true", help="200 writes per way; the docs are left alone"
    )
    args = parser.parse_args()
    if args.quick:
        args.count = 200
    head = provenance(uwsgi_binary())
    with redis_server() as url:
        if url is None:
            raise SystemExit("no redis-server")
        results = {
            way: (measure(url, way, args.count, args.seconds), args.count)
            for way in ("pub/sub", "client tracking")
        }
        results["tiered backend (copy dropped)"] = (
            measure_tiered(url, args.count, args.seconds),
            args.count,
        )
    publish(
        head, table(results), "invalidation", "benchmarks/invalidation.py",
        args.quick, "tiered.rst",
    )  # fmt: skip


if __name__ == "__main__":
    main()
