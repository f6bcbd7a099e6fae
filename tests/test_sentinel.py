"""Redis behind Sentinel (``redis+sentinel://``) for the redis and tiered backends: a
master, a replica and a Sentinel of the test's own on loopback (``redis-server
--sentinel``: the Debian package's binary runs either), and a failover."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_uwsgicache import BoundCache, UWSGICache
from flask_uwsgicache.backends import redis as redis_backend
from flask_uwsgicache.backends.base import shown_url
from flask_uwsgicache.backends.coherence import BOUND

SERVICE = "themaster"


class Group:
    """Processes of a test's own, stopped by their pids at its end."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> int:
        """``redis-server`` with ``args`` on a free loopback port; its port once it
        answers."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        process = subprocess.Popen(
            [self.binary, *args, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.processes.append(process)
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=port, socket_timeout=1) as client:
                    client.ping()
                return port
            except redis.RedisError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


@pytest.fixture
def group(redis_binary: str) -> Iterator[Group]:
    with tempfile.TemporaryDirectory() as directory:
        processes = Group(redis_binary, Path(directory))
        yield processes
        processes.stop()


def sentinel_over(group: Group, master: int) -> int:
    """A Sentinel that watches ``master`` as SERVICE and fails over after 1 s."""
    conf = group.directory / f"sentinel-{master}.conf"  # Sentinel rewrites its file
    conf.write_text(
        f"sentinel monitor {SERVICE} 127.0.0.1 {master} 1\n"
        f"sentinel down-after-milliseconds {SERVICE} 1000\n"
        f"sentinel failover-timeout {SERVICE} 5000\n"
    )
    return group.start(str(conf), "--sentinel")


def app_on(make_app: Callable[..., Flask], backend: str, url: str) -> BoundCache:
    app = make_app(
        UWSGICACHE_BACKEND=backend, UWSGICACHE_REDIS_URL=url, UWSGICACHE_NAME="sentinel"
    )
    UWSGICache(app)
    cache: BoundCache = app.extensions["uwsgicache"]
    return cache


def in_sync(cache: BoundCache) -> None:
    deadline = time.monotonic() + 10
    while not cache.describe()["local_copies"]:
        assert time.monotonic() < deadline, "no listener came in sync"
        cache.get("a key nobody writes")
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["redis", "tiered"])
def test_both_backends_find_the_master_through_sentinel(
    make_app: Callable[..., Flask], group: Group, backend: str
) -> None:
    master = group.start()
    sentinel = sentinel_over(group, master)
    url = f"redis+sentinel://127.0.0.1:{sentinel}/{SERVICE}/2"
    cache = app_on(make_app, backend, url)
    if backend == "tiered":
        in_sync(cache)
    assert cache.set("k", {"v": 1}) and cache.get("k") == {"v": 1}
    assert cache.inc("n") == 1 and cache.inc("n") == 2
    with redis.Redis(port=master, db=2) as client:
        assert len(client.keys("uwsgicache:sentinel*")) == 2  # on the master, in db 2
    assert cache.describe()["url"] == url


def test_after_a_failover_writes_reach_the_new_master_and_no_copy_is_stale(
    make_app: Callable[..., Flask], group: Group
) -> None:
    master = group.start()
    replica = group.start("--replicaof", "127.0.0.1", str(master))
    sentinel = sentinel_over(group, master)
    url = f"redis+sentinel://127.0.0.1:{sentinel}/{SERVICE}/0"
    writer, reader = app_on(make_app, "tiered", url), app_on(make_app, "tiered", url)
    in_sync(writer)
    in_sync(reader)
    writer.set("k", "before")
    time.sleep(BOUND)
    assert reader.get("k") == "before"
    with redis.Redis(port=master) as client:  # the replica has it too
        assert client.execute_command("WAIT", 1, 10_000) == 1
    with redis.Redis(port=sentinel) as client:
        client.execute_command("SENTINEL", "FAILOVER", SERVICE)
        deadline = time.monotonic() + 20
        while int(client.sentinel_get_master_addr_by_name(SERVICE)[1]) != replica:
            assert time.monotonic() < deadline, "Sentinel did not fail over"
            time.sleep(0.1)
    # The old master is a replica now: a write goes to the new one (after a failed
    # call the backend waits a second before it tries again).
    deadline = time.monotonic() + 15
    while not writer.set("k", "after"):
        assert time.monotonic() < deadline, "no write reached the new master"
        time.sleep(0.2)
    with redis.Redis(port=replica) as client:
        assert client.info("replication")["role"] == "master"
    time.sleep(BOUND)
    deadline = time.monotonic() + 15
    while (seen := reader.get("k")) != "after":  # a miss while its client reconnects
        assert seen is None, "a copy of 'before' outlived the write on the new master"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    seen = {reader.get("k") for _ in range(20)}
    assert seen == {"after"}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://127.0.0.1:26379", "service name"),
        ("redis+sentinel:///mymaster", "service name"),
        ("redis+sentinel://127.0.0.1/mymaster", "host:port"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/zero", "number"),
        ("redis+sentinel://127.0.0.1:26379/mymaster/\u00b2", "number"),
        ("redis+sentinel://127.0.0.1:26379/mymaster?timeout=2", "unknown options"),
    ],
)
def test_a_bad_sentinel_url_fails_at_init_app(
    make_app: Callable[..., Flask], url: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        app_on(make_app, "redis", url)


def test_flask_cachings_sentinel_settings_become_a_sentinel_url(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(
        CACHE_TYPE="RedisSentinelCache",
        CACHE_REDIS_SENTINELS=[("10.0.0.1", 26379), ("10.0.0.2", 26380)],
        CACHE_REDIS_SENTINEL_MASTER="cache",
        CACHE_REDIS_PASSWORD="p@ss",
        CACHE_REDIS_SENTINEL_PASSWORD="s3cret",
        CACHE_REDIS_DB=3,
    )
    UWSGICache(app)
    settings: Any = app.extensions["uwsgicache"].settings
    assert settings["UWSGICACHE_BACKEND"] == "redis"
    assert settings["UWSGICACHE_REDIS_URL"] == (
        "redis+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26380/cache/3"
        "?sentinel_password=s3cret"
    )
    with pytest.raises(ValueError, match="CACHE_REDIS_SENTINELS"):
        UWSGICache(make_app(CACHE_TYPE="RedisSentinelCache", CACHE_REDIS_SENTINELS=["x"]))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:p@ss@h:6379/0", "redis://user:***@h:6379/0"),
        (
            "redis+sentinel://:pw@h1:26379,h2:26379/m/0?sentinel_password=s3cret",
            "redis+sentinel://:***@h1:26379,h2:26379/m/0?sentinel_password=***",
        ),
        ("redis://h:6379/0", "redis://h:6379/0"),
    ],
)
def test_no_password_is_shown(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_a_sentinel_url_is_read_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spaces after commas, a "+" in a password, the scheme's case."""
    made: dict[str, Any] = {}

    class Recorded:
        def __init__(self, sentinels: list[Any], sentinel_kwargs: dict[str, Any]) -> None:
            made.update(sentinels=sentinels, sentinel_kwargs=sentinel_kwargs)

        def master_for(self, service: str, **settings: Any) -> redis.Redis:
            made.update(service=service, **settings)
            return redis.Redis()

    monkeypatch.setattr(redis_backend, "Sentinel", Recorded)
    redis_backend.sentinel_client(
        "Redis+Sentinel://:a+b%2Fc@h1:1, [::1]:2/svc/4?sentinel_password=x+y",
        {"socket_timeout": 1.0, "socket_connect_timeout": 1.0},
    )
    assert made["sentinels"] == [("h1", 1), ("::1", 2)]
    assert made["sentinel_kwargs"]["password"] == "x+y"
    assert (made["service"], made["db"], made["password"]) == ("svc", 4, "a+b/c")


def test_a_listener_follows_the_sentinels_to_another_master(
    make_app: Callable[..., Flask], group: Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its connection to the old master still up (a partition the Sentinels cannot
    reach across), the listener leaves it once they name another master."""
    master = group.start()
    replica = group.start("--replicaof", "127.0.0.1", str(master))
    sentinel = sentinel_over(group, master)
    cache = app_on(make_app, "tiered", f"redis+sentinel://127.0.0.1:{sentinel}/{SERVICE}")
    in_sync(cache)
    backend: Any = cache.backend
    listener = backend._listener
    connects = listener.connects
    pool = backend.remote.client.connection_pool
    monkeypatch.setattr(pool, "get_master_address", lambda: ("127.0.0.1", replica))
    deadline = time.monotonic() + 5
    while listener.connects == connects:
        assert time.monotonic() < deadline, "the listener stayed with the old master"
        time.sleep(0.05)
    in_sync(cache)
