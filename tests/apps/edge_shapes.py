"""Apps for tests/test_edge.py: one edge view, served as uWSGI's callable ``app`` (the
Flask app itself) or ``wrapped`` (inside WSGI middleware that the edge would skip)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import uwsgi
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from flask_uwsgicache import UWSGICache

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

app = Flask(__name__)
app.config.update(SECRET_KEY="edge shapes", UWSGICACHE_NAME="default")
cache = UWSGICache(app)


@app.route("/page")
@cache.cached(timeout=60, edge=True)
def page() -> ResponseReturnValue:
    return f"<p>render {cache.inc('renders', timeout=0)}</p>"


@app.route("/echo/<name>")
@cache.cached(timeout=60, edge=True)
def echo(name: str) -> ResponseReturnValue:
    return f"<p>{name}</p>"


@app.route("/edge-keys")
def edge_keys() -> ResponseReturnValue:
    # Entries only: not their paths' records (flask_uwsgicache.edgeindex).
    keys = (key.decode() for key in uwsgi.cache_keys("edge"))
    return jsonify(sorted(key for key in keys if not key.startswith("\0")))


def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """WSGI middleware around the app: it could check anything, so the edge stays off."""
    return app(environ, start_response)
