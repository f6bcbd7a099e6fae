"""The example app: ``wsgi-file = example_app/manage.py``, ``callable = flaskapp``.

Every worker process answers from the same uWSGI cache: reload ``/`` and watch the pid
change while the counter keeps counting.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from flask_uwsgicache import UWSGICache

cache = UWSGICache()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get("SECRET_KEY", "change me: entries are signed with it"),
        UWSGICACHE_DEFAULT_TIMEOUT=300,
    )
    app.config.from_prefixed_env()
    cache.init_app(app)

    @app.route("/")
    def index() -> ResponseReturnValue:
        visits = cache.inc("visits", timeout=0)
        return jsonify(visits=visits, worker_pid=os.getpid(), cache=cache.stats())

    return app


flaskapp = create_app()
