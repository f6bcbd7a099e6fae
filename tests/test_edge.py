"""The edge: cached(edge=True) responses served by uWSGI's routing without Python.

End to end on deploy/uwsgi-edge.ini (the example app, 4 workers, the route lines), and
on a uWSGI built without routing; the policy (what may go to the edge) on the memory
backend, where the edge is off.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request

from flask_uwsgicache import UWSGICache
from flask_uwsgicache.edge import (
    EDGE_ROUTE_KEY,
    ROUTE_GUARDS,
    Edge,
    parse_config,
    route_line,
    route_lines,
)
from flask_uwsgicache.logs import RateLimitedLog

Start = Callable[..., Any]
Lines = Callable[[], list[str]]
LOCAL = {"UWSGICACHE_LOCAL": "1"}
HTML = "text/html; charset=utf-8"


def deploy_args(ini: str, *extra: str) -> list[str]:
    pidfile = os.path.join(tempfile.gettempdir(), "flask-uwsgicache-edge-{port}.pid")
    return ["--ini", ini, "--venv", sys.prefix, "--pidfile", pidfile, *extra]


def fetch(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    """``(status, Content-Type, body)`` of one request."""
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


def python_requests(server: Any) -> int:
    """The example app's count of requests that reached Python (this one included)."""
    count: int = server.json("/stats")["python_requests"]
    return count


@pytest.mark.launches_uwsgi
def test_edge_hits_never_reach_python(start_uwsgi: Start) -> None:
    server = start_uwsgi(deploy_args("deploy/uwsgi-edge.ini"), LOCAL)
    assert server.json("/stats")["stats"]["edge"]["on"] is True  # a routing build
    first = fetch(server.url + "/news")
    before = python_requests(server)
    answers = [fetch(server.url + "/news") for _ in range(50)]
    answers += [fetch(server.url + "/news?b=2&a=1") for _ in range(2)]
    assert python_requests(server) == before + 1 + 1  # this read, and ?b=2&a=1 once
    assert {answer for answer in answers[:50]} == {first}
    assert first[:2] == (200, HTML)
    # The JSON view is served with its own content type from its own edge cache.
    fetch(server.url + "/api/clock")
    status, content_type, _body = fetch(server.url + "/api/clock")
    assert (status, content_type) == (200, "application/json")
    # HEAD and POST are not answered by the route: Flask answers them.
    before = python_requests(server)
    fetch(server.url + "/news", "HEAD")
    with pytest.raises(urllib.error.HTTPError) as error:
        fetch(server.url + "/news", "POST")
    assert error.value.code == 405
    error.value.close()
    assert python_requests(server) == before + 3
    # The app's cache2 line is the last one, so the app knows its limits (#1374).
    server.stop()
    assert "cannot read the cache2 options" not in server.output


def raw_get(url: str, target: str, headers: dict[str, str]) -> bytes:
    """The body of ``GET target`` sent with exactly ``headers`` (Host included)."""
    address = url.removeprefix("http://")
    connection = http.client.HTTPConnection(address, timeout=30)
    try:
        connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().read()
    finally:
        connection.close()


@pytest.mark.launches_uwsgi
def test_the_edge_answers_only_anonymous_gets_for_their_own_host(
    start_uwsgi: Start,
) -> None:
    server = start_uwsgi(deploy_args("deploy/uwsgi-edge.ini"), LOCAL)
    host = server.url.removeprefix("http://")
    # A forged Host fills the edge under that host only.
    forged = raw_get(server.url, "/news", {"Host": "evil.test"})
    assert raw_get(server.url, "/news", {"Host": "evil.test"}) == forged
    before = python_requests(server)
    mine = raw_get(server.url, "/news", {"Host": host})
    assert mine != forged and b"render number 2" in mine
    assert raw_get(server.url, "/news", {"Host": host}) == mine  # at the edge now
    assert python_requests(server) == before + 2
    # Requests with a cookie or credentials reach the app (the cache's normal path).
    raw_get(server.url, "/news", {"Host": host, "Cookie": "session=x"})
    raw_get(server.url, "/news", {"Host": host, "Authorization": "Bearer x"})
    raw_get(server.url, "/news", {"Host": host, "X-Api-Key": "k"})
    assert python_requests(server) == before + 6
    # A scheme header (uWSGI makes the request https for the app) fills its own entry.
    https = raw_get(server.url, "/news", {"Host": host, "X-Forwarded-Proto": "https"})
    assert https != mine
    assert raw_get(server.url, "/news", {"Host": host}) == mine
    # A Host that is not a plain name is never stored at the edge.
    odd = {"Host": "a.test/news"}
    raw_get(server.url, "/news", odd)
    before = python_requests(server)
    raw_get(server.url, "/news", odd)
    assert python_requests(server) == before + 2
    # Nor for a URI that does not start with "/", read as another host's entry.
    split = raw_get(server.url, "2/news", {"Host": "a.test:1"})
    assert raw_get(server.url, "/news", {"Host": "a.test:12"}) != split


def edge_shapes_args(callable_: str) -> list[str]:
    """uWSGI's arguments for tests/apps/edge_shapes.py's ``callable_``, 2 workers, with
    an edge cache and its route lines, the app's cache2 line last."""
    args = ["--master", "--processes", "2", "--http-socket", "127.0.0.1:{port}",
            "--die-on-term", "--cache2", "name=edge,items=100,keysize=512"]  # fmt: skip
    for line in route_lines({HTML: "edge"}).splitlines():
        option, value = line.split(" = ", 1)
        # start_uwsgi fills in {port}: keep uWSGI's ${...} as they are.
        args += ["--" + option, value.replace("{", "{{").replace("}", "}}")]
    return args + ["--cache2", "name=default,items=100", "--wsgi-file",
                   "tests/apps/edge_shapes.py", "--callable", callable_]  # fmt: skip


@pytest.mark.launches_uwsgi
@pytest.mark.parametrize("callable_", ["app", "wrapped"])
def test_the_edge_fills_only_when_uwsgi_calls_the_app_itself(
    start_uwsgi: Start, callable_: str
) -> None:
    args = edge_shapes_args(callable_)
    server = start_uwsgi(args, path="/edge-keys")
    for _ in range(3):
        assert fetch(server.url + "/page")[2] == b"<p>render 1</p>"
    host = server.url.removeprefix("http://")
    expected = [f"||||{host}/page"] if callable_ == "app" else []
    assert fetch(server.url + "/edge-keys")[2] == json.dumps(expected).encode() + b"\n"
    server.stop()
    if callable_ == "wrapped":
        assert "uWSGI calls WSGI middleware around the app" in server.output


def raw_body(url: str, target: bytes) -> bytes:
    """The body of ``GET target`` sent as these exact bytes (no encoding on the way)."""
    address = url.removeprefix("http://")
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.0\r\nHost: " + address.encode()
                     + b"\r\n\r\n")  # fmt: skip
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.split(b"\r\n\r\n", 1)[1]


@pytest.mark.launches_uwsgi
def test_the_edge_keys_raw_bytes_as_sent(start_uwsgi: Start) -> None:
    args = edge_shapes_args("app")
    server = start_uwsgi(args, path="/edge-keys")
    # A latin-1 byte first: as a str key it would have gone to uWSGI as UTF-8, the
    # key of the raw UTF-8 request that follows.
    assert raw_body(server.url, b"/echo/m\xfcnchen") == "<p>m\ufffdnchen</p>".encode()
    for _ in range(2):
        assert raw_body(server.url, b"/echo/m\xc3\xbcnchen") == "<p>münchen</p>".encode()


@pytest.mark.launches_uwsgi
def test_delete_edge_and_clear_make_the_next_request_run_it(start_uwsgi: Start) -> None:
    server = start_uwsgi(deploy_args("deploy/uwsgi-edge.ini"), LOCAL)
    first = fetch(server.url + "/news")[2]
    assert fetch(server.url + "/news")[2] == first
    assert server.json("/news/refresh", "POST")["deleted"] is True
    before = python_requests(server)
    second = fetch(server.url + "/news")[2]
    assert second != first and b"render number 2" in second
    assert python_requests(server) == before + 2
    assert fetch(server.url + "/news")[2] == second  # back at the edge
    assert python_requests(server) == before + 3
    # clear() empties the edge too (and the app's counters with the rest of the cache).
    assert server.json("/clear", "POST")["cleared"] is True
    before = python_requests(server)
    assert b"render number 1" in fetch(server.url + "/news")[2]
    assert python_requests(server) == before + 2


@pytest.mark.launches_uwsgi
def test_edge_entries_expire(start_uwsgi: Start) -> None:
    server = start_uwsgi(deploy_args("deploy/uwsgi-edge.ini"), LOCAL)
    first = fetch(server.url + "/api/clock")[2]  # cached for 2 s
    assert fetch(server.url + "/api/clock")[2] == first
    # uWSGI's sweeper runs every cache-expire-freq (1 s here) and has 1 s resolution.
    deadline = time.monotonic() + 8
    while fetch(server.url + "/api/clock")[2] == first:
        assert time.monotonic() < deadline, "the edge entry did not expire"
        time.sleep(0.2)


@pytest.mark.launches_uwsgi
def test_without_routing_the_view_is_cached_the_normal_way(
    start_uwsgi: Start, uwsgi_without_routing: str
) -> None:
    # deploy/uwsgi.ini (no route lines: strict mode would refuse them) plus an edge cache,
    # given first: the app's cache2 line must stay the last one (unbit/uwsgi#1374).
    args = ["--cache2", "name=edge,items=10,keysize=512", *deploy_args("deploy/uwsgi.ini")]
    server = start_uwsgi(args, LOCAL, binary=uwsgi_without_routing)
    edge = server.json("/stats")["stats"]["edge"]
    assert edge["on"] is False and "without internal routing" in edge["reason"]
    bodies = {fetch(server.url + "/news")[2] for _ in range(5)}
    assert len(bodies) == 1
    assert server.json("/stats")["news_renders"] == 1
    assert server.stop() == 0
    assert "no internal routing support" in server.output
    assert "the edge is off: this uWSGI was built without internal routing" in server.output


# -- policy, on the memory backend (the edge is off outside uWSGI) ----------------------


def test_edge_is_off_outside_uwsgi_and_views_are_cached_normally(
    app: Flask, log_lines: Lines
) -> None:
    ext = UWSGICache()  # acts on the current app's cache
    runs: list[int] = []

    @app.route("/edgy")
    @ext.cached(timeout=60, edge=True)
    def edgy() -> str:
        runs.append(1)
        return "same for everyone"

    client = app.test_client()
    assert client.get("/edgy").text == client.get("/edgy").text == "same for everyone"
    assert runs == [1]
    assert ext.stats()["edge"]["on"] is False
    assert any("edge=True views are cached the normal way" in line for line in log_lines())


def test_edge_refuses_per_request_options() -> None:
    with pytest.raises(ValueError, match="edge=True"):
        UWSGICache().cached(edge=True, unless=lambda: False)
    with pytest.raises(ValueError, match="edge=True"):
        UWSGICache().cached(edge=True, key_prefix="fixed")


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda: Response("x", status=201), "not a 200"),
        (lambda: with_header("Set-Cookie", "a=b"), "same for everyone"),
        (lambda: with_header("Vary", "Accept-Language"), "varies"),
        (lambda: with_header("Content-Security-Policy", "default-src 'self'"), "header"),
        (lambda: with_header("Cache-Control", "no-cache"), "no-cache"),
        (lambda: with_header("ETag", '"v1"'), "ETag"),
        (lambda: with_header("Accept-Ranges", "bytes"), "Accept-Ranges"),
        (lambda: Response(b"", content_type=HTML), "empty"),
        (lambda: jsonify(a=1), "no edge cache for Content-Type"),
    ],
    ids=[
        "status",
        "cookie",
        "vary",
        "other header",
        "no-cache",
        "etag",
        "ranges",
        "empty",
        "type",
    ],  # fmt: skip
)
def test_only_what_is_the_same_for_everyone_goes_to_the_edge(
    app: Flask, log_lines: Lines, make: Callable[[], Response], why: str
) -> None:
    edge = Edge({HTML: "edge"}, None, RateLimitedLog())
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/page", "HTTP_HOST": "a.test"}
    assert edge.store(app, environ, make(), 60) is False
    assert any(why in line for line in log_lines()), log_lines()


@pytest.mark.parametrize(
    ("shape", "why"),
    [
        (lambda app: app.before_request(lambda: None), "before_request"),
        (lambda app: app.after_request(lambda response: response), "after_request"),
        (lambda app: setattr(app, "wsgi_app", lambda *args: []), "wrapped in WSGI"),
        (lambda app: None, "uWSGI calls WSGI middleware around the app"),
    ],
    ids=["before_request", "after_request", "wsgi_app wrapped", "app wrapped"],
)
def test_the_edge_is_refused_when_the_app_could_answer_otherwise(
    app: Flask, log_lines: Lines, shape: Callable[[Flask], Any], why: str
) -> None:
    # The last case is this test itself: pytest, not the WSGI server, calls the app.
    shape(app)
    edge = Edge({HTML: "edge"}, None, RateLimitedLog())
    environ = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/page", "HTTP_HOST": "a.test"}
    assert edge.store(app, environ, Response("body", content_type=HTML), 60) is False
    assert any(why in line for line in log_lines()), log_lines()


def with_header(name: str, value: str) -> Response:
    response = Response("body", content_type=HTML)
    response.headers[name] = value
    return response


def test_requests_with_credentials_or_other_methods_never_go_to_the_edge(
    app: Flask,
) -> None:
    edge = Edge({HTML: "edge"}, None, RateLimitedLog())
    response = Response("body", content_type=HTML)
    get = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/page", "HTTP_HOST": "a.test"}
    for environ in (
        {**get, "REQUEST_METHOD": "HEAD"},
        {**get, "HTTP_AUTHORIZATION": "x"},
        {**get, "HTTP_COOKIE": "session=x"},
        {**get, "HTTP_HOST": "a.test/evil"},
    ):
        assert edge.store(app, environ, response, 60) is False


def test_delete_edge_forgets_every_variant_of_a_path(app: Flask) -> None:
    ext = UWSGICache()  # acts on the current app's cache
    long = "/a-path-long-enough-that-its-keys-are-hashed-" + "x" * 80
    runs: list[str] = []

    @app.route("/p")
    @app.route(long)
    @app.route("/pp")
    @ext.cached(timeout=60, edge=True)
    def page() -> str:
        runs.append(request.full_path)
        return "page"

    client = app.test_client()
    targets = [f"{path}{query}" for path in ("/p", long) for query in ("", "?a=1", "?b=2")]

    def get_all() -> int:
        runs.clear()
        for target in targets:
            client.get(target)
            client.get(target, headers={"Host": "other.test"})
        client.get("/pp")
        return len(runs)

    assert get_all() == len(targets) * 2 + 1
    assert get_all() == 0  # the control: every variant is served from the cache
    assert ext.delete_edge("/p") is True
    assert ext.delete_edge(long) is True
    assert get_all() == len(targets) * 2  # /pp's stays
    assert ext.delete_edge("/p") is True  # stored again since
    assert ext.delete_edge("/p") is False  # nothing stored since the last delete


def test_edge_config_is_checked() -> None:
    assert parse_config({"Application/JSON": "edge_json"}) == {
        "application/json": "edge_json"
    }
    for bad in ("edge", {"text/html": "a@127.0.0.1:1"}, {"text/html": ""}):
        with pytest.raises(ValueError, match="UWSGICACHE_EDGE"):
            parse_config(bad)
    assert route_line(HTML, "edge").startswith(
        f"route = .* cache:key={EDGE_ROUTE_KEY},name=edge,"
    )
    lines = route_lines({HTML: "edge"}).splitlines()
    assert lines[:-1] == list(ROUTE_GUARDS) and len(lines) == len(ROUTE_GUARDS) + 1
    assert "route-if-not = empty:${HTTP_X_API_KEY} last:" in ROUTE_GUARDS
    with_header = route_lines({HTML: "edge"}, ["X-Session-Token"]).splitlines()
    assert "route-if-not = empty:${HTTP_X_SESSION_TOKEN} last:" in with_header
    assert "route-if-not = empty:${HTTP_AUTHORIZATION} last:" in with_header
