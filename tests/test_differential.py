"""Differential: the cache is invisible.

tests/apps/differential.py builds one app twice from one factory, with the cache and
without it (every ``cached(...)`` an identity decorator). Fed the same sequence of
requests, the two must give the same status and the same body for every request
(HEAD: the same status and both bodies empty). Headers are not compared (Date, the
session's Set-Cookie...). Hypothesis draws the sequences: methods, raw request targets
(percent-encoded and raw UTF-8 bytes, ``%3F`` inside the path, repeated, empty and
reordered parameters), Hosts, session cookies, Basic credentials, Accept-Language and
the shapes' tokens.

* In-process, for each shape: werkzeug's ``run_wsgi_app`` on environs set as a WSGI
  server sets them (``PATH_INFO`` percent-decoded then latin-1, ``QUERY_STRING`` and
  ``REQUEST_URI`` raw latin-1). A fresh cached app per example: the cache keeps
  per-process state besides its entries, and an example must not depend on the ones
  before it.
* Against real uWSGI (4 workers each): the cached and the uncached build of shape
  ``plain``, on the command line's cache2 line, then with tests/apps/differential.ini
  (the edge). Raw HTTP/1.1 bytes over sockets, so odd bytes, Hosts and ``%3F`` reach
  uWSGI unchanged; ``POST /_diff/clear`` empties the cache between examples.

Against noise: every request is built once and sent as the same bytes to every build;
each sequence runs twice on the uncached build, which must answer alike both times;
the session cookies are made once per run. A cached request that takes longer than
``SLOW`` seconds is a failure too (the uncached build answers in milliseconds: such a
wait is the cache's single flight waiting on itself).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import importlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder, run_wsgi_app


class Server(Protocol):
    """What these tests use of conftest's uWSGI server (tests do not import conftest)."""

    url: str
    output: str

    def stop(self) -> int: ...


# tests/apps/differential.py, imported by name: mypy knows that file as "differential"
# (tests/apps has no __init__.py), so a static import would name it twice.
_app_module = importlib.import_module("apps.differential")
create_app: Callable[[bool, str], Flask] = _app_module.create_app
SHAPES: tuple[str, ...] = _app_module.SHAPES
SERVER_NAME: str = _app_module.SERVER_NAME

# The werkzeug warning for a Host that is not SERVER_NAME's (evil.test): the request
# is a 404 in both builds; pyproject.toml turns warnings into errors.
pytestmark = pytest.mark.filterwarnings("ignore:Current server name:UserWarning")

# Examples per hypothesis test; the environment can ask for a longer search.
IN_PROCESS_EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", "150"))  # ~6 s per shape
UWSGI_EXAMPLES = int(os.environ.get("DIFF_UWSGI_EXAMPLES", "100"))
# Seconds: a cached request slower than this is a failure. The builds answer in about
# a millisecond; in-process a hung request costs this much per shrinking step.
SLOW = {"in-process": 1.0, "http": 2.0}
READY_PATH = "/_diff/ready"
APP_CACHE_LINE = "name=default,items=2000,blocksize=65536,keysize=250"
MAX_RESPONSE = 1 << 22

# ---- requests -----------------------------------------------------------------------

# Simplest first: hypothesis shrinks towards the start of each list.
PATHS: list[bytes] = [
    b"/",
    b"/page/docs",
    b"/search",
    b"/all",
    b"/greet",
    b"/greet2",
    b"/me",
    b"/basic",
    b"/lang",
    b"/dash",
    b"/helper-user",
    b"/blob",
    b"/edge",
    b"/edge-me",
    b"/admin-area",
    b"/hooked",
    b"/login",
    b"/logout",
    b"/missing",
    b"/page/docs%3Flang=de",
    b"/page/caf\xc3\xa9",
    b"/page/caf%C3%A9",
    b"/page/%FF",
    b"/page/a%2Fb",
    b"/page/a+b",
    b"/page/%2541",
    b"/%3Fq=1",
    b"/nested",
]
PARAMS: list[bytes] = [
    b"q=1",
    b"q=2",
    b"a=1",
    b"a=2",
    b"b=",
    b"b",
    b"",
    b"lang=de",
    b"user=alice",
    b"user=bob",
    b"q=%3Cb%3E",
    b"q=caf\xc3\xa9",
    b"q=caf%C3%A9",
    b"q=caf%C3%83%C2%A9",
    b"q=%FF",
    b"q=%25FF",
    b"q=%3F",
    b"a=1+2",
    b"a=1%202",
    b"x=%26y%3D1",
]
# Targets that differ but that a cache key could mix up.
TWINS: list[tuple[bytes, bytes]] = [
    (b"/page/docs?lang=de", b"/page/docs%3Flang=de"),
    (b"/?q=1", b"/%3Fq=1"),
    (b"/edge?q=1", b"/edge%3Fq=1"),
    (b"/search?q=caf%C3%83%C2%A9", b"/search?q=caf\xc3\xa9"),
    (b"/?q=caf%C3%83%C2%A9", b"/?q=caf\xc3\xa9"),
    (b"/search?a=1&b=2&a=2", b"/search?b=2&a=2&a=1"),
    (b"/page/caf%C3%A9", b"/page/caf\xc3\xa9"),
]
# Repeats weight the choices: mostly GET, mostly the main host, often anonymous.
METHODS = ["GET", "GET", "GET", "GET", "HEAD", "POST"]
HOSTS = [
    "example.test",
    "example.test",
    "admin.example.test",
    "evil.test",
    "example.test:80",
    "EXAMPLE.test",
    "admin.example.test:80",
]
COOKIES = [None, None, None, "alice", "bob", "junk"]
AUTHS: dict[str, str] = {
    "alice": "alice:wonderland",
    "bob": "bob:builder",
    "bad": "alice:guessed",
}
AUTH_CHOICES = [None, None, None, *AUTHS]
LANGUAGES = [
    None,
    None,
    "de",
    "fr-CH, fr;q=0.9, en;q=0.8",
    "en-US,en;q=0.5",
    "de;q=0.1, fr",
]
ADMIN_TOKENS = [None, "s3cret", "wrong"]
HOOK_TOKENS = [None, "t", "x"]


@functools.cache
def cookie_headers() -> dict[str, str]:
    """``Cookie`` header values, signed once per run with the apps' SECRET_KEY."""
    app = create_app(False, "plain")
    interface = app.session_interface
    assert isinstance(interface, SecureCookieSessionInterface)
    serializer = interface.get_signing_serializer(app)
    assert serializer is not None
    cookies = {
        user: f"session={serializer.dumps({'user': user})}" for user in ("alice", "bob")
    }
    cookies["junk"] = "theme=dark"
    return cookies


@dataclasses.dataclass(frozen=True, repr=False)
class Req:
    """One request; the same headers go to every build, in the same order."""

    method: str
    target: bytes
    host: str = "example.test"
    cookie: str | None = None  # "alice", "bob" (a session cookie) or "junk"
    auth: str | None = None  # "alice", "bob" or "bad" (HTTP Basic)
    language: str | None = None
    admin_token: str | None = None
    hook_token: str | None = None

    def headers(self) -> list[tuple[str, str]]:
        headers = [("Host", self.host)]
        if self.cookie is not None:
            headers.append(("Cookie", cookie_headers()[self.cookie]))
        if self.auth is not None:
            token = base64.b64encode(AUTHS[self.auth].encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        if self.language is not None:
            headers.append(("Accept-Language", self.language))
        if self.admin_token is not None:
            headers.append(("X-Admin-Token", self.admin_token))
        if self.hook_token is not None:
            headers.append(("X-Token", self.hook_token))
        if self.method == "POST":
            headers.append(("Content-Length", "0"))
        headers.append(("Connection", "close"))
        return headers

    def raw(self) -> bytes:
        """The request as HTTP/1.1 bytes."""
        lines = [b"%s %s HTTP/1.1" % (self.method.encode(), self.target)]
        lines += [f"{name}: {value}".encode("latin-1") for name, value in self.headers()]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    def environ(self) -> dict[str, Any]:
        """The WSGI environ a server would make of :meth:`raw`."""
        path, _, query = self.target.partition(b"?")
        environ = EnvironBuilder(method=self.method, headers=self.headers()).get_environ()
        environ.update(
            PATH_INFO=unquote_to_bytes(path).decode("latin-1"),
            QUERY_STRING=query.decode("latin-1"),
            REQUEST_URI=self.target.decode("latin-1"),
            RAW_URI=self.target.decode("latin-1"),
        )
        return environ

    def __repr__(self) -> str:
        fields = [repr(self.method), repr(self.target)] + [
            f"{field.name}={getattr(self, field.name)!r}"
            for field in dataclasses.fields(self)[2:]
            if getattr(self, field.name) != field.default
        ]
        return f"Req({', '.join(fields)})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis's printer, in a failing example

    def summary(self) -> str:
        extras = [
            f"{name}={value}"
            for name, value in (
                ("cookie", self.cookie),
                ("auth", self.auth),
                ("lang", self.language),
                ("admin-token", self.admin_token),
                ("x-token", self.hook_token),
            )
            if value is not None
        ]
        target = self.target.decode("latin-1").encode("unicode_escape").decode()
        extra = f" [{', '.join(extras)}]" if extras else ""
        return f"{self.method} {self.host} {target}{extra}"


def join_target(path: bytes, params: Sequence[bytes], bare_question_mark: bool) -> bytes:
    if not params and not bare_question_mark:
        return path
    return path + b"?" + b"&".join(params)


@st.composite
def target_pools(draw: st.DrawFn) -> list[bytes]:
    """A few related targets (one or two paths, several queries, maybe a twin pair):
    a sequence draws from them, so that entries one request stores are met again."""
    paths = draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=2, unique=True))
    pool: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        params = draw(st.lists(st.sampled_from(PARAMS), max_size=3))
        pool.append(join_target(path, params, draw(st.integers(0, 3)) == 3))
        if len(params) > 1 and draw(st.booleans()):
            pool.append(join_target(path, draw(st.permutations(params)), False))
    if draw(st.integers(0, 2)) == 2:
        pool.extend(draw(st.sampled_from(TWINS)))
    return pool


@st.composite
def requests_to(draw: st.DrawFn, pool: Sequence[bytes]) -> Req:
    return Req(
        draw(st.sampled_from(METHODS)),
        draw(st.sampled_from(pool)),
        host=draw(st.sampled_from(HOSTS)),
        cookie=draw(st.sampled_from(COOKIES)),
        auth=draw(st.sampled_from(AUTH_CHOICES)),
        language=draw(st.sampled_from(LANGUAGES)),
        admin_token=draw(st.sampled_from(ADMIN_TOKENS)),
        hook_token=draw(st.sampled_from(HOOK_TOKENS)),
    )


@st.composite
def sequences(draw: st.DrawFn, min_size: int, max_size: int) -> list[Req]:
    pool = draw(target_pools())
    return draw(st.lists(requests_to(pool), min_size=min_size, max_size=max_size))


# ---- answers and the check ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    seconds: float = 0.0

    def same(self, other: Answer) -> bool:
        return (self.status, self.body) == (other.status, other.body)

    def __str__(self) -> str:
        body = self.body[:160] + (b"..." if len(self.body) > 160 else b"")
        return f"{self.status} {body!r}"


Send = Callable[[Req], Answer | None]  # None: no answer within the SLOW seconds


def check(requests: Sequence[Req], cached: Send, uncached: Send, slow: float) -> None:
    """Send ``requests`` in order to both builds; fail at the first difference with
    the whole sequence so far. The uncached build gets the sequence twice first."""
    first = [uncached(request) for request in requests]
    again = [uncached(request) for request in requests]
    for index, (request, one, two) in enumerate(
        zip(requests, first, again, strict=True), 1
    ):
        assert one is not None and two is not None
        if not one.same(two):
            raise AssertionError(
                f"harness problem, not the cache: the uncached build answered request "
                f"{index} ({request.summary()}) with {one}, then with {two}"
            )
        if request.method == "HEAD" and one.body:
            raise AssertionError(f"harness problem: a HEAD answered with a body: {one}")
    lines: list[str] = []
    for index, (request, expected) in enumerate(zip(requests, first, strict=True), 1):
        assert expected is not None
        got = cached(request)
        if got is None:
            verdict = f"cached: no answer within {slow} s | uncached {expected}"
        elif not got.same(expected):
            verdict = f"cached {got} | uncached {expected}"
        elif got.seconds > slow:
            verdict = f"cached took {got.seconds:.1f} s | uncached {expected}"
        else:
            lines.append(f"  {index:2}. {request.summary()} -> {got} (both)")
            continue
        lines.append(f"  {index:2}. {request.summary()} -> {verdict}   <== DIFFERS")
        raise AssertionError(
            f"the cache is visible at request {index} of {len(requests)}:\n"
            + "\n".join(lines)
        )


# ---- in-process -----------------------------------------------------------------------


def call(app: Flask, request: Req) -> Answer:
    started = time.monotonic()
    app_iter, status, _headers = run_wsgi_app(app, request.environ(), buffered=True)
    body = b"".join(app_iter)
    return Answer(int(status.split()[0]), body, time.monotonic() - started)


def within(seconds: float, send: Callable[[], Answer]) -> Answer | None:
    """``send()`` in a daemon thread, or None if it has not answered in ``seconds``.
    A straggler finishes on its own, on an app no later example uses."""
    box: list[Answer | BaseException] = []

    def run() -> None:
        try:
            box.append(send())
        except BaseException as error:  # handed to the test's thread below
            box.append(error)

    thread = threading.Thread(target=run, name="differential request", daemon=True)
    thread.start()
    thread.join(seconds)
    if not box:
        return None
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


@functools.cache
def uncached_app(shape: str) -> Flask:
    """The uncached build holds no state between requests: one per shape will do."""
    return create_app(False, shape)


def check_in_process(shape: str, requests: Sequence[Req]) -> None:
    app = create_app(True, shape)
    with app.app_context():
        app.extensions["uwsgicache"].clear()
    plain = uncached_app(shape)
    slow = SLOW["in-process"]
    check(
        requests,
        cached=lambda request: within(slow, lambda: call(app, request)),
        uncached=lambda request: call(plain, request),
        slow=slow,
    )


@pytest.mark.parametrize("shape", SHAPES)
@settings(
    max_examples=IN_PROCESS_EXAMPLES,
    deadline=None,
    # Not the explain phase: it reruns a failure many times over for its comments.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(requests=sequences(5, 25))
def test_in_process(shape: str, requests: list[Req]) -> None:
    check_in_process(shape, requests)


def get(target: bytes, **headers: Any) -> Req:
    return Req("GET", target, **headers)


# Sequences that each show one way the cache could show through. The random tests find
# these too, among others; these say by name which ones hold.
KNOWN: dict[str, tuple[str, list[Req]]] = {
    "basic-auth-other-user": (
        "plain", [get(b"/basic", auth="alice"), get(b"/basic", auth="bob")]
    ),
    "basic-auth-without-credentials": (
        "plain", [get(b"/basic", auth="alice"), get(b"/basic")]
    ),
    "login-required-outside-cache": (
        "plain", [get(b"/me", cookie="alice"), get(b"/me", cookie="bob"), get(b"/me")]
    ),
    "session-get": ("plain", [get(b"/greet", cookie="alice"), get(b"/greet")]),
    "session-in-untracked": ("plain", [get(b"/greet2", cookie="alice"), get(b"/greet2")]),
    "session-helper": (
        "plain",
        [get(b"/helper-user", cookie="alice"), get(b"/helper-user", cookie="bob")],
    ),
    "edge-session": ("plain", [get(b"/edge-me", cookie="alice"), get(b"/edge-me")]),
    "host-unknown": ("plain", [get(b"/"), get(b"/", host="evil.test")]),
    "host-admin-home": ("plain", [get(b"/", host="admin.example.test"), get(b"/")]),
    "host-admin-only-path": (
        "plain", [get(b"/dash", host="admin.example.test"), get(b"/dash")]
    ),
    "percent-3F-in-path": (
        "plain", [get(b"/page/docs?lang=de"), get(b"/page/docs%3Flang=de")]
    ),
    "percent-3F-no-such-route": ("plain", [get(b"/edge?q=1"), get(b"/edge%3Fq=1")]),
    "raw-utf8-query": (
        "plain", [get(b"/search?q=caf%C3%83%C2%A9"), get(b"/search?q=caf\xc3\xa9")]
    ),
    "reordered-parameters": (
        "plain", [get(b"/search?a=1&b=2&a=2"), get(b"/search?b=2&a=2&a=1")]
    ),
    "vary-accept-language": (
        "plain", [get(b"/lang", language="de"), get(b"/lang", language="fr-CH, fr")]
    ),
    "function-bytes-as-response": ("plain", [get(b"/"), get(b"/blob"), get(b"/blob")]),
    "nested-same-key": ("plain", [get(b"/nested")]),
    "head-then-get": ("plain", [Req("HEAD", b"/page/docs"), get(b"/page/docs")]),
    "login-then-greet": (
        "plain",
        [Req("POST", b"/login?user=alice"), get(b"/greet"), get(b"/greet", cookie="bob")],
    ),
    "middleware-before-init": (
        "middleware_before",
        [get(b"/admin-area", admin_token="s3cret"), get(b"/admin-area")],
    ),
    "middleware-after-init": (
        "middleware_after",
        [get(b"/admin-area", admin_token="s3cret"), get(b"/admin-area")],
    ),
    "before-request-hook": ("hooks", [get(b"/hooked", hook_token="t"), get(b"/hooked")]),
}  # fmt: skip


@pytest.mark.parametrize("name", KNOWN)
def test_known_case(name: str) -> None:
    shape, requests = KNOWN[name]
    check_in_process(shape, requests)


def view_counts(stats: dict[str, Any], view: str) -> dict[str, int]:
    """The hits, misses and refused writes of the view function named ``view``."""
    found = [counts for name, counts in stats["views"].items() if name.endswith(view)]
    assert len(found) == 1, stats
    counts: dict[str, int] = found[0]
    return counts


def test_the_cached_build_caches() -> None:
    """Harness sanity: without hits the differential tests would prove nothing."""
    app = create_app(True, "plain")
    for _ in range(3):
        assert call(app, get(b"/page/docs")).status == 200
    with app.app_context():
        stats = app.extensions["uwsgicache"].stats()
    assert view_counts(stats, ".page")["hits"] >= 1


# ---- real uWSGI -------------------------------------------------------------------------

UWSGI_SETTINGS = settings(
    max_examples=UWSGI_EXAMPLES,
    deadline=None,
    # No shrinking: the servers keep running between examples, and a failing request
    # can keep a worker busy (single flight) after its answer came. The message shows
    # the sequence up to the first difference.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def uwsgi_args(*config: str) -> list[str]:
    return [
        "--master", "--processes", "4", "--http-socket", "127.0.0.1:{port}",
        *config,
        "--die-on-term", "--need-app", "--disable-logging",
        "--wsgi-file", "tests/apps/differential.py", "--callable", "app",
    ]  # fmt: skip


def http(server: Server, request: Req) -> Answer:
    """``request`` as raw bytes on a new connection; the answer, read to EOF."""
    address = urlsplit(server.url)
    assert address.hostname is not None and address.port is not None
    started = time.monotonic()
    data = b""
    with socket.create_connection((address.hostname, address.port), timeout=20) as sock:
        sock.sendall(request.raw())
        while chunk := sock.recv(65536):
            data += chunk
            assert len(data) < MAX_RESPONSE, "answer too large"
            assert time.monotonic() - started < 30, "answer too slow"
    return parse_answer(data, time.monotonic() - started)


def parse_answer(data: bytes, seconds: float) -> Answer:
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"not an HTTP answer: {data[:200]!r}"
    status_line, *header_lines = head.split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in header_lines)
    }
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = dechunk(body)
    return Answer(status, body, seconds)


def dechunk(data: bytes) -> bytes:
    body = b""
    for _ in range(100_000):
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2 :]
    raise AssertionError("too many chunks")


def start_pair(start_uwsgi: Callable[..., Server], *config: str) -> tuple[Server, Server]:
    """The cached and the uncached build of shape plain, 4 workers each."""
    servers = tuple(
        start_uwsgi(
            uwsgi_args(*config),
            {"DIFF_CACHED": flag, "DIFF_SHAPE": "plain"},
            path=READY_PATH,
        )
        for flag in ("1", "0")
    )
    return servers[0], servers[1]


def clear(*servers: Server) -> None:
    for server in servers:
        answer = http(server, Req("POST", b"/_diff/clear", host=SERVER_NAME))
        assert (answer.status, answer.body) == (200, b"cleared"), answer


def stats(server: Server) -> dict[str, Any]:
    answer = http(server, Req("POST", b"/_diff/stats", host=SERVER_NAME))
    assert answer.status == 200, answer
    found: dict[str, Any] = json.loads(answer.body)
    return found


def assert_caches(cached: Server, uncached: Server) -> None:
    """Harness sanity: the cached build has hits (and the other no cache at all)."""
    clear(cached, uncached)
    for _ in range(5):
        assert http(cached, get(b"/page/docs")).status == 200
    assert view_counts(stats(cached), ".page")["hits"] >= 1
    assert stats(uncached) == {}
    clear(cached, uncached)


def check_over_http(cached: Server, uncached: Server, requests: Sequence[Req]) -> None:
    clear(cached, uncached)
    check(
        requests,
        cached=lambda request: http(cached, request),
        uncached=lambda request: http(uncached, request),
        slow=SLOW["http"],
    )


PLAIN_CONFIG = ("--cache2", APP_CACHE_LINE)
# The edge caches, the route lines and the app's cache2 line (last) are in the ini.
EDGE_CONFIG = ("--ini", "tests/apps/differential.ini")


@pytest.fixture
def plain_pair(start_uwsgi: Callable[..., Server]) -> tuple[Server, Server]:
    cached, uncached = start_pair(start_uwsgi, *PLAIN_CONFIG)
    assert_caches(cached, uncached)
    return cached, uncached


@pytest.fixture
def edge_pair(start_uwsgi: Callable[..., Server]) -> tuple[Server, Server]:
    cached, uncached = start_pair(start_uwsgi, *EDGE_CONFIG)
    assert_caches(cached, uncached)
    return cached, uncached


@pytest.mark.launches_uwsgi
@UWSGI_SETTINGS
@given(requests=sequences(5, 15))
def test_uwsgi(plain_pair: tuple[Server, Server], requests: list[Req]) -> None:
    check_over_http(*plain_pair, requests)


@pytest.mark.launches_uwsgi
@UWSGI_SETTINGS
@given(requests=sequences(5, 15))
def test_uwsgi_edge(edge_pair: tuple[Server, Server], requests: list[Req]) -> None:
    check_over_http(*edge_pair, requests)


@pytest.mark.launches_uwsgi
def test_uwsgi_edge_serves_without_python(start_uwsgi: Callable[..., Server]) -> None:
    """Harness sanity for the edge variant: it is on, and after the first request an
    edge view is answered by uWSGI's route (its view counts stop moving). Otherwise
    test_uwsgi_edge only tests the normal cache again."""
    server = start_uwsgi(
        uwsgi_args(*EDGE_CONFIG),
        {"DIFF_CACHED": "1", "DIFF_SHAPE": "plain"},
        path=READY_PATH,
    )
    clear(server)
    edge = stats(server)["edge"]
    assert edge["on"] is True, edge
    answers = {http(server, get(b"/edge?q=sanity")).body for _ in range(5)}
    assert answers == {b"<p>edge page q=sanity</p>"}
    counts = view_counts(stats(server), ".edge")
    server.stop()
    assert counts["misses"] == 1 and counts["hits"] == 0, (
        f"5 GETs of an edge view reached Python {counts['misses'] + counts['hits']} "
        f"times ({counts}): the edge does not serve it. uWSGI's log ends:\n"
        + server.output[-2000:]
    )
