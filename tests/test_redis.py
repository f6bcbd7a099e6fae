"""What is particular to the Redis backend; the shared contract runs in test_contract.py.

Each test here that stops its server starts one of its own (``own_redis``).
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from flask_uwsgicache import BoundCache, UWSGICache
from flask_uwsgicache.errors import (
    BackendUnavailableError,
    CacheFullError,
    NotACounterError,
)
from flask_uwsgicache.flight import lease_key

Lines = Callable[[], list[str]]
RedisServer = Any  # tests/conftest.py's RedisServer: url, port, stop(), start()


def redis_app(make_app: Callable[..., Flask], url: str, **config: object) -> Flask:
    app = make_app(UWSGICACHE_BACKEND="redis", UWSGICACHE_REDIS_URL=url, **config)
    UWSGICache(app)
    return app


@pytest.fixture
def client_of(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server.url) as client:
        yield client


@pytest.fixture
def cache(make_app: Callable[..., Flask], redis_server: RedisServer) -> BoundCache:
    bound: BoundCache = redis_app(
        make_app, redis_server.url, UWSGICACHE_NAME="r"
    ).extensions["uwsgicache"]
    bound.clear()
    return bound


NS = b"uwsgicache:r\xfd"  # the namespace of the cache named "r" (keys.fenced)


def test_clear_removes_only_its_own_namespace(
    make_app: Callable[..., Flask],
    redis_server: RedisServer,
    cache: BoundCache,
    client_of: redis.Redis,
) -> None:
    # A cache whose name starts with "r:" must not be inside "r"'s namespace.
    staging: BoundCache = redis_app(
        make_app, redis_server.url, UWSGICACHE_NAME="r:staging"
    ).extensions["uwsgicache"]
    staging.set("k", "staging's")
    client_of.set("someone-else", b"theirs")
    cache.set("a", 1)
    cache.set("b", {"x": 1})
    assert cache.clear() is True
    assert cache.get_many("a", "b") == [None, None]
    assert client_of.get("someone-else") == b"theirs"
    assert staging.get("k") == "staging's"
    assert staging.clear() is True
    client_of.delete("someone-else")


def test_counters_are_signed_redis_integers_with_their_expiry(
    cache: BoundCache, client_of: redis.Redis
) -> None:
    assert cache.inc("n", 5, timeout=60) == 5
    stored = bytes(client_of.get(NS + b"n") or b"")  # type: ignore[arg-type]
    assert stored.startswith(b"5:") and len(stored) == 42
    assert 59_000 < client_of.pttl(NS + b"n") <= 60_000
    client_of.pexpire(NS + b"n", 30_000)
    assert cache.inc("n", timeout=600) == 6  # an existing counter keeps its expiry
    assert client_of.pttl(NS + b"n") <= 30_000
    assert cache.get("n") == 6
    assert cache.set("m", 41) is True  # set() of an int writes a counter entry
    assert cache.inc("m") == 42
    cache.set("s", "text")
    with pytest.raises(NotACounterError):
        cache.inc("s")
    assert cache.get("s") == "text"


def test_planted_digits_are_no_counter(cache: BoundCache, client_of: redis.Redis) -> None:
    cache.set("user", {"name": "ann"})
    client_of.set(NS + b"user", b"12")  # someone with access to Redis, no secret
    assert cache.get("user") is None
    cache.inc("n", 3)
    valid = bytes(client_of.get(NS + b"n") or b"")  # type: ignore[arg-type]
    client_of.set(NS + b"n", b"9" + valid[1:])  # another count, the old MAC
    assert cache.get("n") is None
    assert cache.inc("n") == 1
    assert cache.get("n") == 1
    client_of.set(NS + b"copy", valid)  # a valid counter, under another key
    assert cache.get("copy") is None
    assert cache.inc("copy") == 1


def test_concurrent_incs_over_a_forged_counter_lose_nothing(
    cache: BoundCache, client_of: redis.Redis
) -> None:
    def hammer() -> None:
        for _ in range(25):
            cache.inc("n")

    for forged in (b"999", b"5:" + b"0" * 40, pickle.dumps({"x": 1})):
        client_of.set(NS + b"n", forged)  # planted, or signed with another secret
        threads = [threading.Thread(target=hammer) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert cache.get("n") == 150, forged  # counted from 0, every inc kept


def test_touch_keeps_every_concurrent_inc(cache: BoundCache) -> None:
    cache.inc("n", timeout=60)

    def incs() -> None:
        for _ in range(300):
            cache.inc("n")

    def touches() -> None:
        for _ in range(300):
            assert cache.touch("n", timeout=120) is True

    threads = [threading.Thread(target=incs) for _ in range(2)]
    threads.append(threading.Thread(target=touches))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert cache.get("n") == 601


def test_an_entry_copied_from_another_cache_name_is_a_miss(
    make_app: Callable[..., Flask], redis_server: RedisServer, client_of: redis.Redis
) -> None:
    site: BoundCache = redis_app(
        make_app, redis_server.url, UWSGICACHE_NAME="site"
    ).extensions["uwsgicache"]
    staging: BoundCache = redis_app(
        make_app, redis_server.url, UWSGICACHE_NAME="staging"
    ).extensions["uwsgicache"]
    site.set("role", "admin")
    site.inc("credits", 1000)
    for key in ("role", "credits"):
        entry = bytes(client_of.get(b"uwsgicache:site\xfd" + key.encode()) or b"")  # type: ignore[arg-type]
        client_of.set(b"uwsgicache:staging\xfd" + key.encode(), entry)  # same SECRET_KEY
        assert staging.get(key) is None
    assert staging.set("role", "user") is True  # the control: its own entries read
    assert staging.get("role") == "user"
    site.clear()
    staging.clear()


def test_counters_span_64_bits_exactly(cache: BoundCache) -> None:
    # Lua numbers are doubles (exact to 2**53): the script must not return one.
    assert cache.inc("n", 2**53 + 1) == 2**53 + 1
    assert cache.inc("n", 2**62) == 2**62 + 2**53 + 1
    assert cache.get("n") == 2**62 + 2**53 + 1


def test_clear_with_a_prefix_is_false_while_redis_is_down(
    make_app: Callable[..., Flask], own_redis: RedisServer
) -> None:
    prefixed: BoundCache = redis_app(
        make_app, own_redis.url, UWSGICACHE_NAME="r", UWSGICACHE_KEY_PREFIX="p:"
    ).extensions["uwsgicache"]
    bare: BoundCache = redis_app(make_app, own_redis.url, UWSGICACHE_NAME="r").extensions[
        "uwsgicache"
    ]
    assert prefixed.set("k", 1) is True
    own_redis.stop()
    try:
        assert prefixed.clear() is False
        assert bare.clear() is False
        stats = prefixed.stats(entries=True)
        assert stats["entries"] is None and "Redis at" in stats["unavailable"]
        with pytest.raises(BackendUnavailableError):
            prefixed.inc("n")
        assert prefixed.delete_edge("/page", ["view//page"]) is False  # no 500
    finally:
        own_redis.start()
    prefixed.backend._down_until = 0.0  # type: ignore[attr-defined]
    assert prefixed.get("k") is None  # the server restarted empty (no persistence)
    assert prefixed.clear() is True  # the control


def test_responses_can_live_in_a_cache_of_their_own(
    make_app: Callable[..., Flask], redis_server: RedisServer, client_of: redis.Redis
) -> None:
    app = make_app(
        UWSGICACHE_BACKEND="redis",
        UWSGICACHE_REDIS_URL=redis_server.url,
        UWSGICACHE_NAME="r",
        UWSGICACHE_RESPONSES_NAME="pages",
    )
    ext = UWSGICache(app)
    renders = iter(range(1, 100))
    page = app.route("/page")(ext.cached(timeout=60)(lambda: f"page {next(renders)}"))
    cache: BoundCache = app.extensions["uwsgicache"]
    assert cache.clear() is True  # what an earlier run may have left
    client = app.test_client()
    cache.set("data", 1)
    assert client.get("/page?a=1").text == "page 1"
    assert client.get("/page?a=1").text == "page 1"
    pages = b"uwsgicache:pages\xfd"
    stored = sorted(client_of.scan_iter(match=pages + b"*"))
    # The page, and its path's generation (flask_uwsgicache.generations).
    assert len(stored) == 2 and b"generation:view//page" in stored[1]
    assert client_of.exists(NS + b"data") == 1  # the app's own data stays in "r"
    assert not [name for name in client_of.scan_iter(match=NS + b"\xfeR*")]
    stats = cache.stats(entries=True)
    assert stats["responses_cache"] == "pages" and stats["responses_entries"] == 1
    with app.test_request_context():
        assert ext.delete_cached(page) is True
    assert client.get("/page?a=1").text == "page 2"
    assert cache.clear() is True
    assert not list(client_of.scan_iter(match=pages + b"*"))
    assert cache.get("data") is None


def test_get_many_is_one_round_trip(cache: BoundCache, client_of: redis.Redis) -> None:
    cache.set_many({"a": 1, "b": "two", "c": [3]})

    def calls(command: str) -> int:
        stats = client_of.info("commandstats").get(f"cmdstat_{command}", {})
        return int(stats.get("calls", 0))

    before = calls("mget"), calls("get")
    assert cache.get_many("a", "b", "missing", "c") == [1, "two", None, [3]]
    assert (calls("mget"), calls("get")) == (before[0] + 1, before[1])


def test_entries_expire_exactly(cache: BoundCache, client_of: redis.Redis) -> None:
    cache.set("k", "v", timeout=0.3)
    assert 0 < client_of.pttl(NS + b"k") <= 300
    time.sleep(0.35)
    assert cache.get("k") is None
    assert client_of.exists(NS + b"k") == 0  # Redis dropped it itself


def test_single_flight_holds_a_lease_with_px(
    cache: BoundCache, client_of: redis.Redis
) -> None:
    lease = NS + cache.internal.storage_key(lease_key(cache, "slow"))
    seen: list[int] = []

    def compute() -> str:
        seen.append(client_of.pttl(lease))
        return "value"

    assert cache.get_or_set("slow", compute, single_flight_wait=5) == "value"
    assert 4_000 < seen[0] <= 5_000  # held while computing, for at most the wait
    assert client_of.exists(lease) == 0  # given back once the value was stored
    assert cache.get("slow") == "value"


def test_redis_down_means_misses_refusals_and_views_that_serve(
    make_app: Callable[..., Flask], own_redis: RedisServer, log_lines: Lines
) -> None:
    app = redis_app(make_app, own_redis.url)
    cache: BoundCache = app.extensions["uwsgicache"]
    ext = UWSGICache()
    runs: list[int] = []

    @app.route("/page")
    @ext.cached(timeout=60)
    def page() -> str:
        runs.append(1)
        return "page"

    client = app.test_client()
    assert cache.set("k", "v") is True
    assert client.get("/page").text == "page"
    own_redis.stop()
    assert cache.get("k") is None
    assert cache.get_many("k", "j") == [None, None]
    assert cache.set("k", "w") is False
    assert cache.add("new", 1) is False
    with pytest.raises(BackendUnavailableError):
        cache.inc("n")
    assert cache.clear() is False
    for _ in range(5):
        response = client.get("/page")
        assert (response.status_code, response.text) == (200, "page")
    assert cache.stats(entries=True)["entries"] is None  # unknown, not "none"
    unreachable = [line for line in log_lines() if "unreachable" in line]
    assert 1 <= len(unreachable) <= 2, unreachable  # rate-limited
    own_redis.start()
    time.sleep(1.1)  # no calls for a second after a failure
    assert cache.set("k", "back") is True
    assert cache.get("k") == "back"
    assert client.get("/page").text == "page"


def test_a_full_redis_is_a_refused_write_with_the_fix(
    make_app: Callable[..., Flask],
    own_redis: RedisServer,
    log_lines: Lines,
    request: pytest.FixtureRequest,
) -> None:
    server = redis.Redis.from_url(own_redis.url)
    request.addfinalizer(server.close)
    server.config_set("maxmemory", "2mb")
    server.config_set("maxmemory-policy", "noeviction")
    cache: BoundCache = redis_app(make_app, own_redis.url).extensions["uwsgicache"]
    big = "x" * 100_000
    results = [cache.set(f"big{number}", big, timeout=0) for number in range(40)]
    assert results[0] is True and results[-1] is False
    assert any("maxmemory" in line for line in log_lines())
    cache.raise_errors = True
    scans, gets = (commands(server, name) for name in ("scan", "get"))
    with pytest.raises(CacheFullError, match="eviction policy"):
        cache.set("one more", big)
    # Redis keeps no dead entries: a refused write reads nothing back (no sweep of the
    # store, as the uwsgi backend makes; backends/uwsgi.py, make_room).
    assert (commands(server, "scan"), commands(server, "get")) == (scans, gets)
    assert cache.get("big0") == big


def commands(server: redis.Redis, command: str) -> int:
    """How many times ``command`` ran on ``server`` (INFO commandstats)."""
    stats = server.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_the_redis_backend_needs_a_url(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ValueError, match="UWSGICACHE_REDIS_URL"):
        UWSGICache(make_app(UWSGICACHE_BACKEND="redis"))


def test_stats_hide_the_password(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    url = redis_server.url.replace("redis://", "redis://user:secret@")
    cache: BoundCache = redis_app(make_app, url).extensions["uwsgicache"]
    described = cache.describe()
    assert described["backend"] == "redis" and "secret" not in described["url"]


@pytest.mark.launches_uwsgi
def test_the_example_app_runs_on_redis_with_one_setting(
    start_uwsgi: Callable[..., Any], redis_server: RedisServer
) -> None:
    env = {"UWSGICACHE_LOCAL": "1", "FLASK_UWSGICACHE_BACKEND": "redis",
           "REDIS_URL": redis_server.url}  # fmt: skip
    pidfile = os.path.join(tempfile.gettempdir(), "flask-uwsgicache-redis-{port}.pid")
    server = start_uwsgi(
        ["--ini", "deploy/uwsgi.ini", "--venv", sys.prefix, "--pidfile", pidfile], env
    )
    assert server.json("/stats")["stats"]["backend"] == "redis"
    server.json("/clear", "POST")
    pids: set[int] = set()

    def visit() -> None:
        for _ in range(50):
            pids.add(server.json("/counter")["pid"])

    threads = [threading.Thread(target=visit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert server.json("/counter")["visits"] == 8 * 50 + 1
    assert len(pids) >= 3


def all_commands(server: redis.Redis) -> dict[str, int]:
    """Calls per command on ``server``, leaving out the INFO that asks."""
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in server.info("commandstats").items()
        if name != "cmdstat_info"
    }


@pytest.mark.parametrize("hooked", [False, True], ids=["fast path", "through Flask"])
def test_a_cached_view_hit_is_one_round_trip(
    make_app: Callable[..., Flask],
    redis_server: RedisServer,
    client_of: redis.Redis,
    hooked: bool,
) -> None:
    app = make_app(
        UWSGICACHE_BACKEND="redis",
        UWSGICACHE_REDIS_URL=redis_server.url,
        UWSGICACHE_NAME="trips",
    )
    ext = UWSGICache(app)

    @app.route("/page")
    @ext.cached()
    def page() -> str:
        return "page"

    if hooked:  # a hook: the fast path stands aside and the decorator serves hits
        app.before_request(lambda: None)
    with app.app_context():
        ext.clear()
    client = app.test_client()
    assert client.get("/page").data == b"page"
    before = all_commands(client_of)
    for _ in range(5):
        assert client.get("/page").data == b"page"
    after = all_commands(client_of)
    ran = {name: after[name] - before.get(name, 0) for name in after}
    # One MGET: the response and its path's generation (flask_uwsgicache.generations).
    assert {name: calls for name, calls in ran.items() if calls} == {"mget": 5}
    name = f"{__name__}.{page.__qualname__}"
    assert ext.stats()["views"][name] == {"hits": 5, "misses": 1, "refused": 0}
