"""A WSGI app for tests/test_uwsgi.py: each request increments one shared counter."""

from __future__ import annotations

import os

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
