"""A WSGI app for tests/test_uwsgi.py: a shared counter, a key with a timeout, and a
slow cached view that counts how often its body runs."""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from flask_uwsgicache import UWSGICache

application = Flask(__name__)
application.config.update(
    SECRET_KEY="counter test",
    UWSGICACHE_BACKEND="uwsgi",
    UWSGICACHE_NAME=os.environ.get("UWSGICACHE_NAME", "default"),
)
cache = UWSGICache(application)


@application.route("/inc")
def inc() -> ResponseReturnValue:
    value = None
    for _ in range(request.args.get("n", 1, type=int)):
        value = cache.inc("hits", timeout=0)
    return jsonify(pid=os.getpid(), last=value)


@application.route("/value")
def value() -> ResponseReturnValue:
    return jsonify(pid=os.getpid(), value=cache.get("hits", 0))


@application.route("/set/<key>")
def set_value(key: str) -> ResponseReturnValue:
    stored = cache.set(
        key, request.args["value"], timeout=request.args.get("timeout", type=float)
    )
    return jsonify(pid=os.getpid(), stored=stored)


@application.route("/plant/<key>")
def plant(key: str) -> ResponseReturnValue:
    """``key`` with an entry that expires in ``timeout`` seconds, which uWSGI is told
    to keep for an hour: whatever its sweeper does, it still holds the item after."""
    import uwsgi

    bound = application.extensions["uwsgicache"]
    storage_key = bound.storage_key(key)
    expires_at = time.time() + request.args.get("timeout", type=float, default=1.0)
    entry = bound.envelope.encode(storage_key, request.args["value"], expires_at)
    stored = uwsgi.cache_update(storage_key, entry, 3600, bound.backend.cache_name)
    return jsonify(pid=os.getpid(), stored=bool(stored))


@application.route("/get/<key>")
def get_value(key: str) -> ResponseReturnValue:
    return jsonify(pid=os.getpid(), value=cache.get(key), raw=raw_present(key))


def raw_present(key: str) -> bool:
    """Whether uWSGI itself still holds the item (its sweeper runs every few seconds)."""
    import uwsgi

    bound = application.extensions["uwsgicache"]
    return bool(uwsgi.cache_exists(bound.storage_key(key), bound.backend.cache_name))


@application.route("/slow")
@cache.cached(timeout=60)
def slow() -> ResponseReturnValue:
    cache.inc("slow-runs", timeout=0)
    time.sleep(0.5)
    return jsonify(pid=os.getpid(), body="slow")


@application.route("/stats")
def stats() -> ResponseReturnValue:
    return jsonify(cache.stats()["views"])
