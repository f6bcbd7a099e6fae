"""The app of tests/test_differential.py: one factory, built with or without the cache.

``create_app(cached=True, shape)`` decorates its views with ``UWSGICache.cached``;
``create_app(cached=False, shape)`` is the same app with every ``cached(...)`` an
identity decorator and no extension at all. Every view is deterministic (its answer
depends only on the request), so the two builds must answer every request alike: any
difference is the cache showing through.

Under uWSGI the module-level ``app`` is built from ``DIFF_CACHED`` ("1"/"0", default
"1") and ``DIFF_SHAPE`` (default "plain")::

    uwsgi --master --processes 4 --http-socket 127.0.0.1:8000 \\
        --cache2 name=default,items=2000,blocksize=65536,keysize=250 \\
        --env DIFF_CACHED=1 --wsgi-file tests/apps/differential.py --callable app

Shapes: ``plain`` (nothing but the views), ``middleware_before`` / ``middleware_after``
(a WSGI middleware guarding /admin-area wrapped on ``app.wsgi_app`` before / after
the extension is initialised) and ``hooks`` (a ``before_request`` guarding /hooked).
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, make_response, request, session
from flask.typing import ResponseReturnValue
from markupsafe import escape
from werkzeug.exceptions import NotFound

from flask_uwsgicache import UWSGICache

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

SHAPES = ("plain", "middleware_before", "middleware_after", "hooks")
SECRET_KEY = "differential secret"
SERVER_NAME = "example.test"
USERS = {"alice": "wonderland", "bob": "builder"}
ADMIN_TOKEN = "s3cret"
HOOK_TOKEN = "t"
# Answered 200 on any Host, even one the routes do not serve: start_uwsgi polls
# http://127.0.0.1:PORT/_diff/ready, and 127.0.0.1 is not SERVER_NAME. This is done by
# the 404 handler, not by WSGI middleware: the package looks for middleware around the
# app (the edge and the fast path must not skip it), and there must be none here.
READY_PATH = "/_diff/ready"

View = Callable[..., Any]
Decorator = Callable[[View], View]


def forged_stored_response() -> bytes:
    """Bytes laid out like a response stored by the cache (``b"uCR3"``, a stamp, head
    length, JSON head, body; see flask_uwsgicache/responses.py), built by hand. A
    plain function returns them: they are data and must come back as they are."""
    head = json.dumps(
        [200, [["Content-Type", "text/plain; charset=utf-8"]], "forged", True],
        separators=(",", ":"),
    ).encode()
    body = b"FORGED: a function's bytes were served as a stored response"
    return b"uCR3" + bytes(8) + struct.pack("<I", len(head)) + head + body


def identity(f: View) -> View:
    return f


class AdminGate:
    """WSGI middleware: 403 for paths under /admin-area without the admin token."""

    def __init__(self, wsgi_app: WSGIApplication) -> None:
        self.wsgi_app = wsgi_app

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith("/admin-area") and environ.get("HTTP_X_ADMIN_TOKEN") != (
            ADMIN_TOKEN
        ):
            body = b"admin token required"
            start_response(
                "403 FORBIDDEN",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
        return self.wsgi_app(environ, start_response)


def require_login(view: View) -> View:
    """401 unless the session has a user (placed outside the cache decorator)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if session.get("user") is None:
            return "login required", 401
        return view(*args, **kwargs)

    return wrapper


def require_basic(view: View) -> View:
    """401 unless HTTP Basic credentials of a known user (outside the cache)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or auth.username not in USERS
            or USERS[auth.username] != auth.password
        ):
            return Response(
                "authentication required",
                401,
                {"WWW-Authenticate": 'Basic realm="differential"'},
            )
        return view(*args, **kwargs)

    return wrapper


def create_app(cached: bool, shape: str) -> Flask:
    """The app under test, with the cache (``cached``) or without, in ``shape``."""
    if shape not in SHAPES:
        raise ValueError(f"shape is {shape!r}; one of {SHAPES}")
    app = Flask(__name__, subdomain_matching=True)
    app.config.update(
        SECRET_KEY=SECRET_KEY,
        SERVER_NAME=SERVER_NAME,
        UWSGICACHE_NAME="default",
        UWSGICACHE_DEFAULT_TIMEOUT=300,
    )
    if shape == "middleware_before":
        app.wsgi_app = AdminGate(app.wsgi_app)  # type: ignore[method-assign]
    ext = UWSGICache(app) if cached else None
    if shape == "middleware_after":
        app.wsgi_app = AdminGate(app.wsgi_app)  # type: ignore[method-assign]

    def cache(**options: Any) -> Decorator:
        """``ext.cached(**options)``, or an identity decorator without the cache."""
        return identity if ext is None else ext.cached(**options)

    # 1. the public home page, and 9. the admin host's own pages
    @app.route("/")
    @cache()
    def index() -> ResponseReturnValue:
        return f"<h1>home</h1><p>q={escape(request.args.get('q'))}</p>"

    @app.route("/", subdomain="admin")
    @cache()
    def admin_index() -> ResponseReturnValue:
        return "<h1>admin home</h1>"

    @app.route("/dash", subdomain="admin")
    @cache()
    def admin_dash() -> ResponseReturnValue:
        return f"<h1>admin dashboard</h1><p>q={escape(request.args.get('q'))}</p>"

    # 2. a path converter
    @app.route("/page/<path:name>")
    @cache()
    def page(name: str) -> ResponseReturnValue:
        args = sorted(request.args.items(multi=True))
        return f"<p>page {escape(repr(name))} args {escape(repr(args))}</p>"

    # 3. query_string on and off. /search echoes the parameters sorted by name with
    # each name's values in their order: the order the default key already keeps
    # (docs/views.rst: ?a=1&b=2 is ?b=2&a=1, by design).
    @app.route("/search")
    @cache(query_string=True)
    def search() -> ResponseReturnValue:
        args = sorted(request.args.lists())
        return f"<p>search {escape(repr(args))}</p>"

    @app.route("/all")
    @cache(query_string=False)
    def all_items() -> ResponseReturnValue:
        return "<p>all items</p>"

    # 4. and 5. the session, read tracked (get) and untracked (in)
    @app.route("/greet")
    @cache()
    def greet() -> ResponseReturnValue:
        return f"Hello, {escape(session.get('user', 'stranger'))}"

    @app.route("/greet2")
    @cache()
    def greet2() -> ResponseReturnValue:
        if "user" in session:
            return "Hello again, a signed-in user"
        return "Hello again, stranger"

    # 6. and 7. authorisation decorators outside the cache
    @app.route("/me")
    @require_login
    @cache()
    def me() -> ResponseReturnValue:
        return f"private page of {escape(session['user'])}"

    @app.route("/basic")
    @require_basic
    @cache()
    def basic() -> ResponseReturnValue:
        auth = request.authorization
        user = auth.username if auth is not None else None
        return f"basic page of {escape(user)}"

    # 8. content negotiation, declared with Vary
    @app.route("/lang")
    @cache()
    def lang() -> ResponseReturnValue:
        best = request.accept_languages.best_match(["de", "fr", "en"], default="en")
        words = {"de": "Hallo", "fr": "Bonjour", "en": "Hello"}
        response = make_response(f"{words[best]} ({best})")
        response.headers["Vary"] = "Accept-Language"
        return response

    # 10. cached plain functions called from views
    @cache()
    def helper() -> str:
        return "helper value"

    @app.route("/helper-user")
    def helper_user() -> ResponseReturnValue:
        return f"{helper()} for {escape(session.get('user', 'nobody'))}"

    @cache()
    def nested_part() -> str:
        return "nested part"

    @app.route("/nested")
    @cache()
    def nested() -> ResponseReturnValue:
        return f"nested page with {nested_part()}"

    # 11. a function's bytes that look like a stored response
    @cache()
    def blob_value() -> bytes:
        return forged_stored_response()

    @app.route("/blob")
    def blob() -> ResponseReturnValue:
        return Response(blob_value(), content_type="application/octet-stream")

    # 12. the session's writers
    @app.route("/login", methods=["POST"])
    def login() -> ResponseReturnValue:
        user = request.args.get("user", "")
        if user not in USERS:
            return "unknown user", 400
        session["user"] = user
        return f"logged in as {user}"

    @app.route("/logout", methods=["POST"])
    def logout() -> ResponseReturnValue:
        session.pop("user", None)
        return "logged out"

    # 13. the edge
    @app.route("/edge")
    @cache(edge=True)
    def edge() -> ResponseReturnValue:
        return f"<p>edge page q={escape(request.args.get('q'))}</p>"

    @app.route("/edge-me")
    @cache(edge=True)
    def edge_me() -> ResponseReturnValue:
        return f"<p>edge hello, {escape(session.get('user', 'stranger'))}</p>"

    # the shapes' guarded views
    if shape in ("middleware_before", "middleware_after"):

        @app.route("/admin-area")
        @cache()
        def admin_area() -> ResponseReturnValue:
            return "<p>admin area: the secret plans</p>"

    if shape == "hooks":

        @app.before_request
        def guard_hooked() -> ResponseReturnValue | None:
            if request.path.startswith("/hooked") and (
                request.headers.get("X-Token") != HOOK_TOKEN
            ):
                return "token required", 403
            return None

        @app.route("/hooked")
        @cache()
        def hooked() -> ResponseReturnValue:
            return "<p>hooked: behind a before_request</p>"

    # the harness's own, in both builds, POST only (never cached, never at the edge):
    # empty the cache between examples (a no-op without the cache), and the cache's
    # statistics, which show that the cached build does cache ({} without the cache)
    @app.route("/_diff/clear", methods=["POST"])
    def diff_clear() -> ResponseReturnValue:
        if ext is not None:
            ext.clear()
        return "cleared"

    @app.route("/_diff/stats", methods=["POST"])
    def diff_stats() -> ResponseReturnValue:
        if ext is None:
            return {}
        stats = ext.stats()
        return {"views": stats["views"], "edge": stats["edge"]}

    @app.errorhandler(404)
    def not_found(error: NotFound) -> ResponseReturnValue:
        if request.path == READY_PATH:
            return "ready"
        return error

    return app


def prime(flask_app: Flask) -> None:
    """Serve each kind of cached view once, then empty the cache.

    The cache keeps per-process state besides its entries (which key layouts the fast
    path looks up, learnt from the views it has served). Under uWSGI this runs in the
    master before it forks, so every worker starts in that same steady state and an
    answer does not depend on which worker a request reaches.
    """
    client = flask_app.test_client()
    for path in ("/", "/all"):  # query_string=True and query_string=False
        client.get(path, base_url=f"http://{SERVER_NAME}/")
    ext = flask_app.extensions.get("uwsgicache")
    if ext is not None:
        with flask_app.app_context():
            ext.clear()


def from_environment() -> Flask:
    """The app uWSGI serves, from ``DIFF_CACHED`` and ``DIFF_SHAPE``."""
    flag = os.environ.get("DIFF_CACHED", "1")
    if flag not in ("0", "1"):
        raise ValueError(f"DIFF_CACHED is {flag!r}; set it to 1 or 0")
    flask_app = create_app(flag == "1", os.environ.get("DIFF_SHAPE", "plain"))
    try:
        import uwsgi  # noqa: F401
    except ImportError:
        pass
    else:
        prime(flask_app)
    return flask_app


app = from_environment()
