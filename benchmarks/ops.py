"""Per-operation timings inside a uWSGI worker; run by benchmarks/run.py.

``uwsgi --cache2 name=bench,... --pyrun benchmarks/ops.py`` with BENCH_OUT (a JSON file
to write), BENCH_REPS and BENCH_NUMBER in the environment, and BENCH_REDIS_URL for the
Redis and tiered rows. Each repetition times every
operation once, in the same order, so ratios can be taken within a repetition.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import redis
import uwsgi
from cachelib import UWSGICache as CachelibUWSGICache
from flask import Flask
from flask_caching import Cache

from flask_uwsgicache import UWSGICache
from flask_uwsgicache.envelope import LEAD, TRAILER, TRAILER_SIZE

CACHE = "bench"
FLASK_CACHING_UWSGI = "flask_caching.contrib.uwsgicache.UWSGICache"
SMALL = {"id": 42, "name": "a user name", "roles": ["admin", "editor"], "score": 3.5}
TEXT = "x" * 10_000
ROUNDS = 5
TIERED_KEY = "tiered small"
Operation = tuple[Callable[[], object], Callable[[], AbstractContextManager[Any]]]


def ours(sign: bool) -> dict[str, Operation]:
    app = Flask(f"ours_{sign}")
    app.config.update(
        SECRET_KEY="bench secret",
        UWSGICACHE_SIGN=sign,
        UWSGICACHE_NAME=CACHE,
        UWSGICACHE_KEY_PREFIX=f"{sign}:",  # the two apps must not read each other's keys
    )
    ext = UWSGICache(app)
    bound = app.extensions["uwsgicache"]
    bound.set("small", SMALL)
    bound.set("text", TEXT)
    label = "signed" if sign else "unsigned"
    none = nullcontext
    operations: dict[str, Operation] = {
        f"ours get small {label}": (lambda: bound.get("small"), none),
    }
    if sign:
        operations.update(cold_read(bound))
    operations |= {
        f"ours ext.get small {label}": (lambda: ext.get("small"), app.app_context),
        f"ours get miss {label}": (lambda: bound.get("missing"), none),
        f"ours set small {label}": (lambda: bound.set("small", SMALL), none),
        f"ours get 10KB str {label}": (lambda: bound.get("text"), none),
        f"ours set 10KB str {label}": (lambda: bound.set("text", TEXT), none),
    }
    return operations


def cold_read(bound: Any) -> dict[str, Operation]:
    """A signed read of an entry this process has not verified yet: the memo of verified
    entries is emptied before each read, so every read checks the MAC. The same entry,
    decode and unpickling as the warm row; the extra work is the MAC and emptying a
    one-entry dict."""
    verified = bound.envelope.verified

    def read() -> object:
        verified.clear()
        return bound.get("small")

    return {"ours get small signed, cold": (read, nullcontext)}


def peers() -> dict[str, Operation]:
    fc_app = Flask("flask_caching")
    fc = Cache(
        fc_app, config={"CACHE_TYPE": FLASK_CACHING_UWSGI, "CACHE_UWSGI_NAME": CACHE}
    )
    with fc_app.app_context():
        fc.set("fc:small", SMALL)
    backend = fc.cache  # flask_caching.contrib.uwsgicache.UWSGICache
    cachelib = CachelibUWSGICache(cache=CACHE)
    cachelib.set("cl:small", SMALL)
    none = nullcontext
    return {
        "flask-caching ext.get small": (lambda: fc.get("fc:small"), fc_app.app_context),
        "flask-caching get small": (lambda: backend.get("fc:small"), none),
        "flask-caching set small": (lambda: backend.set("fc:small", SMALL), none),
        "flask-caching get miss": (lambda: backend.get("fc:missing"), none),
        "cachelib get small": (lambda: cachelib.get("cl:small"), none),
        "cachelib set small": (lambda: cachelib.set("cl:small", SMALL), none),
        "cachelib get miss": (lambda: cachelib.get("cl:missing"), none),
    }


def raw() -> dict[str, Operation]:
    small = pickle.dumps(SMALL, pickle.HIGHEST_PROTOCOL)
    uwsgi.cache_update("raw:small", small, 0, CACHE)
    uwsgi.cache_update("raw:bytes", small[:100], 0, CACHE)
    uwsgi.cache_update("raw:text", TEXT, 0, CACHE)
    return {
        "raw get bytes": (lambda: uwsgi.cache_get("raw:bytes", CACHE), nullcontext),
        "raw update bytes": (
            lambda: uwsgi.cache_update("raw:bytes", small[:100], 300, CACHE),
            nullcontext,
        ),
        "raw get+pickle small": (
            # what every plain wrapper does; the key is known to be there
            lambda: pickle.loads(uwsgi.cache_get("raw:small", CACHE)),  # type: ignore[arg-type]
            nullcontext,
        ),
        "raw pickle+update small": (
            # what every plain wrapper's set does
            lambda: uwsgi.cache_update(
                "raw:small", pickle.dumps(SMALL, pickle.HIGHEST_PROTOCOL), 300, CACHE
            ),
            nullcontext,
        ),
        "raw get miss": (lambda: uwsgi.cache_get("raw:missing", CACHE), nullcontext),
        "raw get 10KB": (lambda: uwsgi.cache_get("raw:text", CACHE), nullcontext),
    }


def on_redis(url: str) -> dict[str, Operation]:
    """This package and Flask-Caching's RedisCache on the same Redis, both through their
    extension objects (signed here, as by default with a SECRET_KEY)."""
    app = Flask("ours_redis")
    app.config.update(
        SECRET_KEY="bench secret",
        UWSGICACHE_BACKEND="redis",
        UWSGICACHE_REDIS_URL=url,
        UWSGICACHE_NAME="bench",
    )
    ext = UWSGICache(app)
    fc_app = Flask("fc_redis")
    fc = Cache(fc_app, config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": url})
    with app.app_context():
        ext.set("small", SMALL)
    with fc_app.app_context():
        fc.set("small", SMALL)
    return {
        "redis: ours ext.get small": (lambda: ext.get("small"), app.app_context),
        "redis: flask-caching ext.get small": (lambda: fc.get("small"), fc_app.app_context),
        "redis: ours ext.set small": (lambda: ext.set("small", SMALL), app.app_context),
        "redis: flask-caching ext.set small": (
            lambda: fc.set("small", SMALL),
            fc_app.app_context,
        ),
    }


def on_tiered(url: str) -> dict[str, Operation]:
    """The tiered backend's local hit (this worker's cache2 copy, once its listener is
    in sync) next to a plain redis-py GET of the same entry, and through the extension
    object, next to the redis backend's ``ext.get`` (``on_redis``). A key of its own:
    the writes of the redis rows, in the same namespace, do not drop its copy."""
    app = Flask("ours_tiered")
    app.config.update(
        SECRET_KEY="bench secret",
        UWSGICACHE_BACKEND="tiered",
        UWSGICACHE_REDIS_URL=url,
        UWSGICACHE_NAME=CACHE,
    )
    ext = UWSGICache(app)
    bound = app.extensions["uwsgicache"]
    client = redis.Redis.from_url(url)
    with app.app_context():
        ext.set(TIERED_KEY, SMALL)
        deadline = time.monotonic() + 10
        while not bound.describe()["local_copies"]:  # a read starts the listener
            if time.monotonic() > deadline:
                raise RuntimeError("the tiered backend's listener did not come in sync")
            ext.get(TIERED_KEY)
            time.sleep(0.01)
        time.sleep(0.1)  # the notice of the write above has come
        ext.get(TIERED_KEY)
    backend = bound.backend
    ours_key = TIERED_KEY.encode()
    storage_key = next(key for key in backend.keys() if key.endswith(ours_key))
    redis_key = backend.remote.namespace + storage_key

    @contextmanager
    def settled() -> Iterator[None]:
        # The redis rows' writes (the same namespace) reach the listener as notices:
        # the local hit is timed once it has applied them, as on an instance where no
        # write is going on (what a notice costs is benchmarks/invalidation.py's).
        time.sleep(0.05)
        with app.app_context():
            yield

    return {
        "redis: raw GET small": (lambda: client.get(redis_key), nullcontext),
        "tiered: backend get small (local copy)": (
            lambda: backend.get(storage_key),
            settled,
        ),
        "tiered: ours ext.get small (local copy)": (lambda: ext.get(TIERED_KEY), settled),
    }


def floor() -> dict[str, Operation]:
    """The least a Python ``get`` with exact expiry can do, for scale.

    One function: encode the key, read, unpack an expiry trailer, compare it with the
    clock, unpickle the entry in place. No prefix, key-size, corruption or signature
    checks. The gap between this row and "raw get+pickle" is the interpreter's price of
    a wrapper function and an expiry check, which no wrapper written in Python avoids.
    """
    unpack = TRAILER.unpack_from
    clock = time.time
    entry = pickle.dumps(SMALL, pickle.HIGHEST_PROTOCOL) + TRAILER.pack(
        clock() + 3600, 3, LEAD
    )
    uwsgi.cache_update("floor:small", entry, 0, CACHE)

    def get(key: str) -> Any:
        entry = uwsgi.cache_get(key.encode(), CACHE)
        if entry is None:
            return None
        expires_at, _flags, _lead = unpack(entry, -TRAILER_SIZE)
        if expires_at and expires_at <= clock():
            return None
        return pickle.loads(entry)

    return {"floor get+expiry+pickle small": (lambda: get("floor:small"), nullcontext)}


def measure(operation: Callable[[], object], number: int) -> float:
    """Nanoseconds per call, over ``number`` calls after one warm-up call."""
    operation()
    started = time.perf_counter_ns()
    for _ in range(number):
        operation()
    return (time.perf_counter_ns() - started) / number


def main() -> None:
    """Time every operation; a failure exits non-zero (uWSGI would exit 0 otherwise).

    Each repetition runs ``ROUNDS`` rounds over all operations, ``number / ROUNDS`` calls
    each, and keeps each operation's fastest round: on a shared, noisy machine the
    fastest round is the one least disturbed, and every operation gets the same chances.
    """
    reps = int(os.environ.get("BENCH_REPS", "5"))
    number = max(int(os.environ.get("BENCH_NUMBER", "20000")) // ROUNDS, 1)
    operations = {**raw(), **floor(), **ours(False), **ours(True), **peers()}
    if os.environ.get("BENCH_REDIS_URL"):
        operations.update(on_redis(os.environ["BENCH_REDIS_URL"]))
        operations.update(on_tiered(os.environ["BENCH_REDIS_URL"]))
    results: dict[str, list[float]] = {name: [] for name in operations}
    for _ in range(reps):
        best = dict.fromkeys(operations, float("inf"))
        for _ in range(ROUNDS):
            for name, (operation, context) in operations.items():
                # A Redis call is a network round trip: a tenth of the calls.
                calls = max(number // 10, 1) if name.startswith("redis:") else number
                with context():
                    best[name] = min(best[name], measure(operation, calls))
        for name, value in best.items():
            results[name].append(value)
    with open(os.environ["BENCH_OUT"], "w") as out:
        json.dump(results, out)


try:
    main()
except BaseException:
    import sys
    import traceback

    traceback.print_exc()
    sys.exit(1)
