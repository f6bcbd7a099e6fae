"""The app benchmarks/run.py serves with uWSGI (4 workers) for the end-to-end rows."""

from __future__ import annotations

import time

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
ours = UWSGICache(application)
flask_caching = Cache(application)
PAGE = "<p>" + "a 5 ms page " * 50 + "</p>"


@application.route("/hello")
def hello() -> str:
    return "hello"


@application.route("/slow")
def slow() -> str:
    time.sleep(0.005)
    return PAGE


@application.route("/cached")
@ours.cached(timeout=3600)
def cached() -> str:
    time.sleep(0.005)
    return PAGE


@application.route("/edge")
@ours.cached(timeout=3600, edge=True)
def edge() -> str:
    time.sleep(0.005)
    return PAGE


@application.route("/flask-caching")
@flask_caching.cached(timeout=3600)
def flask_caching_cached() -> str:
    time.sleep(0.005)
    return PAGE
