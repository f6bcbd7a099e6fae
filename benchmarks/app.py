"""The app the benchmark scripts serve with uWSGI: benchmarks/run.py (views),
benchmarks/lock_engine.py (views and a counter), benchmarks/kill_storm.py (writes)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_caching import Cache

from flask_uwsgicache import UWSGICache

application = Flask(__name__)
application.config.update(
    SECRET_KEY="bench secret",
    UWSGICACHE_NAME="bench",
    CACHE_TYPE="flask_caching.contrib.uwsgicache.UWSGICache",
    CACHE_UWSGI_NAME="bench",
)
# FLASK_UWSGICACHE_BACKEND and FLASK_UWSGICACHE_REDIS_URL: the backends' rows of
# benchmarks/run.py.
application.config.from_prefixed_env()
ours = UWSGICache(application)
flask_caching = Cache(application)
PAGE = "<p>" + "a 5 ms page " * 50 + "</p>"


@application.route("/hello")
def hello() -> str:
    return "hello"


def slow_page() -> str:
    time.sleep(0.005)
    return PAGE


def serve(path: str, decorator: Callable[[Callable[[], str]], Any] | None = None) -> None:
    """Serve the 5 ms page at ``path``, through ``decorator`` when given."""
    view = slow_page if decorator is None else decorator(slow_page)
    application.add_url_rule(path, path.strip("/"), view)


serve("/slow")
serve("/cached", ours.cached(timeout=3600))
serve("/edge", ours.cached(timeout=3600, edge=True))
serve("/flask-caching", flask_caching.cached(timeout=3600))


@application.route("/counter")
def counter() -> str:
    """An exact counter: one ``inc`` under uWSGI's cache lock per request."""
    return str(ours.inc("visits", timeout=0))


@application.route("/write/<int:slot>")
def write(slot: int) -> dict[str, int]:
    """A write under the cache lock to one of 10 keys; answers with the worker's pid."""
    ours.set(f"slot{slot % 10}", {"slot": slot}, timeout=60)
    return {"pid": os.getpid()}
