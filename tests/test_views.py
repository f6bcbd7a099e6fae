"""``cache.cached``: views and plain functions, on every backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, render_template_string, request
from flask.testing import FlaskClient

from flask_uwsgicache import BoundCache, UWSGICache
from flask_uwsgicache.backends import UnavailableBackend
from flask_uwsgicache.flight import lease_key
from flask_uwsgicache.keys import RESULTS
from flask_uwsgicache.responses import MAGIC
from flask_uwsgicache.sharedtables import open_table_file

Lines = Callable[[], list[str]]


@pytest.fixture
def ext(app: Flask) -> UWSGICache:
    """An extension object bound to nothing: it acts on the current app's cache."""
    return UWSGICache()


@pytest.fixture
def calls() -> list[str]:
    return []


def test_a_view_body_runs_once(app: Flask, client: FlaskClient, ext: UWSGICache) -> None:
    runs: list[int] = []

    @app.route("/page")
    @ext.cached(timeout=60)
    def page() -> str:
        runs.append(1)
        return f"page {len(runs)}"

    assert [client.get("/page").text for _ in range(3)] == ["page 1"] * 3
    assert runs == [1]
    # HEAD has a key of its own (an app may route it to another view).
    assert [client.head("/page").status_code for _ in range(2)] == [200, 200]
    assert runs == [1, 1]


def test_the_query_string_is_part_of_the_key_in_any_order(
    app: Flask, client: FlaskClient, ext: UWSGICache
) -> None:
    @app.route("/q")
    @ext.cached()
    def q() -> str:
        return f"{request.query_string.decode()} {time.monotonic_ns()}"

    first = client.get("/q?a=1&b=2").text
    assert client.get("/q?b=2&a=1").text == first
    assert client.get("/q?a=1&b=3").text != first
    assert client.get("/q").text != first


def test_only_get_and_head_are_cached(
    app: Flask, client: FlaskClient, ext: UWSGICache
) -> None:
    runs: list[str] = []

    @app.route("/form", methods=["GET", "POST"])
    @ext.cached()
    def form() -> str:
        runs.append(request.method)
        return "ok"

    for _ in range(2):
        client.post("/form")
        client.get("/form")
    assert runs == ["POST", "GET", "POST"]


def test_only_200_is_stored_unless_a_filter_says_so(
    app: Flask, client: FlaskClient, ext: UWSGICache
) -> None:
    runs: list[str] = []

    @app.route("/missing")
    @ext.cached()
    def missing() -> tuple[str, int]:
        runs.append("missing")
        return "gone", 404

    @app.route("/filtered")
    # As in Flask-Caching, the filter gets what the view returned.
    @ext.cached(response_filter=lambda returned: returned[1] in (200, 404))
    def filtered() -> tuple[str, int]:
        runs.append("filtered")
        return "gone", 404

    for _ in range(2):
        assert client.get("/missing").status_code == 404
        assert client.get("/filtered").status_code == 404
    assert runs == ["missing", "filtered", "missing"]


def test_personal_or_streamed_responses_are_never_stored(
    app: Flask,
    client: FlaskClient,
    ext: UWSGICache,
    stored_responses: Callable[[], list[bytes]],
) -> None:
    @app.route("/cookie")
    @ext.cached()
    def cookie() -> Response:
        response = Response("hello")
        response.set_cookie("session", "secret")
        return response

    @app.route("/stream")
    @ext.cached()
    def stream() -> Response:
        return Response(iter(["a", "b"]))

    @app.route("/private")
    @ext.cached()
    def private() -> Response:
        return Response("mine", headers={"Cache-Control": "private"})

    @app.route("/public")
    @ext.cached()
    def public() -> Response:
        return Response("everyone's")

    for path in ("/cookie", "/stream", "/private"):
        client.get(path)
        assert stored_responses() == [], path
    client.get("/public")  # the control: a response for everyone is stored
    assert len(stored_responses()) == 1


def test_status_headers_and_body_come_back_exactly(
    app: Flask,
    client: FlaskClient,
    ext: UWSGICache,
    stored_responses: Callable[[], list[bytes]],
) -> None:
    @app.route("/exact")
    @ext.cached()
    def exact() -> Response:
        return Response(
            b"\x00binary\xff", status=200, headers={"X-Thing": "1"}, mimetype="image/png"
        )

    first, second = client.get("/exact"), client.get("/exact")
    assert second.status == first.status
    assert second.get_data() == b"\x00binary\xff"
    assert list(second.headers.items()) == list(first.headers.items())
    [stored] = stored_responses()
    assert stored.startswith(MAGIC)


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ("text", b"text"),
        (b"bytes", b"bytes"),
        ({"a": 1}, b'{"a":1}\n'),
        ([1, 2], b"[1,2]\n"),
        (("made", 200, {"X-Made": "yes"}), b"made"),
    ],
)
def test_every_view_return_type_works(
    app: Flask, client: FlaskClient, ext: UWSGICache, result: Any, body: bytes
) -> None:
    runs: list[int] = []

    @app.route("/any")
    @ext.cached()
    def any_view() -> Any:
        runs.append(1)
        return result

    responses = [client.get("/any") for _ in range(2)]
    assert [response.get_data() for response in responses] == [body, body]
    assert runs == [1]


def test_a_key_prefix_without_placeholder_is_the_key(
    app: Flask, client: FlaskClient, ext: UWSGICache, cache: BoundCache
) -> None:
    runs: list[int] = []

    @app.route("/home")
    @ext.cached(key_prefix="home-page")
    def home() -> str:
        runs.append(1)
        return f"home {len(runs)}"

    assert client.get("/home?x=1").text == "home 1"
    assert client.get("/home?x=2").text == "home 1"
    assert cache.delete("home-page") is True
    assert client.get("/home").text == "home 2"


def test_key_prefix_callable_and_make_cache_key(
    app: Flask, client: FlaskClient, ext: UWSGICache, cache: BoundCache
) -> None:
    @app.route("/lang")
    @ext.cached(key_prefix=lambda: "lang-" + request.args.get("l", "en"))
    def lang() -> str:
        return request.args.get("l", "en")

    @app.route("/made/<name>")
    @ext.cached(make_cache_key=lambda name: f"made:{name}")
    def made(name: str) -> str:
        return name

    client.get("/lang?l=fr")
    client.get("/made/x")
    assert cache.responses.has("lang-fr") and cache.responses.has("made:x")
    assert not cache.has("lang-fr")


def test_cached_on_a_plain_function_returns_its_value(
    ext: UWSGICache, cache: BoundCache
) -> None:
    runs: list[int] = []

    @ext.cached(timeout=60, key_prefix="answer")
    def answer() -> dict[str, int]:
        runs.append(1)
        return {"answer": 42}

    assert answer() == {"answer": 42}
    assert answer() == {"answer": 42}
    assert runs == [1]
    # Stored in the results' key space: cache.get cannot read it; delete forgets it.
    assert cache.space(RESULTS).get("answer") == {"answer": 42}
    assert cache.get("answer") is None
    assert cache.delete("answer") is True
    assert answer() == {"answer": 42}
    assert runs == [1, 1]


def test_unless_forced_update_and_cache_none(ext: UWSGICache) -> None:
    runs: list[str] = []
    skip = [False]
    force = [False]

    @ext.cached(key_prefix="u", unless=lambda: skip[0], forced_update=lambda: force[0])
    def value() -> str:
        runs.append("value")
        return "v"

    @ext.cached(key_prefix="n", unless=lambda f, *args: args == ("skip",))
    def none(arg: str = "") -> None:
        runs.append("none")

    value(), value()
    skip[0] = True
    value()
    skip[0], force[0] = False, True
    value()
    none(), none(), none("skip")
    assert runs == ["value", "value", "value", "none", "none", "none"]


def test_source_check_puts_the_code_in_the_key(ext: UWSGICache, cache: BoundCache) -> None:
    @ext.cached(key_prefix="src", source_check=True)
    def source() -> int:
        return 1

    source()
    results = cache.space(RESULTS)
    assert not results.has("src")
    assert source.make_cache_key().startswith("src:")  # type: ignore[attr-defined]
    assert results.has(source.make_cache_key())  # type: ignore[attr-defined]


def test_hit_indication_and_per_view_statistics(
    app: Flask, client: FlaskClient, ext: UWSGICache
) -> None:
    @app.route("/stats")
    @ext.cached(response_hit_indication=True)
    def stats_view() -> str:
        return "s"

    assert "hit_cache" not in client.get("/stats").headers  # on hits only, as Flask-Caching
    assert client.get("/stats").headers["hit_cache"] == "True"
    assert client.get("/stats").headers["hit_cache"] == "True"
    name = f"{__name__}.{stats_view.__qualname__}"
    assert ext.stats()["views"][name] == {"hits": 2, "misses": 1, "refused": 0}
    # clear() starts the counts again; they do not come back with the next event.
    assert ext.clear() is True
    assert ext.stats()["views"] == {}
    assert "hit_cache" not in client.get("/stats").headers
    assert ext.stats()["views"][name] == {"hits": 0, "misses": 1, "refused": 0}


def test_a_hit_writes_nothing_to_the_cache(
    app: Flask, client: FlaskClient, ext: UWSGICache
) -> None:
    @app.route("/read-only")
    @ext.cached()
    def read_only() -> str:
        return "r"

    @ext.memoize()
    def double(number: int) -> int:
        return 2 * number

    backend = app.extensions["uwsgicache"].backend
    writes: list[bytes] = []
    for method in ("set", "insert", "add", "delete", "incr"):
        real = getattr(backend, method)

        def spy(key: bytes, *args: Any, _real: Any = real) -> Any:
            writes.append(key)
            return _real(key, *args)

        setattr(backend, method, spy)
    assert client.get("/read-only").data == b"r" and double(2) == 4
    assert writes  # the control: a miss stores the response and the result
    writes.clear()
    for _ in range(3):
        assert client.get("/read-only").data == b"r" and double(2) == 4
    assert writes == []
    counts = ext.stats()["views"]
    assert counts[f"{__name__}.{read_only.__qualname__}"]["hits"] == 3
    assert counts[f"{__name__}.{double.__qualname__}"]["hits"] == 3


def test_async_views_are_cached(app: Flask, client: FlaskClient, ext: UWSGICache) -> None:
    runs: list[int] = []

    @app.route("/async")
    @ext.cached()
    async def async_view() -> str:
        runs.append(1)
        return "async"

    assert [client.get("/async").text for _ in range(2)] == ["async", "async"]
    assert runs == [1]


def test_a_fragment_is_rendered_once(app: Flask, ext: UWSGICache) -> None:
    runs: list[int] = []

    def render() -> str:
        runs.append(1)
        return "<b>bold</b>"

    template = '{% cache 60, "frag", 1 %}{{ render()|safe }}{% endcache %} & {{ "<i>" }}'
    first = render_template_string(template, render=render)
    second = render_template_string(template, render=render)
    assert first == second == "<b>bold</b> & &lt;i&gt;"
    assert runs == [1]


def test_concurrent_misses_run_the_body_once(ext: UWSGICache, app: Flask) -> None:
    runs: list[int] = []

    @ext.cached(key_prefix="slow")
    def slow() -> str:
        runs.append(1)
        time.sleep(0.3)
        return "done"

    results: list[str] = []

    def call() -> None:
        with app.app_context():
            results.append(slow())

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == ["done"] * 4
    assert runs == [1]


def test_a_dead_lease_holder_delays_others_only_for_the_wait(
    ext: UWSGICache, cache: BoundCache
) -> None:
    @ext.cached(key_prefix="orphan", single_flight_wait=0.3)
    def orphan() -> str:
        return "computed"

    lease = lease_key(cache.space(RESULTS), "orphan")
    cache.internal.add(lease, "a worker that died", timeout=60)
    started = time.monotonic()
    assert orphan() == "computed"
    assert 0.25 <= time.monotonic() - started < 3


def test_stale_while_revalidate_serves_the_old_copy_during_a_refresh(
    ext: UWSGICache, cache: BoundCache, advance: Callable[[float], None]
) -> None:
    version = [0]

    @ext.cached(key_prefix="swr", timeout=1, stale_while_revalidate=30)
    def swr() -> int:
        version[0] += 1
        return version[0]

    assert swr() == 1
    advance(1.2)
    lease = lease_key(cache.space(RESULTS), "swr")
    cache.internal.add(lease, "another worker refreshes", timeout=60)
    assert swr() == 1  # stale copy while the other worker holds the lease
    cache.internal.delete(lease)
    assert swr() == 2  # this caller refreshes
    assert swr() == 2


@pytest.fixture
def tiny_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(UWSGICACHE_BACKEND="memory", UWSGICACHE_MEMORY="items=3,blocksize=200")
    UWSGICache(app)
    yield app


def test_cache_faults_never_reach_the_client(
    tiny_app: Flask, make_app: Callable[..., Flask], log_lines: Lines
) -> None:
    ext = UWSGICache()

    @tiny_app.route("/big")
    @ext.cached()
    def big() -> str:
        return "x" * 1000

    @tiny_app.route("/n/<int:n>")
    @ext.cached()
    def numbered(n: int) -> str:
        return str(n)

    client = tiny_app.test_client()
    assert client.get("/big").text == "x" * 1000
    assert [client.get(f"/n/{n}").text for n in range(6)] == [str(n) for n in range(6)]
    assert any("refused" in line for line in log_lines())

    # A backend whose every call raises (the one used for 'uwsgi' outside uWSGI).
    broken = make_app()
    envelope = tiny_app.extensions["uwsgicache"].envelope
    broken.extensions["uwsgicache"] = BoundCache(UnavailableBackend("default"), envelope)
    broken.route("/n/<int:n>")(numbered)
    broken.route("/json")(ext.cached()(lambda: jsonify(ok=True)))
    broken_client = broken.test_client()
    assert broken_client.get("/n/7").text == "7"
    assert broken_client.get("/json").json == {"ok": True}


PURPOSE = "per-view counts are each worker's own"


def test_the_counts_file_of_lazy_apps_is_never_someone_elses(
    tmp_path: Path, log_lines: Callable[[], list[str]]
) -> None:
    # With lazy-apps the workers meet in a file in the temporary directory, where
    # another user may have put a name first.
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    planted = tmp_path / "flask-uwsgicache-1-ab.counts"
    planted.symlink_to(victim)
    assert open_table_file(planted, 4096, PURPOSE) is None
    assert victim.read_bytes() == b"precious"  # nothing written through the link
    bigger = tmp_path / "bigger.counts"
    bigger.write_bytes(bytes(8192))
    assert open_table_file(bigger, 4096, PURPOSE) is None  # another instance's layout
    assert len([line for line in log_lines() if "each worker's own" in line]) == 2
    # The control: a fresh name gives a private table of the size asked for.
    fresh = tmp_path / "fresh.counts"
    table = open_table_file(fresh, 4096)
    assert table is not None and len(table) == 4096
    assert fresh.stat().st_mode & 0o777 == 0o600
