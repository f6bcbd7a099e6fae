"""A stored response is served only to a request the app would have given it to.

One test per way a view cache can serve the wrong thing, each with a control showing
the safe case is still cached. In process, on the memory backend: the decorator and the
fast path (which the test client goes through: it calls the app like a WSGI server).
The fast path and the edge on real uWSGI are in tests/test_differential.py and
tests/test_edge.py.
"""

from __future__ import annotations

import base64
import functools
import threading
import time
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, Response, abort, request, session
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from flask_uwsgicache import UWSGICache, privacy
from flask_uwsgicache.keys import RESULTS
from flask_uwsgicache.responses import MAGIC
from flask_uwsgicache.viewkeys import view_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

Lines = Callable[[], list[str]]


class Views:
    """An app with the cache, counting the requests that reach Flask and view runs."""

    def __init__(self, app: Flask, ext: UWSGICache) -> None:
        self.app = app
        self.ext = ext
        self.flask: list[str] = []  # paths of requests past the fast path
        self.runs: list[str] = []  # names of view bodies that ran
        fast_path = app.wsgi_app
        inner = getattr(fast_path, "wsgi_app", fast_path)

        def counting(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
            self.flask.append(environ["PATH_INFO"])
            return inner(environ, start)

        if inner is not fast_path:
            fast_path.wsgi_app = counting  # type: ignore[attr-defined]
        self.client: FlaskClient = app.test_client()
        self.control_runs = counted_page(app, ext, "/control", "control")

    def ran(self, name: str) -> None:
        self.runs.append(name)

    def get(self, target: str, **kwargs: Any) -> TestResponse:
        return self.client.get(target, **kwargs)

    def assert_still_caches(self) -> None:
        """The control: on this same app, an anonymous visitor's page is cached."""
        client = self.app.test_client()  # no cookie from the test's requests
        assert [client.get("/control").text for _ in range(2)] == ["control"] * 2
        assert self.control_runs == [1]


@pytest.fixture
def views(make_app: Callable[..., Flask]) -> Views:
    app = make_app(UWSGICACHE_BACKEND="memory")
    return Views(app, UWSGICache(app))


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def guard(allowed: Callable[[], bool], wraps: bool = True) -> Decorator:
    """An auth decorator: 401 unless ``allowed()``; ``wraps=False`` leaves out
    ``functools.wraps``, as old snippets do."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not allowed():
                abort(401)
            return view(*args, **kwargs)

        return functools.wraps(view)(checked) if wraps else checked

    return decorator


# On a header of its own (none of UWSGICACHE_PERSONAL_HEADERS, not the session).
require_key = guard(lambda: request.headers.get("X-Team-Key") == "right")


def basic_user() -> str | None:
    auth = request.authorization
    return auth.username if auth and auth.password == "pw" else None


require_basic = guard(lambda: basic_user() is not None)


def basic(user: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()}


# A session login check, as Flask-Login's decorator does it.
login_required = guard(lambda: "user" in session)


def counted_page(app: Flask, ext: UWSGICache, path: str, body: str) -> list[int]:
    """A cached view at ``path`` answering ``body``; the list grows each time it runs."""
    runs: list[int] = []

    def page() -> str:
        runs.append(1)
        return body

    app.add_url_rule(path, path, ext.cached()(page))
    return runs


def add_login(app: Flask) -> None:
    """``POST /login/<user>`` puts the user in the session."""

    @app.route("/login/<user>", methods=["POST"])
    def login(user: str) -> str:
        session["user"] = user
        return "ok"


def statuses_of_concurrent_gets(app: Flask, path: str, clients: int = 6) -> list[int]:
    """The statuses of ``clients`` GETs of ``path`` sent at once, in ~1 s or the time
    it takes (each thread waits at most 30 s)."""
    statuses: list[int] = []

    def call() -> None:
        statuses.append(app.test_client().get(path).status_code)

    threads = [threading.Thread(target=call) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


# 1. Auth outside the cache -----------------------------------------------------------


def test_an_auth_decorator_outside_the_cache_still_guards_the_page(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/secret")
    @require_key
    @ext.cached()
    def secret() -> str:
        views.ran("secret")
        return "the secret"

    @app.route("/public")
    @ext.cached()
    def public() -> str:
        views.ran("public")
        return "for all"

    assert views.get("/secret", headers={"X-Team-Key": "right"}).text == "the secret"
    for _ in range(3):
        assert views.get("/secret").status_code == 401
    assert views.get("/secret", headers={"X-Team-Key": "right"}).text == "the secret"
    # The control: a view with nothing outside its cache is served by the fast path.
    assert [views.get("/public").text for _ in range(3)] == ["for all"] * 3
    assert views.runs == ["secret", "public"]
    assert views.flask.count("/public") == 1


def test_http_basic_users_each_get_their_own_page(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/me")
    @require_basic
    @ext.cached()
    def me() -> str:
        views.ran("me")
        return f"page of {basic_user()}"

    assert views.get("/me", headers=basic("alice")).text == "page of alice"
    assert views.get("/me", headers=basic("bob")).text == "page of bob"
    assert views.get("/me").status_code == 401
    assert views.runs == ["me", "me"]  # credentials never read nor fill the cache
    views.assert_still_caches()


def test_a_session_login_outside_the_cache_still_guards_the_page(views: Views) -> None:
    app, ext = views.app, views.ext

    add_login(app)

    @app.route("/inbox")
    @login_required
    @ext.cached()
    def inbox() -> str:
        return f"inbox of {session['user']}"

    alice, bob, anonymous = app.test_client(), app.test_client(), app.test_client()
    alice.post("/login/alice")
    bob.post("/login/bob")
    assert alice.get("/inbox").text == "inbox of alice"
    assert bob.get("/inbox").text == "inbox of bob"
    assert anonymous.get("/inbox").status_code == 401
    views.assert_still_caches()


def test_a_before_request_hook_keeps_running(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.before_request
    def only_with_key() -> Any:
        if request.path == "/hooked" and request.headers.get("X-Team-Key") != "right":
            abort(403)
        return None

    @app.route("/hooked")
    @ext.cached()
    def hooked() -> str:
        views.ran("hooked")
        return "hooked page"

    assert views.get("/hooked", headers={"X-Team-Key": "right"}).text == "hooked page"
    assert views.get("/hooked").status_code == 403
    # Still cached for those the hook lets through:
    assert views.get("/hooked", headers={"X-Team-Key": "right"}).text == "hooked page"
    assert views.runs == ["hooked"]


def test_a_token_cookie_read_outside_the_cache_keeps_each_users_page(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", UWSGICACHE_SHARED_COOKIES=["_ga"])
    ext = UWSGICache(app)
    runs: list[str] = []

    token_required = guard(lambda: request.cookies.get("token") in ("alice", "bob"))

    @app.route("/profile")
    @token_required
    @ext.cached()
    def profile() -> str:
        runs.append("profile")
        return f"profile of {request.cookies['token']}"

    @app.route("/news")
    @ext.cached()
    def news() -> str:
        runs.append("news")
        return "news"

    def get(path: str, cookie: str = "") -> TestResponse:
        # A Cookie header, not set_cookie, whose arguments changed in Werkzeug 2.3.
        client = app.test_client(use_cookies=False)
        return client.get(path, headers={"Cookie": cookie} if cookie else {})

    assert get("/profile", "token=alice").text == "profile of alice"
    assert get("/profile", "token=bob").text == "profile of bob"
    assert get("/profile").status_code == 401
    # The control: cookies named in UWSGICACHE_SHARED_COOKIES change nothing.
    assert get("/news", "_ga=1").text == "news"
    assert get("/news", "_ga=2").text == "news"
    assert runs == ["profile", "profile", "news"]


def test_api_keys_are_credentials_by_default(views: Views) -> None:
    app, ext = views.app, views.ext

    # As Flask-Login's request_loader on an API key header.
    key_required = guard(lambda: request.headers.get("X-Api-Key") in ("alice", "bob"))

    @app.route("/me")
    @key_required
    @ext.cached()
    def me() -> str:
        return f"me: {request.headers['X-Api-Key']}"

    assert views.get("/me", headers={"X-Api-Key": "alice"}).text == "me: alice"
    assert views.get("/me", headers={"X-Api-Key": "bob"}).text == "me: bob"
    views.assert_still_caches()


@pytest.mark.parametrize(
    "key", [{"key_prefix": "account"}, {"make_cache_key": lambda: "account"}]
)
def test_a_login_decorator_without_wraps_does_not_share_pages(
    views: Views, key: dict[str, Any]
) -> None:
    app, ext = views.app, views.ext
    add_login(app)

    old_login_required = guard(lambda: "user" in session, wraps=False)

    @app.route("/account")
    @old_login_required
    @ext.cached(**key)
    def account() -> str:
        return f"account of {session['user']}"

    alice, bob = app.test_client(), app.test_client()
    alice.post("/login/alice")
    bob.post("/login/bob")
    assert alice.get("/account").text == "account of alice"
    assert bob.get("/account").text == "account of bob"
    views.assert_still_caches()


def test_a_key_function_does_not_let_a_login_outside_share_pages(views: Views) -> None:
    app, ext = views.app, views.ext

    add_login(app)

    @app.route("/account")
    @login_required
    @ext.cached(key_prefix=lambda: request.full_path)  # a Flask-Caching idiom
    def account() -> str:
        return f"account of {session['user']}"

    alice, bob = app.test_client(), app.test_client()
    alice.post("/login/alice")
    bob.post("/login/bob")
    assert alice.get("/account").text == "account of alice"
    assert bob.get("/account").text == "account of bob"
    views.assert_still_caches()


# 2. WSGI middleware -------------------------------------------------------------------


def allowlist(wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
    """WSGI middleware: 403 for /admin unless the X-Admin header says so."""

    def middleware(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"].startswith("/admin") and environ.get("HTTP_X_ADMIN") != "1":
            start("403 FORBIDDEN", [("Content-Type", "text/plain")])
            return [b"forbidden"]
        return wsgi_app(environ, start)  # type: ignore[no-any-return]

    return middleware


@pytest.mark.parametrize("before", [True, False], ids=["before init_app", "after"])
def test_middleware_on_wsgi_app_is_never_skipped(
    make_app: Callable[..., Flask], log_lines: Lines, before: bool
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory")
    if before:
        app.wsgi_app = allowlist(app.wsgi_app)  # type: ignore[method-assign]
    ext = UWSGICache(app)
    if not before:
        app.wsgi_app = allowlist(app.wsgi_app)  # type: ignore[method-assign]
    runs = counted_page(app, ext, "/admin", "admin page")

    client = app.test_client()
    assert client.get("/admin", headers={"X-Admin": "1"}).text == "admin page"
    assert client.get("/admin").status_code == 403
    assert client.get("/admin", headers={"X-Admin": "1"}).text == "admin page"
    assert runs == [1]  # cached all the same
    said = any(
        "fast path is off: app.wsgi_app was replaced" in line for line in log_lines()
    )
    assert said is before


class GuardedWsgi(Flask):
    def wsgi_app(self, environ: Any, start_response: Any) -> Any:
        if environ.get("REMOTE_ADDR") != "127.0.0.1":
            start_response("403 FORBIDDEN", [("Content-Type", "text/plain")])
            return [b"forbidden"]
        return super().wsgi_app(environ, start_response)


class GuardedSync(Flask):
    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            if request.remote_addr != "127.0.0.1":
                abort(403)
            return func(*args, **kwargs)

        return checked


@pytest.mark.parametrize("guarded", [GuardedWsgi, GuardedSync])
def test_a_flask_subclass_that_guards_requests_turns_the_shortcuts_off(
    log_lines: Lines, guarded: type[Flask]
) -> None:
    app = guarded(__name__)
    app.config.update(SECRET_KEY="s", UWSGICACHE_BACKEND="memory")
    ext = UWSGICache(app)

    @app.route("/internal")
    @ext.cached()
    def internal() -> str:
        return "internal report"

    client = app.test_client()
    assert client.get("/internal").text == "internal report"
    outsider = {"REMOTE_ADDR": "6.6.6.6"}
    assert client.get("/internal", environ_overrides=outsider).status_code == 403
    assert any("overrides Flask." in line for line in log_lines())


def test_head_routed_to_its_own_view_gets_its_own_answer(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/file", methods=["HEAD"], endpoint="file_head")
    @ext.cached()
    def file_head() -> Response:
        return Response(status=204, headers={"X-Size": "10"})

    @app.route("/file", methods=["GET"], endpoint="file_get")
    @ext.cached()
    def file_get() -> str:
        return "ten bytes!"

    for _ in range(2):
        assert views.client.head("/file").status_code == 204
        assert views.get("/file").text == "ten bytes!"


def test_a_class_based_view_is_checked_like_any_view(views: Views) -> None:
    from flask.views import MethodView

    app, ext = views.app, views.ext

    class Page(MethodView):
        @ext.cached()
        def get(self) -> Response:
            views.ran("get")
            response = Response(f"page {len(views.runs)}")
            response.set_cookie("csrf", f"token{len(views.runs)}")
            return response

    class Public(MethodView):
        @ext.cached()
        def get(self) -> str:
            views.ran("public")
            return "public"

    app.add_url_rule("/page", view_func=Page.as_view("page"))
    app.add_url_rule("/public", view_func=Public.as_view("public"))
    cookies = [views.get("/page").headers["Set-Cookie"] for _ in range(2)]
    assert cookies[0] != cookies[1]  # never stored: it sets a cookie
    # A fresh client: the first one now sends the csrf cookie, which is personal.
    public = app.test_client()
    assert [public.get("/public").text for _ in range(2)] == ["public"] * 2
    assert views.runs == ["get", "get", "public"]


def test_a_raw_query_werkzeug_cannot_read_fails_as_it_would_uncached(
    make_app: Callable[..., Flask],
) -> None:
    answers = []
    for cached in (False, True):
        app = make_app(UWSGICACHE_BACKEND="memory", TESTING=False)
        ext = UWSGICache(app)

        def q() -> str:
            return f"q={request.args.get('q')}"

        app.add_url_rule("/q", view_func=ext.cached()(q) if cached else q)
        client = app.test_client()
        assert client.get("/q?q=%FF").status_code == 200  # stored
        raw = client.get("/q", environ_overrides={"QUERY_STRING": "q=\xff"})
        answers.append((raw.status_code, raw.text if raw.status_code == 200 else ""))
    # As without the cache: Werkzeug 3 fails on request.args (500); Werkzeug 2 reads
    # U+FFFD, a value of its own, not the stored page of %FF.
    assert answers[1] == answers[0]
    assert answers[0][0] == 500 or answers[0][1] == "q=\ufffd"


# 3. Sessions --------------------------------------------------------------------------


def test_on_a_flask_that_hides_its_request_state_nothing_is_stored(
    views: Views, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A future Flask that keeps the session and the after_this_request callbacks under
    # other names: the fallbacks of flask_uwsgicache/privacy.py fail closed.
    counted = counted_page(views.app, views.ext, "/hidden", "hidden")

    class Hidden:
        """A request context with none of the attributes this package reads."""

    monkeypatch.setattr(
        privacy, "request_context", types.SimpleNamespace(_get_current_object=Hidden)
    )
    client = views.app.test_client()
    assert [client.get("/hidden").text for _ in range(2)] == ["hidden"] * 2
    assert counted == [1, 1]
    monkeypatch.undo()
    views.assert_still_caches()


def test_a_view_that_changes_the_session_is_never_stored(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/visit")
    @ext.cached()
    def visit() -> str:
        session["seen"] = True
        views.ran("visit")
        return "welcome"

    first = views.get("/visit")
    assert "Set-Cookie" in first.headers
    fresh = views.app.test_client()
    second = fresh.get("/visit")
    assert "Set-Cookie" in second.headers  # the view ran and set it again
    assert views.runs == ["visit", "visit"]
    views.assert_still_caches()


def test_a_view_with_its_own_key_function_that_changes_the_session_is_never_stored(
    views: Views,
) -> None:
    app, ext = views.app, views.ext

    @app.route("/track/<name>")
    @ext.cached(make_cache_key=lambda name: f"track-{name}")
    def track(name: str) -> str:
        session["tracked"] = name
        views.ran(name)
        return f"tracking {name}"

    @app.route("/plain/<name>")
    @ext.cached(make_cache_key=lambda name: f"plain-{name}")
    def plain(name: str) -> str:
        views.ran(name)
        return f"plain {name}"

    for _ in range(2):
        assert "Set-Cookie" in views.app.test_client().get("/track/a").headers
        assert views.get("/plain/b").text == "plain b"
    assert views.runs == ["a", "b", "a"]  # the control, /plain/b, ran once


def test_a_page_that_reads_the_session_is_shared_only_by_visitors_without_one(
    views: Views,
) -> None:
    app, ext = views.app, views.ext
    add_login(app)

    @app.route("/greet")
    @ext.cached()
    def greet() -> str:
        views.ran("greet")
        return f"Hello, {session.get('user', 'stranger')}"

    @app.route("/greet-in")
    @ext.cached()
    def greet_in() -> str:  # "in" is an access Flask < 3.1.3 does not track
        views.ran("greet-in")
        return "Hello, member" if "user" in session else "Hello, stranger"

    anonymous = [app.test_client() for _ in range(2)]
    alice, bob = app.test_client(), app.test_client()
    alice.post("/login/alice")
    bob.post("/login/bob")
    for path in ("/greet", "/greet-in"):
        assert [client.get(path).text for client in anonymous] == ["Hello, stranger"] * 2
    assert alice.get("/greet").text == "Hello, alice"
    assert bob.get("/greet").text == "Hello, bob"
    assert alice.get("/greet-in").text == "Hello, member"
    stored = anonymous[0].get("/greet")
    assert "Cookie" in stored.headers.get("Vary", "")  # as Flask says when uncached
    assert views.runs == ["greet", "greet-in", "greet", "greet", "greet-in"]


def test_after_this_request_callbacks_keep_the_response_out(views: Views) -> None:
    from flask import after_this_request

    app, ext = views.app, views.ext

    @app.route("/tagged")
    @ext.cached()
    def tagged() -> str:
        @after_this_request
        def tag(response: Response) -> Response:
            response.headers["X-Tag"] = "yes"
            return response

        views.ran("tagged")
        return "tagged"

    assert [views.get("/tagged").headers.get("X-Tag") for _ in range(2)] == ["yes"] * 2
    assert views.runs == ["tagged", "tagged"]
    views.assert_still_caches()


# 4. Hosts -----------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Current server name")
def test_each_host_gets_its_own_page_and_unknown_hosts_what_flask_says(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", SERVER_NAME="example.test")
    app.subdomain_matching = True
    app.url_map.default_subdomain = ""
    ext = UWSGICache(app)

    @app.route("/")
    @ext.cached()
    def home() -> str:
        return "public home"

    @app.route("/", subdomain="admin", endpoint="admin_home")
    @ext.cached()
    def admin_home() -> str:
        return "admin home"

    client = app.test_client()
    for _ in range(2):
        assert client.get("/", headers={"Host": "example.test"}).text == "public home"
        assert client.get("/", headers={"Host": "admin.example.test"}).text == "admin home"
        assert client.get("/", headers={"Host": "evil.test"}).status_code == 404


@pytest.mark.skipif(
    not hasattr(Flask, "default_config") or "TRUSTED_HOSTS" not in Flask.default_config,
    reason="TRUSTED_HOSTS is new in Flask 3.1",
)
def test_hosts_outside_trusted_hosts_are_refused_from_cache_too(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", TRUSTED_HOSTS=["example.test"])
    ext = UWSGICache(app)
    runs = counted_page(app, ext, "/", "home")

    client = app.test_client()
    assert client.get("/", headers={"Host": "example.test"}).text == "home"
    assert client.get("/", headers={"Host": "example.test"}).text == "home"
    assert client.get("/", headers={"Host": "evil.test"}).status_code == 400
    assert runs == [1]


# 5-7. What the URL says ---------------------------------------------------------------


def test_an_encoded_question_mark_is_part_of_the_path(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/docs")
    @app.route("/<path:page>")
    @ext.cached()
    def docs(page: str = "docs") -> str:
        return f"page={page} args={sorted(request.args.items())}"

    assert views.get("/docs?lang=de").text == "page=docs args=[('lang', 'de')]"
    assert views.get("/docs%3Flang=de").text == "page=docs?lang=de args=[]"
    assert views.get("/docs?lang=de").text == "page=docs args=[('lang', 'de')]"


def test_views_with_and_without_query_strings_never_share_entries(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/all")
    @ext.cached(query_string=False)
    def everything() -> str:
        return "everything"

    @app.route("/search")
    @ext.cached()
    def search() -> str:
        return f"results for {request.args.get('q', '')}"

    assert views.get("/all").text == "everything"
    assert views.get("/all?page=2").text == "everything"  # one entry for every query
    assert views.get("/search").text == "results for "
    assert views.get("/search?q=flask").text == "results for flask"
    assert views.get("/search?q=flask").text == "results for flask"


def test_raw_utf8_and_its_percent_encoding_share_one_entry(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/s")
    @ext.cached()
    def search() -> str:
        views.ran("s")
        return f"q={request.args.get('q')}"

    raw = views.get("/s", environ_overrides={"QUERY_STRING": "q=\xc3\xa9"})
    encoded = views.get("/s?q=%C3%A9")
    mojibake = views.get("/s?q=%C3%83%C2%A9")  # what a latin-1 misreading would give
    assert raw.text == encoded.text == "q=é"
    assert mojibake.text == "q=Ã©"
    assert views.runs == ["s", "s"]


# 8. Key spaces ------------------------------------------------------------------------


def test_a_plain_function_never_answers_as_a_view(views: Views) -> None:
    app, ext = views.app, views.ext
    upload = MAGIC + b'\x10\x00\x00\x00[200,[],"",true]<h1>not a page'

    @ext.cached()  # the default key, as the view below has
    def stored_upload() -> bytes:
        return upload

    @app.route("/upload")
    def show() -> Response:
        return Response(stored_upload(), mimetype="application/octet-stream")

    @app.route("/page")
    @ext.cached()
    def page() -> str:
        return "a page"

    for _ in range(2):
        answer = views.get("/upload")
        assert answer.get_data() == upload
        assert answer.mimetype == "application/octet-stream"
    assert [views.get("/page").text for _ in range(2)] == ["a page"] * 2
    with app.test_request_context("/upload"):
        cache = app.extensions["uwsgicache"]
        key = view_key(request.environ, "view/%s", True, cache.responses.stem_budget)
        assert cache.space(RESULTS).get(key) == upload  # stored apart from responses
        assert cache.responses.get(key) is None


def test_a_plain_function_keyed_by_the_url_is_cached_for_gets_only(views: Views) -> None:
    app, ext = views.app, views.ext

    @ext.cached()
    def summary() -> str:
        views.ran("summary")
        return f"{request.method} {request.form.get('note', '')}"

    @app.route("/notes", methods=["GET", "POST"])
    def notes() -> str:
        return str(summary())

    assert views.client.post("/notes", data={"note": "secret"}).text == "POST secret"
    assert views.get("/notes").text == "GET "
    assert views.get("/notes").text == "GET "  # the control: cached for GETs
    assert views.runs == ["summary", "summary"]


def test_conditional_and_range_requests_get_what_the_view_answers(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/file")
    @ext.cached()
    def file() -> Response:
        views.ran("file")
        response = Response(b"0123456789", mimetype="application/octet-stream")
        response.set_etag("v1")
        response.make_conditional(request, accept_ranges=True, complete_length=10)
        return response

    assert views.get("/file").status_code == 200
    assert views.get("/file", headers={"If-None-Match": '"v1"'}).status_code == 304
    ranged = views.get("/file", headers={"Range": "bytes=0-3"})
    assert (ranged.status_code, ranged.get_data()) == (206, b"0123")
    assert views.get("/file").get_data() == b"0123456789"  # the control: from the cache
    assert views.runs == ["file", "file", "file"]


def test_a_header_the_view_reads_becomes_part_of_its_key(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/data")
    @ext.cached()
    def data() -> tuple[str, int]:  # a key check inside the cached view, no Vary said
        token = request.headers.get("Api-Token")
        views.ran(str(token))
        return (f"data of {token}", 200) if token in ("alice", "bob") else ("no", 401)

    for _ in range(2):
        assert views.get("/data", headers={"Api-Token": "alice"}).text == "data of alice"
        assert views.get("/data", headers={"Api-Token": "bob"}).text == "data of bob"
        assert views.get("/data").status_code == 401
    assert views.get("/data", headers={"Api-Token": "alice"}).headers["Vary"] == "Api-Token"
    assert views.runs == ["alice", "bob", "None", "None"]  # 401s are never stored


def test_a_front_server_login_is_personal(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/mine")
    @guard(lambda: bool(request.environ.get("REMOTE_USER")))
    @ext.cached()
    def mine() -> str:
        return f"page of {request.environ['REMOTE_USER']}"

    for user in ("alice", "bob"):
        page = views.get("/mine", environ_overrides={"REMOTE_USER": user})
        assert page.text == f"page of {user}"
    views.assert_still_caches()


def test_more_personal_headers_add_to_the_defaults(make_app: Callable[..., Flask]) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", UWSGICACHE_PERSONAL_HEADERS=["Api-Token"])
    UWSGICache(app)
    credentials = app.extensions["uwsgicache"].credentials
    assert {"HTTP_API_TOKEN", "HTTP_X_API_KEY", "HTTP_AUTHORIZATION"} <= set(credentials)


def test_key_prefixes_never_share_keys(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/a")
    @ext.cached(key_prefix="page:%s:v2")
    def a() -> str:
        return "page a"

    @app.route("/<path:other>")
    @ext.cached(key_prefix="page:%s")
    def other(other: str) -> str:
        return f"other {other}"

    @app.route("/sale")
    @ext.cached(key_prefix="50%off/%s")  # a literal % in the prefix
    def sale() -> str:
        return "sale"

    for _ in range(2):
        assert views.get("/a").text == "page a"
        assert views.get("/a:v2").text == "other a:v2"
        assert views.get("/sale").text == "sale"
    with app.test_request_context():
        assert ext.delete_edge("/sale") is True


def test_a_response_class_that_adds_headers_keeps_adding_them(
    make_app: Callable[..., Flask],
) -> None:
    class Framed(Response):
        def get_wsgi_headers(self, environ: Any) -> Any:
            headers = super().get_wsgi_headers(environ)
            headers["X-Frame-Options"] = "DENY"
            return headers

    app = make_app(UWSGICACHE_BACKEND="memory")
    app.response_class = Framed
    ext = UWSGICache(app)

    @app.route("/framed")
    @ext.cached()
    def framed() -> str:
        return "framed"

    client = app.test_client()
    assert [client.get("/framed").headers.get("X-Frame-Options") for _ in range(2)] == [
        "DENY",
        "DENY",
    ]


# 9. Vary -----------------------------------------------------------------------------


def test_vary_gives_each_variant_its_own_entry(views: Views) -> None:
    app, ext = views.app, views.ext

    @app.route("/lang")
    @ext.cached()
    def lang() -> Response:
        best = request.accept_languages.best_match(["en", "de", "fr"]) or "en"
        views.ran(best)
        return Response(f"language {best}", headers={"Vary": "Accept-Language"})

    for _ in range(2):
        for language in ("de", "fr", "en"):
            answer = views.get("/lang", headers={"Accept-Language": language})
            assert answer.text == f"language {language}"
        assert views.get("/lang").text == "language en"
    assert views.runs == ["de", "fr", "en", "en"]  # absent is not the same as "en"
    assert views.flask.count("/lang") == 4  # the second round came from the fast path


# 11. Single flight ---------------------------------------------------------------------


def test_responses_that_are_not_stored_do_not_queue(make_app: Callable[..., Flask]) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory")
    ext = UWSGICache(app)

    @app.route("/down")
    @ext.cached()
    def down() -> tuple[str, int]:
        time.sleep(0.5)
        return "down", 503

    started = time.monotonic()
    statuses = statuses_of_concurrent_gets(app, "/down")
    # Queued one after another they would take 6 x 0.5 s; released, about 2 x 0.5 s.
    assert time.monotonic() - started < 2.0
    assert statuses == [503] * 6


@pytest.mark.parametrize("failure", ["abort", "exception"])
def test_views_that_fail_do_not_queue(make_app: Callable[..., Flask], failure: str) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", TESTING=False)
    ext = UWSGICache(app)

    @app.route("/fails")
    @ext.cached()
    def fails() -> str:
        time.sleep(0.5)
        if failure == "abort":
            abort(404)
        raise RuntimeError("a bug")

    started = time.monotonic()
    statuses = statuses_of_concurrent_gets(app, "/fails")
    assert time.monotonic() - started < 2.0  # queued: 6 x 0.5 s
    assert statuses == [404 if failure == "abort" else 500] * 6


def test_a_cached_function_called_inside_itself_does_not_wait(views: Views) -> None:
    ext = views.ext
    depth: list[int] = []

    @ext.cached(key_prefix="nested", single_flight_wait=5)
    def nested(level: int = 0) -> str:
        depth.append(level)
        return "inner" if level else nested(1)

    started = time.monotonic()
    with views.app.app_context():
        assert nested() == "inner"
    assert time.monotonic() - started < 1
    assert depth == [0, 1]


# 13. The app's own callables ----------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"unless": lambda: 1 / 0},
        {"make_cache_key": lambda: 1 / 0},
        {"key_prefix": lambda: 1 / 0},
        {"forced_update": lambda: 1 / 0},
        {"response_filter": lambda response: 1 / 0},
    ],
    ids=["unless", "make_cache_key", "key_prefix", "forced_update", "response_filter"],
)
@pytest.mark.parametrize("mode", ["testing", "production"])
def test_errors_in_the_apps_own_callables_surface_in_testing_and_are_logged_otherwise(
    make_app: Callable[..., Flask], log_lines: Lines, options: dict[str, Any], mode: str
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", TESTING=mode == "testing")
    ext = UWSGICache(app)

    @app.route("/page")
    @ext.cached(**options)
    def page() -> str:
        return "page"

    if mode == "testing":
        with pytest.raises(ZeroDivisionError):
            app.test_client().get("/page")
        return
    for _ in range(3):
        assert app.test_client().get("/page").text == "page"
    said = [line for line in log_lines() if "ZeroDivisionError" in line]
    assert len(said) == 1  # rate-limited


def test_faults_from_odd_requests_are_logged_once_in_a_while(
    views: Views, log_lines: Lines
) -> None:
    app, ext = views.app, views.ext
    calls = [0]

    def broken_key() -> str:
        calls[0] += 1
        raise RuntimeError("a cache fault")

    @app.route("/odd")
    @ext.cached()
    def odd() -> str:
        return f"q={request.args.get('q')}"

    cache = app.extensions["uwsgicache"]
    cache.responses.get = lambda *args: broken_key()
    for _ in range(20):
        odd_query = {"QUERY_STRING": "q=\xc3\xa9"}  # raw UTF-8, as a server passes it
        assert views.get("/odd", environ_overrides=odd_query).text == "q=é"
    assert calls[0] >= 20
    # One line for each place that met it (fast path, lookup, store), not one a request.
    assert len([line for line in log_lines() if "a cache fault" in line]) <= 3


# One key, whoever derives it -----------------------------------------------------------

_TARGET_PARTS = st.sampled_from(
    ["/", "/p", "/p/", "/p%3Fq=1", "/p?", "/p?q=1", "/p?q=1&q=2", "/p?q=2&q=1", "/p?b=&a",
     "/p?a=1&b=2", "/p?b=2&a=1", "/p?q=%C3%A9", "/p?q=%E9", "/p?q=a+b", "/p?q=a%20b",
     "/caf%C3%A9", "/p%2Fq", "/p?&&q=1", "/p?q=%zz"]
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],  # a plain factory
)
@given(
    first=_TARGET_PARTS,
    second=_TARGET_PARTS,
    raw=st.text(st.characters(exclude_categories=["Cs"]), max_size=4).map(str.encode),
    host=st.sampled_from(["a.test", "b.test", "a.test:80", "A.test"]),
)
def test_the_fast_path_and_the_decorator_use_one_key(
    make_app: Callable[..., Flask], first: str, second: str, raw: bytes, host: str
) -> None:
    """Same key => Flask saw the same request; what the decorator stored, the fast path
    finds (the second request of each pair never reaches the view)."""
    app = make_app(UWSGICACHE_BACKEND="memory")
    ext = UWSGICache(app)
    runs: list[int] = []

    @app.route("/<path:page>")
    @app.route("/")
    @ext.cached()
    def echo(page: str = "") -> str:
        runs.append(1)
        return repr((request.path, sorted(request.args.items(multi=True)), request.host))

    client = app.test_client()
    budget = app.extensions["uwsgicache"].responses.stem_budget
    targets = [first, second, first.split("?")[0] + "?raw=" + raw.decode("latin-1")]
    bodies: dict[str, set[bytes]] = {}
    for target in targets:
        path, _, query = target.partition("?")
        # QUERY_STRING as a server passes it: the raw bytes, as latin-1.
        request_options: dict[str, Any] = {
            "environ_overrides": {"QUERY_STRING": query},
            "headers": {"Host": host},
        }
        before = len(runs)
        one = client.get(path, **request_options)
        two = client.get(path, **request_options)
        assert one.get_data() == two.get_data()
        assert len(runs) <= before + 1  # the second came from the cache
        with app.test_request_context(path, **request_options) as context:
            key = view_key(context.request.environ, "view/%s", True, budget)
        bodies.setdefault(key, set()).add(one.get_data())
    assert all(len(answers) == 1 for answers in bodies.values()), bodies
