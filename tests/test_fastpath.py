"""The fast path: stored responses of cached views served before Flask runs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from flask_uwsgicache import UWSGICache
from flask_uwsgicache.generations import ResponseSpace

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


@pytest.fixture
def flask_runs(app: Flask) -> list[str]:
    """Paths of the requests that reached Flask (past the fast path)."""
    runs: list[str] = []
    fast_path = app.wsgi_app
    flask_app = fast_path.wsgi_app  # type: ignore[attr-defined]

    def counting(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        runs.append(environ["PATH_INFO"].encode("latin1").decode())
        return flask_app(environ, start_response)  # type: ignore[no-any-return]

    fast_path.wsgi_app = counting  # type: ignore[attr-defined]
    return runs


def add_page(app: Flask, ext: UWSGICache, path: str = "/page", **options: Any) -> None:
    @app.route(path, endpoint=path)
    @ext.cached(**options)
    def page() -> str:
        return f"page {request.query_string.decode()}"


def test_a_stored_page_is_served_without_flask(
    app: Flask, client: FlaskClient, flask_runs: list[str]
) -> None:
    ext = UWSGICache()
    add_page(app, ext, "/pagé")
    first = client.get("/pag%C3%A9?b=2&a=1")
    second = client.get("/pag%C3%A9?a=1&b=2")
    head = client.head("/pag%C3%A9?a=1&b=2")
    assert second.get_data() == first.get_data() == b"page b=2&a=1"
    assert list(second.headers.items()) == list(first.headers.items())
    assert head.get_data() == b"" and head.headers["Content-Length"] == "12"
    # HEAD goes through Flask, under a key of its own (an app may route it to another
    # view than GET's).
    assert flask_runs == ["/pagé", "/pagé"]
    counts = ext.stats()["views"]
    assert sum(view["hits"] for view in counts.values()) == 1


def test_personal_requests_go_through_flask(
    app: Flask, client: FlaskClient, flask_runs: list[str]
) -> None:
    add_page(app, UWSGICache())
    client.get("/page")
    client.get("/page", headers={"Authorization": "Bearer x"})
    # A Cookie header (set_cookie's arguments changed in Werkzeug 2.3), from a client
    # without a jar, which would replace it.
    app.test_client(use_cookies=False).get("/page", headers={"Cookie": "session=abc"})
    assert flask_runs == ["/page"] * 3


def test_request_hooks_turn_the_fast_path_off(
    app: Flask, client: FlaskClient, flask_runs: list[str]
) -> None:
    seen: list[str] = []
    app.before_request(lambda: seen.append("hook"))
    add_page(app, UWSGICache())
    assert [client.get("/page").text for _ in range(2)] == ["page "] * 2
    assert seen == ["hook"] * 2
    assert flask_runs == ["/page"] * 2


@pytest.mark.skipif(
    not hasattr(Flask, "before_first_request"), reason="Flask >= 2.3 has no such hook"
)
def test_a_before_first_request_hook_turns_the_fast_path_off(
    app: Flask, client: FlaskClient, flask_runs: list[str]
) -> None:
    seen: list[str] = []
    # Flask 2.2: each worker runs it on its first request that reaches Flask.
    app.before_first_request_funcs.append(lambda: seen.append("hook"))  # type: ignore[attr-defined]
    add_page(app, UWSGICache())
    assert [client.get("/page").text for _ in range(2)] == ["page "] * 2
    assert seen == ["hook"]
    assert flask_runs == ["/page"] * 2


@pytest.mark.parametrize(
    "options",
    [
        {"unless": lambda: False},
        {"forced_update": lambda: False},
        {"key_prefix": "fixed-key"},
        {"source_check": True},
        {"response_hit_indication": True},
        {"stale_while_revalidate": 5},
    ],
)
def test_views_with_per_request_options_go_through_flask(
    app: Flask, client: FlaskClient, flask_runs: list[str], options: dict[str, Any]
) -> None:
    add_page(app, UWSGICache(), **options)
    client.get("/page")
    client.get("/page")
    assert flask_runs == ["/page"] * 2


def test_an_uncached_app_is_untouched(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    original = ResponseSpace.get

    def get(space: ResponseSpace, key: str, default: Any = None) -> Any:
        lookups.append(key)
        return original(space, key, default)

    monkeypatch.setattr(ResponseSpace, "get", get)
    plain, control = (make_app(UWSGICACHE_BACKEND="memory") for _ in range(2))
    for app in (plain, control):
        app.route("/")(lambda: "plain")
    add_page(control, UWSGICache(control), "/page")  # one cached view, elsewhere
    UWSGICache(plain)
    assert plain.test_client().get("/").text == "plain"
    assert lookups == []  # no cached view: the fast path looks nothing up
    # The control: once a cached view has stored a page, the same request is looked up.
    assert control.test_client().get("/page").text == "page "
    lookups.clear()
    assert control.test_client().get("/").text == "plain"
    assert lookups
