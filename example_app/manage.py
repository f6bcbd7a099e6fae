"""The example app: ``wsgi-file = example_app/manage.py``, ``callable = flaskapp``.

Every page that is not cached shows which worker process answered (cached ones, which
worker computed them); reload and watch the pid change while the data stays the same:
the workers share one uWSGI cache. Counts the cache cannot keep (it is full) show as
null ("unknown") rather than failing the page. Outside uWSGI
(``flask --app example_app/manage.py run``) the same code uses the memory backend.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from flask_uwsgicache import UWSGICache
from flask_uwsgicache.errors import CacheError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

cache = UWSGICache()

INDEX = """<!doctype html>
<title>flask-uwsgicache example</title>
<h1>flask-uwsgicache example</h1>
<p>Answered by worker pid {pid}. Reload: the pid changes, the cache is shared.</p>
<ul>
  <li><a href="/counter">/counter</a>: a visit counter shared by all workers (exact)</li>
  <li><a href="/slow">/slow</a>: a 1 s view, cached for 30 s
      with <code>@cache.cached</code></li>
  <li><a href="/search?q=uwsgi&amp;page=2">/search?q=uwsgi&amp;page=2</a>: a cached view
      keyed by its sorted query string</li>
  <li><a href="/primes/50000">/primes/50000</a>: a memoized computation</li>
  <li><a href="/api/keys/greeting">/api/keys/greeting</a>: GET, PUT <code>{{"value": …,
      "timeout": …}}</code> or DELETE a key of your own (kept apart from the app's
      counters; bad input gets a 4xx with a JSON error)</li>
  <li><a href="/news">/news</a> and <a href="/api/clock">/api/clock</a>: edge-cached
      (<code>edge=True</code>): with deploy/uwsgi-edge.ini uWSGI answers them from its
      cache without calling Python; <code>POST /news/refresh</code> invalidates</li>
  <li><code>POST /clear</code>: empties the cache, the edge caches included</li>
  <li><a href="/stats">/stats</a>: the cache's limits, items used, per-view hits, and how
      many requests reached Python</li>
</ul>
"""

NEWS = """<!doctype html>
<title>news</title>
<p>Rendered at {at} by worker pid {pid} (render number {runs}).</p>
<p>With deploy/uwsgi-edge.ini, uWSGI serves this page for 30 s without Python: the pid
and the render number stay the same, and /stats shows requests reaching Python only
for the other pages. <code>curl -X POST /news/refresh</code> makes the next one
render again.</p>
"""


# The JSON API's keys live under this prefix, so no request can reach the keys the app
# uses itself (the counters below).
API_PREFIX = "api:"
API_KEY_CHARS = 200


def count(name: str) -> int | None:
    """``cache.inc(name)``; None when the cache refused the write (a full cache, Redis
    down): a page shows the count as unknown instead of failing."""
    try:
        return cache.inc(name, timeout=0)
    except CacheError:
        return None


def count_requests(app: Flask) -> None:
    """Count every request that reaches Python in ``python_requests`` (edge hits do
    not). A refused write (a full cache) leaves the count behind, never the request."""
    bound = app.extensions["uwsgicache"]
    inner = app.wsgi_app

    def counted(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        try:
            bound.inc("python_requests", timeout=0)
        except CacheError:
            pass
        return inner(environ, start_response)

    app.wsgi_app = counted  # type: ignore[method-assign]


@cache.memoize(timeout=300)
def count_primes(limit: int) -> int:
    """A deliberately slow computation: the number of primes below ``limit``."""
    sieve = bytearray([1]) * max(limit, 2)
    sieve[0:2] = b"\x00\x00"
    for number in range(2, int(limit**0.5) + 1):
        if sieve[number]:
            sieve[number * number :: number] = bytes(
                len(range(number * number, limit, number))
            )
    return sum(sieve)


def create_app() -> Flask:
    """The app factory. Config: ``SECRET_KEY`` signs entries; ``FLASK_*`` overrides."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=os.environ.get(
            "SECRET_KEY", "change me: cache entries are signed with it"
        ),
        UWSGICACHE_DEFAULT_TIMEOUT=300,
        # Used with UWSGICACHE_BACKEND = "redis" (FLASK_UWSGICACHE_BACKEND=redis).
        UWSGICACHE_REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        # The edge caches of deploy/uwsgi-edge.ini, by the content type they serve.
        UWSGICACHE_EDGE={
            "text/html; charset=utf-8": "edge",
            "application/json": "edge_json",
        },
        # count_requests below is WSGI middleware that only counts: the edge may answer
        # without it (that is what the count shows). Without this setting the edge
        # refuses to skip middleware, which could be an auth check.
        UWSGICACHE_EDGE_SKIPS_MIDDLEWARE=True,
    )
    app.config.from_prefixed_env()
    cache.init_app(app)
    count_requests(app)

    @app.route("/")
    def index() -> ResponseReturnValue:
        return INDEX.format(pid=os.getpid())

    @app.errorhandler(HTTPException)
    def json_error(error: HTTPException) -> ResponseReturnValue:
        # Every error of this app is JSON, as its API is (404, 405, 400 ...).
        return jsonify(error=error.description, pid=os.getpid()), error.code or 500

    @app.route("/counter")
    def counter() -> ResponseReturnValue:
        return jsonify(visits=count("visits"), pid=os.getpid())

    @app.route("/slow")
    @cache.cached(timeout=30)
    def slow() -> ResponseReturnValue:
        runs = count("slow_view_runs")
        time.sleep(1)
        return jsonify(computed_at=time.time(), computed_by=os.getpid(), body_runs=runs)

    @app.route("/search")
    @cache.cached(timeout=60)
    def search() -> ResponseReturnValue:
        # The query string is part of the key: ?q=a&page=2 and ?page=2&q=a share one.
        query = request.args.get("q", "")
        page = request.args.get("page", 1, type=int)
        results = [
            f"{query} result {number}" for number in range(page * 10 - 9, page * 10 + 1)
        ]
        return jsonify(
            q=query,
            page=page,
            results=results,
            computed_by=os.getpid(),
            computed_at=time.time(),
        )

    @app.route("/primes/<int:limit>")
    def primes(limit: int) -> ResponseReturnValue:
        if not 2 <= limit <= 5_000_000:
            return api_error(400, "limit must be 2 to 5000000")
        started = time.perf_counter()
        found = count_primes(limit)
        return jsonify(
            limit=limit,
            primes=found,
            seconds=time.perf_counter() - started,
            pid=os.getpid(),
        )

    @app.route("/api/keys/<key>", methods=["GET", "PUT", "DELETE"])
    def api_key(key: str) -> ResponseReturnValue:
        if len(key) > API_KEY_CHARS:
            return api_error(400, f"keys are at most {API_KEY_CHARS} characters")
        stored_as = API_PREFIX + key
        if request.method == "PUT":
            body = request.get_json(force=True, silent=True)
            if not isinstance(body, dict) or "value" not in body:
                return api_error(400, 'send a JSON object like {"value": 1, "timeout": 60}')
            # The stored entry is about the body's size plus a few dozen bytes.
            largest = app.extensions["uwsgicache"].describe()["max_value_size"] - 64
            if (request.content_length or 0) > largest:
                return api_error(413, f"send at most {largest} bytes")
            try:
                stored = cache.set(stored_as, body["value"], timeout=body.get("timeout"))
            except (TypeError, ValueError) as error:  # a bad timeout
                return api_error(400, str(error))
            if not stored:  # not the client's fault: the log says why (a full cache)
                return api_error(507, "the cache refused the value (see the log)")
            return jsonify(key=key, stored=True, pid=os.getpid())
        if request.method == "DELETE":
            return jsonify(key=key, deleted=cache.delete(stored_as), pid=os.getpid())
        value = cache.get(stored_as)
        return jsonify(key=key, value=value, found=cache.has(stored_as), pid=os.getpid())

    @app.route("/news")
    @cache.cached(timeout=30, edge=True)
    def news() -> ResponseReturnValue:
        runs = count("news_renders")
        return NEWS.format(
            at=time.strftime("%H:%M:%S"),
            pid=os.getpid(),
            runs="unknown" if runs is None else runs,
        )

    @app.post("/news/refresh")
    def refresh_news() -> ResponseReturnValue:
        return jsonify(deleted=cache.delete_edge("/news"), pid=os.getpid())

    @app.post("/clear")
    def clear() -> ResponseReturnValue:
        return jsonify(cleared=cache.clear(), pid=os.getpid())

    @app.route("/api/clock")
    @cache.cached(timeout=2, edge=True)
    def clock() -> ResponseReturnValue:
        return jsonify(time=time.time(), pid=os.getpid())

    @app.route("/stats")
    def stats() -> ResponseReturnValue:
        return jsonify(
            pid=os.getpid(),
            python_requests=cache.get("python_requests"),
            news_renders=cache.get("news_renders"),
            slow_view_runs=cache.get("slow_view_runs"),
            stats=cache.stats(),
        )

    return app


def api_error(status: int, message: str) -> ResponseReturnValue:
    return jsonify(error=message, pid=os.getpid()), status


flaskapp = create_app()
