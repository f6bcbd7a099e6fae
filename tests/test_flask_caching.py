"""Switching from Flask-Caching by its import: its config, decorators and their forms.

Written from Flask-Caching's documentation (configuration, ``cached``, ``memoize``,
``delete_memoized``, the ``cache`` template tag); each test fails on the behaviour that
broke real apps before. The deliberate differences (docs/moving-from-flask-caching.rst)
have their tests at the end, each with the setting that restores Flask-Caching's way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template_string, request

from flask_uwsgicache import (
    CachedResponse,
    UWSGICache,
    make_template_fragment_key,
)
from flask_uwsgicache.appcache import BoundCache
from flask_uwsgicache.config import resolve


@pytest.fixture
def ext(app: Flask) -> UWSGICache:
    return UWSGICache()


def bound(app: Flask) -> BoundCache:
    cache: BoundCache = app.extensions["uwsgicache"]
    return cache


# -- 1. CACHE_* config -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_type", "backend"),
    [
        ("simple", "memory"),
        ("SimpleCache", "memory"),
        ("flask_caching.backends.SimpleCache", "memory"),
        ("null", "null"),
        ("NullCache", "null"),
        ("uwsgi", "uwsgi"),
        ("UWSGICache", "uwsgi"),
        ("flask_caching.contrib.uwsgicache.UWSGICache", "uwsgi"),
        ("redis", "redis"),
        ("RedisCache", "redis"),
        ("flask_caching.backends.rediscache.RedisCache", "redis"),
    ],
)
def test_cache_type_picks_the_backend(cache_type: str, backend: str) -> None:
    settings = resolve({"CACHE_TYPE": cache_type})
    assert settings["UWSGICACHE_BACKEND"] == backend


def test_flask_caching_settings_are_read_when_ours_are_not_set(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(
        CACHE_TYPE="SimpleCache",
        CACHE_DEFAULT_TIMEOUT=7,
        CACHE_KEY_PREFIX="shop:",
        CACHE_THRESHOLD=3,
    )
    UWSGICache(app)
    cache = bound(app)
    assert (cache.backend.name, cache.default_timeout, cache.key_prefix) == (
        "memory",
        7,
        "shop:",
    )
    # SimpleCache makes room when full: so does its stand-in, holding the threshold.
    with app.app_context():
        assert all(cache.set(f"k{n}", n) for n in range(5))
        assert [cache.get(f"k{n}") for n in range(5)] == [None, None, 2, 3, 4]
    assert app.config["UWSGICACHE_DEFAULT_TIMEOUT"] == 7  # shown by `flask uwsgicache`


def test_our_settings_win_over_flask_cachings(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        CACHE_TYPE="null",
        CACHE_DEFAULT_TIMEOUT=7,
        UWSGICACHE_BACKEND="memory",
        UWSGICACHE_DEFAULT_TIMEOUT=9,
    )
    UWSGICache(app)
    assert (bound(app).backend.name, bound(app).default_timeout) == ("memory", 9)


def test_config_given_to_the_extension_overrides_the_apps(
    make_app: Callable[..., Flask],
) -> None:
    shared = UWSGICache(config={"CACHE_TYPE": "simple", "CACHE_DEFAULT_TIMEOUT": 5})
    first, second = make_app(CACHE_TYPE="null"), make_app()
    shared.init_app(first)
    shared.init_app(second, config={"CACHE_DEFAULT_TIMEOUT": 6})
    assert (bound(first).backend.name, bound(first).default_timeout) == ("memory", 5)
    assert (bound(second).backend.name, bound(second).default_timeout) == ("memory", 6)
    app = make_app()
    UWSGICache(app, config={"CACHE_TYPE": "null"})
    assert bound(app).backend.name == "null"


def test_the_null_backend_stores_nothing_and_the_app_still_runs(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(CACHE_TYPE="NullCache", CACHE_NO_NULL_WARNING=True)
    ext = UWSGICache(app)
    runs: list[int] = []

    @ext.memoize()
    def square(x: int) -> int:
        runs.append(x)
        return x * x

    with app.app_context():
        assert ext.set("a", 1) is True and ext.get("a") is None
        assert [square(3), square(3)] == [9, 9] and runs == [3, 3]
    # Control: the same app on a memory cache computes once.
    app = make_app(CACHE_TYPE="simple")
    ext = UWSGICache(app)
    square = ext.memoize()(square.uncached)  # type: ignore[attr-defined]
    runs.clear()
    with app.app_context():
        assert [square(3), square(3)] == [9, 9] and runs == [3]


def test_redis_settings_become_one_url() -> None:
    settings = resolve(
        {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_HOST": "127.0.0.1",
            "CACHE_REDIS_PORT": 6390,
            "CACHE_REDIS_DB": 2,
            "CACHE_REDIS_PASSWORD": "p@ss/word",
        }
    )
    assert settings["UWSGICACHE_REDIS_URL"] == "redis://:p%40ss%2Fword@127.0.0.1:6390/2"
    # As in Flask-Caching, a URL is taken alone.
    settings = resolve(
        {"CACHE_REDIS_URL": "redis://127.0.0.1:1/3", "CACHE_REDIS_HOST": "elsewhere"}
    )
    assert settings["UWSGICACHE_REDIS_URL"] == "redis://127.0.0.1:1/3"
    assert resolve({"CACHE_UWSGI_NAME": "mycache"})["UWSGICACHE_NAME"] == "mycache"
    settings = resolve({"CACHE_REDIS_URL": "redis://127.0.0.1:1", "CACHE_REDIS_DB": 3})
    assert settings["UWSGICACHE_REDIS_URL"] == "redis://127.0.0.1:1/3"
    settings = resolve({"CACHE_REDIS_URL": "redis://127.0.0.1:1/2", "CACHE_REDIS_DB": 3})
    assert settings["UWSGICACHE_REDIS_URL"] == "redis://127.0.0.1:1/2"
    settings = resolve({"CACHE_REDIS_HOST": "::1"})
    assert settings["UWSGICACHE_REDIS_URL"] == "redis://[::1]:6379/0"
    # Flask-Caching's defaults for a Redis CACHE_TYPE without any of them.
    settings = resolve({"CACHE_TYPE": "RedisCache"})
    assert settings["UWSGICACHE_REDIS_URL"] == "redis://localhost:6379/0"
    assert resolve({"CACHE_TYPE": "simple"})["UWSGICACHE_REDIS_URL"] is None


def test_flask_caching_redis_config_talks_to_redis(
    make_app: Callable[..., Flask], redis_server: Any
) -> None:
    host, port = redis_server.url.split("//")[1].split("/")[0].split(":")
    app = make_app(
        CACHE_TYPE="RedisCache", CACHE_REDIS_HOST=host, CACHE_REDIS_PORT=int(port)
    )
    ext = UWSGICache(app)
    with app.app_context():
        assert ext.set("compat", {"a": 1}) and ext.get("compat") == {"a": 1}
        assert ext.delete("compat")


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": "/tmp/x"}, "UWSGICACHE_BACKEND"),
        ({"CACHE_TYPE": "MemcachedCache"}, "UWSGICACHE_BACKEND"),
        ({"CACHE_TYPE": "RedisClusterCache"}, "UWSGICACHE_BACKEND"),
        ({"CACHE_TYPE": "myapp.caches.Custom"}, "UWSGICACHE_BACKEND"),
        ({"CACHE_UWSGI_NAME": "mycache@127.0.0.1:3031"}, "UWSGICACHE_NAME"),
        ({"CACHE_REDIS_HOST": object()}, "UWSGICACHE_REDIS_URL"),
        ({"CACHE_OPTIONS": {"threshold": 5}}, "UWSGICACHE_MEMORY"),
        ({"CACHE_ARGS": [1]}, "UWSGICACHE_MEMORY"),
        ({"CACHE_ENABLE_SIGNALS": True}, "stats()"),
        ({"CACHE_SERIALIZER": object()}, "UWSGICACHE_SERIALIZER"),
        ({"CACHE_TYPE": "simple", "CACHE_THRESHOLD": 0}, "UWSGICACHE_MEMORY"),
        ({"CACHE_HASH_METHOD": "sha256"}, "CACHE_HASH_METHOD"),
        ({"CACHE_DEFAULT_TIMEOUT": "300"}, "CACHE_DEFAULT_TIMEOUT"),
        ({"CACHE_TYPE": None}, "UWSGICACHE_BACKEND"),  # FLASK_CACHE_TYPE=null
        ({"CACHE_TYPE": "redis", "CACHE_REDIS_PORT": "abc"}, "CACHE_REDIS_PORT"),
        ({"CACHE_UWSGI_NAME": 1}, "CACHE_UWSGI_NAME"),
    ],
)
def test_what_cannot_be_honoured_fails_at_init_app_naming_our_setting(
    make_app: Callable[..., Flask], config: dict[str, Any], named: str
) -> None:
    app = make_app(**config)
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        UWSGICache(app)
    assert "uwsgicache" not in app.extensions


def test_a_json_serializer_is_understood(make_app: Callable[..., Flask]) -> None:
    app = make_app(CACHE_TYPE="simple", CACHE_SERIALIZER=json)
    UWSGICache(app)
    assert bound(app).settings["UWSGICACHE_SERIALIZER"] == "json"


# -- 2. delete_memoized in every form ----------------------------------------------------


class Adder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.runs: list[int] = []

    def __repr__(self) -> str:
        return f"Adder({self.name!r})"


def memoized_adder(ext: UWSGICache) -> type[Adder]:
    class Memoized(Adder):
        @ext.memoize()
        def add(self, b: int) -> int:
            self.runs.append(b)
            return b + 1

        @classmethod
        @ext.memoize()
        def scaled(cls, a: int, factor: int = 2) -> int:
            CLASS_RUNS.append(a)
            return a * factor

    return Memoized


CLASS_RUNS: list[int] = []


def test_delete_memoized_of_a_bound_method_forgets_that_instance_only(
    ext: UWSGICache,
) -> None:
    cls = memoized_adder(ext)
    x, y = cls("x"), cls("y")
    x.add(1), x.add(2), y.add(1)  # type: ignore[attr-defined]
    assert ext.delete_memoized(x.add) is True  # type: ignore[attr-defined]
    x.add(1), x.add(2), y.add(1)  # type: ignore[attr-defined]
    assert (x.runs, y.runs) == ([1, 2, 1, 2], [1])
    ext.delete_memoized(cls.add)  # type: ignore[attr-defined]
    y.add(1)  # type: ignore[attr-defined]
    assert y.runs == [1, 1]


def test_delete_memoized_of_one_method_call_in_each_spelling(ext: UWSGICache) -> None:
    spellings: list[Callable[[Any, Any], bool]] = [
        lambda cls, x: ext.delete_memoized(x.add, 1),
        lambda cls, x: ext.delete_memoized(x.add, x, 1),  # the older form
        lambda cls, x: ext.delete_memoized(cls.add, x, 1),
        lambda cls, x: ext.delete_memoized(x.add, b=1),
    ]
    for number, spelling in enumerate(spellings):
        ext.clear()  # room in the reference deployment's 19 items
        cls = memoized_adder(ext)
        x, y = cls(f"x{number}"), cls(f"y{number}")
        x.add(1), x.add(2), y.add(1)  # type: ignore[attr-defined]
        assert spelling(cls, x) is True
        x.add(1), x.add(2), y.add(1)  # type: ignore[attr-defined]
        assert (x.runs, y.runs) == ([1, 2, 1], [1]), number


def test_delete_memoized_of_a_classmethod(ext: UWSGICache) -> None:
    cls = memoized_adder(ext)
    CLASS_RUNS.clear()
    cls.scaled(5), cls.scaled(6)  # type: ignore[attr-defined]
    assert ext.delete_memoized(cls.scaled, cls, 5) is True  # type: ignore[attr-defined]
    cls.scaled(5), cls.scaled(6)  # type: ignore[attr-defined]
    assert CLASS_RUNS == [5, 6, 5]
    assert ext.delete_memoized(cls.scaled, 6) is True  # type: ignore[attr-defined]
    ext.delete_memoized(cls.scaled)  # type: ignore[attr-defined]  # every entry
    cls.scaled(5), cls.scaled(6)  # type: ignore[attr-defined]
    assert CLASS_RUNS == [5, 6, 5, 5, 6]


def test_delete_memoized_with_arguments_that_do_not_fit_is_a_value_error(
    ext: UWSGICache,
) -> None:
    cls = memoized_adder(ext)
    with pytest.raises(ValueError, match="give the instance first"):
        ext.delete_memoized(cls.add, b=3)  # type: ignore[attr-defined]


def test_memoize_with_var_keywords_called_by_keyword(ext: UWSGICache) -> None:
    runs: list[dict[str, Any]] = []

    @ext.memoize()
    def report(a: int, b: int, **options: Any) -> int:
        runs.append(options)
        return a + b

    assert report(1, b=2, c=3) == report(1, 2, c=3) == 3
    assert report(1, b=2, c=4) == 3
    assert runs == [{"c": 3}, {"c": 4}]
    assert ext.delete_memoized(report, 1, b=2, c=3) is True
    report(1, 2, c=3)
    assert runs[-1] == {"c": 3} and len(runs) == 3


def test_a_wrong_call_raises_its_own_error_without_a_fault_logged(
    ext: UWSGICache, log_lines: Callable[[], list[str]]
) -> None:
    @ext.memoize()
    def one(a: int) -> int:
        return a

    with pytest.raises(TypeError):
        one(1, 2)  # type: ignore[call-arg]
    assert not [line for line in log_lines() if "fault" in line]


def test_delete_memoized_of_a_cached_function_clears_it(ext: UWSGICache) -> None:
    runs: list[int] = []

    @ext.cached(key_prefix="totals")
    def totals() -> int:
        runs.append(1)
        return len(runs)

    assert totals() == totals() == 1
    assert ext.delete_memoized(totals) is True
    assert totals() == 2


def test_delete_memoized_verhash_and_the_attribute(ext: UWSGICache) -> None:
    runs: list[int] = []

    @ext.memoize()
    def double(x: int) -> int:
        runs.append(x)
        return 2 * x

    double(1), double(1)
    ext.delete_memoized_verhash(double)
    double(1)
    double.delete_memoized()  # type: ignore[attr-defined]
    double(1)
    assert runs == [1, 1, 1]


# -- 3. attributes of decorated functions ------------------------------------------------


@pytest.mark.parametrize("decorator", ["cached", "memoize"])
def test_decorated_functions_carry_flask_cachings_attributes(
    ext: UWSGICache, decorator: str
) -> None:
    def plain(x: int = 1) -> int:
        return x

    async def coroutine(x: int = 1) -> int:
        return x

    for f in (plain, coroutine):
        decorated: Any = getattr(ext, decorator)(timeout=50)(f)
        assert decorated.uncached is f
        assert decorated.cache_timeout == 50
        key = (
            decorated.make_cache_key(decorated.uncached, 3)
            if decorator == "memoize"
            else decorated.make_cache_key()
        )
        assert isinstance(key, str) and key
    assert asyncio.run(ext.memoize()(coroutine)(4)) == 4


def test_setting_cache_timeout_changes_what_is_stored_next(
    ext: UWSGICache, advance: Callable[[float], None]
) -> None:
    runs: list[int] = []

    @ext.memoize(timeout=100)
    def value(x: int) -> int:
        runs.append(x)
        return x

    value.cache_timeout = 1  # type: ignore[attr-defined]
    value(1)
    advance(2.2)
    value(1)
    assert runs == [1, 1]


def test_the_memoize_key_is_deletable_through_cache_delete(ext: UWSGICache) -> None:
    runs: list[int] = []

    @ext.memoize()
    def value(x: int) -> int:
        runs.append(x)
        return x

    value(1), value(1)
    assert ext.delete(value.make_cache_key(value.uncached, 1)) is True  # type: ignore[attr-defined]
    value(1)
    assert runs == [1, 1]


# -- 4. response_filter, forced_update, generators, CachedResponse, the template tag -----


def test_response_filter_gets_what_the_view_returned(app: Flask, ext: UWSGICache) -> None:
    seen: list[Any] = []

    def accept(returned: Any) -> bool:
        seen.append(returned)
        return True

    @app.route("/created")
    @ext.cached(response_filter=accept)
    def created() -> tuple[str, int]:
        return "made", 201

    assert app.test_client().get("/created").status_code == 201
    assert seen == [("made", 201)]


def test_forced_update_gets_the_arguments_when_it_takes_them(ext: UWSGICache) -> None:
    runs: list[int] = []

    @ext.memoize(forced_update=lambda x: x == 2)
    def value(x: int) -> int:
        runs.append(x)
        return x

    value(1), value(1), value(2), value(2)
    assert runs == [1, 2, 2]

    @ext.cached(key_prefix="fixed", forced_update=lambda: False)
    def fixed() -> int:
        runs.append(0)
        return 0

    fixed(), fixed()
    assert runs.count(0) == 1


def test_generators_are_joined_like_flask_caching(ext: UWSGICache) -> None:
    @ext.memoize()
    def words(n: int) -> Iterator[str]:
        yield from ("a", "b", "c")[:n]

    @ext.memoize()
    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    # Typed as the generators they are; what comes back is joined, as in Flask-Caching.
    assert words(3) == words(3) == "abc"  # type: ignore[comparison-overlap]
    assert numbers(3) == numbers(3) == [0, 1, 2]  # type: ignore[comparison-overlap]


def test_a_cached_response_sets_its_own_timeout(
    app: Flask, ext: UWSGICache, advance: Callable[[float], None]
) -> None:
    runs: list[int] = []

    @app.route("/short")
    @ext.cached(timeout=100)
    def short() -> CachedResponse:
        runs.append(1)
        return CachedResponse(app.make_response(str(len(runs))), timeout=1)

    client = app.test_client()
    assert client.get("/short").text == client.get("/short").text == "1"
    advance(2.2)
    assert client.get("/short").text == "2"


def test_hit_indication_marks_hits_only(app: Flask, ext: UWSGICache) -> None:
    @app.route("/hit")
    @ext.cached(response_hit_indication=True)
    def hit() -> str:
        return "x"

    client = app.test_client()
    assert "hit_cache" not in client.get("/hit").headers
    assert client.get("/hit").headers["hit_cache"] == "True"


def test_source_check_from_config_sees_a_changed_constant(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(CACHE_TYPE="simple", CACHE_SOURCE_CHECK=True)
    ext = UWSGICache(app)
    results = []
    for word in ("old", "new"):
        module = tmp_path / f"source_{word}.py"
        module.write_text(f"def answer():\n    return {word!r}\n")
        namespace: dict[str, Any] = {}
        exec(compile(module.read_text(), "answer.py", "exec"), namespace)
        function = namespace["answer"]
        function.__module__, function.__qualname__ = "app", "answer"
        with app.app_context():
            results.append(ext.memoize()(function)())
    assert results == ["old", "new"]


def test_the_hash_method_from_config_makes_the_keys(make_app: Callable[..., Flask]) -> None:
    app = make_app(CACHE_TYPE="simple", CACHE_HASH_METHOD=hashlib.sha256)
    ext = UWSGICache(app)

    @ext.memoize()
    def one(x: int) -> int:
        return x

    with app.app_context():
        assert len(one.make_cache_key(one.uncached, 1).rsplit(":", 1)[1]) == 64  # type: ignore[attr-defined]


def test_the_template_tag_as_flask_caching_documents_it(
    app: Flask, ext: UWSGICache
) -> None:
    page = textwrap.dedent(
        """\
        {% cache 60, "sidebar", user %}{{ counter() }}{% endcache %}
        {% cache 60 %}{{ counter() }}{% endcache %}"""
    )
    other = "{% cache 60 %}other{{ counter() }}{% endcache %}"
    calls: list[int] = []

    def counter() -> int:
        calls.append(1)
        return len(calls)

    with app.test_request_context():
        assert render_template_string(page, user="ann", counter=counter) == "1\n2"
        assert render_template_string(page, user="ann", counter=counter) == "1\n2"
        # An unnamed fragment is named by its template and line: not shared.
        assert render_template_string(other, counter=counter) == "other3"
        key = make_template_fragment_key("sidebar", vary_on=["ann"])
        assert key == "_template_fragment_cache_sidebar_ann"
        assert ext.get(key) == "1"
        deleting = '{% cache "del", "sidebar", user %}{{ counter() }}{% endcache %}'
        assert render_template_string(deleting, user="ann", counter=counter) == "4"
        assert ext.get(key) is None


# -- 6. the differences, and the settings that restore Flask-Caching's way ----------------


def test_the_query_string_is_in_the_default_key_unless_turned_off(
    app: Flask, ext: UWSGICache
) -> None:
    runs: list[str] = []

    @app.route("/search")
    @ext.cached()
    def search() -> str:
        runs.append(request.args.get("q", ""))
        return runs[-1]

    @app.route("/plain")
    @ext.cached(query_string=False)  # Flask-Caching's default
    def plain() -> str:
        runs.append("plain")
        return "plain"

    client = app.test_client()
    assert [client.get(f"/search?q={q}").text for q in ("a", "b", "a")] == ["a", "b", "a"]
    client.get("/plain?q=a"), client.get("/plain?q=b")
    assert runs == ["a", "b", "plain"]


def test_only_get_and_head_are_stored(app: Flask, ext: UWSGICache) -> None:
    runs: list[str] = []

    @app.route("/form", methods=["GET", "POST"])
    @ext.cached()
    def form() -> str:
        runs.append(request.method)
        return "form"

    client = app.test_client()
    client.post("/form"), client.post("/form"), client.get("/form"), client.get("/form")
    assert runs == ["POST", "POST", "GET"]


def test_the_host_is_in_the_key(app: Flask, ext: UWSGICache) -> None:
    @app.route("/where")
    @ext.cached()
    def where() -> str:
        return request.host

    client = app.test_client()
    assert client.get("/where", headers={"Host": "a.example"}).text == "a.example"
    assert client.get("/where", headers={"Host": "b.example"}).text == "b.example"
    assert client.get("/where", headers={"Host": "a.example"}).text == "a.example"


def test_a_views_make_cache_key_for_other_view_arguments(
    app: Flask, ext: UWSGICache
) -> None:
    runs: list[str] = []

    @app.route("/pie/<flavor>")
    @ext.cached()
    def pie(flavor: str) -> str:
        runs.append(flavor)
        return flavor

    client = app.test_client()

    def forget(make_key: Callable[[], str]) -> None:
        client.get("/pie/apple"), client.get("/pie/apple")
        with app.test_request_context("/pie/cherry"):
            assert ext.delete(make_key()) is True
        client.get("/pie/apple")

    forget(lambda: pie.make_cache_key("apple"))  # type: ignore[attr-defined]
    forget(lambda: pie.make_cache_key(flavor="apple"))  # type: ignore[attr-defined]
    forget(lambda: pie.make_cache_key(path="/pie/apple"))  # type: ignore[attr-defined]
    assert runs == ["apple"] * 4
    # Outside a request: the app's SERVER_NAME (here none: localhost, as the client).
    with app.app_context():
        assert ext.delete(pie.make_cache_key("apple")) is True  # type: ignore[attr-defined]
        assert ext.delete(pie.make_cache_key("apple")) is False  # type: ignore[attr-defined]
    client.get("/pie/apple"), client.get("/pie/cherry"), client.get("/pie/apple")
    assert runs == ["apple"] * 5 + ["cherry"]
    assert ext.delete_memoized(pie, "apple") is True
    client.get("/pie/apple"), client.get("/pie/cherry")
    assert runs == ["apple"] * 5 + ["cherry", "apple"]


def test_delete_cached_forgets_one_url_of_a_view(app: Flask, ext: UWSGICache) -> None:
    runs: list[str] = []

    @app.route("/works/<kind>")
    @ext.cached()
    def works(kind: str) -> str:
        runs.append(f"{kind}?{request.query_string.decode()}")
        return runs[-1]

    client = app.test_client()
    urls = ["/works/book?limit=15", "/works/book?limit=20", "/works/film"]
    for _ in range(2):
        for url in urls:
            client.get(url)
    # Every copy of the path goes (a superset of Flask-Caching's one query string),
    # whichever request, method or host asks.
    with app.test_request_context("/works/x", method="POST", headers={"Host": "a:80"}):
        assert ext.delete_cached(works, "/works/book", {"limit": 15}) is True
    assert ext.delete_cached(works, kind="film") is True
    assert ext.delete_cached(works, kind="film") is False
    for url in urls:
        client.get(url)
    assert runs == ["book?limit=15", "book?limit=20", "film?"] * 2


def test_is_stale_recomputes_what_it_calls_stale(app: Flask, ext: UWSGICache) -> None:
    runs: list[int] = []

    @ext.memoize(is_stale=lambda value, x: value < 0 and x == 1)
    def value(x: int) -> int:
        runs.append(x)
        return -x if len(runs) == 1 else x

    assert [value(1), value(1), value(1)] == [-1, 1, 1]  # stale once, then stored
    assert runs == [1, 1]

    @app.route("/stale")
    @ext.cached(is_stale=lambda response: response.get_data(as_text=True) == "old")
    def page() -> str:
        runs.append(0)
        return "old" if runs.count(0) == 1 else "new"

    client = app.test_client()
    assert [client.get("/stale").text for _ in range(3)] == ["old", "new", "new"]
    assert runs.count(0) == 2


def test_our_backend_setting_wins_over_any_cache_type(
    make_app: Callable[..., Flask],
) -> None:
    # A production config of Flask-Caching (a filesystem cache) and ours beside it.
    app = make_app(CACHE_TYPE="FileSystemCache", CACHE_DIR="/tmp/x", CACHE_OPTIONS={"a": 1})
    with pytest.raises(ValueError, match="UWSGICACHE_BACKEND"):
        UWSGICache(app)
    app = make_app(CACHE_TYPE="FileSystemCache", CACHE_OPTIONS={"a": 1})
    UWSGICache(app, config={"UWSGICACHE_BACKEND": "memory"})
    assert bound(app).backend.name == "memory"


def test_make_cache_key_keeps_the_host_header_as_sent(app: Flask, ext: UWSGICache) -> None:
    @app.route("/tart/<flavor>")
    @ext.cached()
    def tart(flavor: str) -> str:
        return flavor

    headers = {"Host": "example.com:80"}
    app.test_client().get("/tart/plum", headers=headers)
    with app.test_request_context("/elsewhere", method="POST", headers=headers):
        assert ext.delete(tart.make_cache_key("plum")) is True  # type: ignore[attr-defined]


def test_a_failed_init_app_leaves_the_config_as_it_was(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(CACHE_TYPE="RedisCache", CACHE_REDIS_URL="nowhere")
    before = dict(app.config)
    with pytest.raises(ValueError, match="redis"):
        UWSGICache(app)
    assert dict(app.config) == before
    app.config.update(CACHE_TYPE="SimpleCache")
    UWSGICache(app)
    assert bound(app).backend.name == "memory"


def test_the_null_backend_has_no_edge(make_app: Callable[..., Flask]) -> None:
    app = make_app(CACHE_TYPE="null")
    UWSGICache(app)
    assert not bound(app).edge.caches
    assert bound(app).edge.reason == "the null backend stores nothing, at the edge neither"


def test_unnamed_fragments_of_string_templates_are_told_apart(
    app: Flask, ext: UWSGICache
) -> None:
    with app.test_request_context():
        first = render_template_string("{% cache 60 %}price list{% endcache %}")
        second = render_template_string("{% cache 60 %}admin menu{% endcache %}")
    assert (first, second) == ("price list", "admin menu")


def test_an_entry_from_before_delete_memoized_never_comes_back(
    ext: UWSGICache, advance: Callable[[float], None]
) -> None:
    cls = memoized_adder(ext)
    x = cls("returns")
    x.add(1)  # type: ignore[attr-defined]
    vars(cls)["add"].cache_timeout = 1  # shorter from now on
    assert ext.delete_memoized(x.add) is True  # type: ignore[attr-defined]
    x.add(1)  # type: ignore[attr-defined]
    advance(2.2)  # the instance's version is gone too: a new one, not the old key
    x.add(1)  # type: ignore[attr-defined]
    assert x.runs == [1, 1, 1]


def test_delete_memoized_of_a_method_whose_first_parameter_is_not_self(
    ext: UWSGICache,
) -> None:
    runs: list[int] = []

    class Odd:
        @ext.memoize()
        def value(this, x: int) -> int:  # noqa: N805
            runs.append(x)
            return x

    odd = Odd()
    odd.value(1), odd.value(1)
    assert ext.delete_memoized(odd.value) is True  # every entry: it cannot tell whose
    odd.value(1)
    assert runs == [1, 1]


def test_is_stale_with_stale_while_revalidate_is_refused(ext: UWSGICache) -> None:
    with pytest.raises(ValueError, match="cannot go together"):
        ext.memoize(is_stale=lambda value: True, stale_while_revalidate=5)
    with pytest.raises(ValueError, match="cannot go together"):
        ext.cached(is_stale=lambda value: True, stale_while_revalidate=5)


def test_errors_in_is_stale_and_response_filter_never_reach_the_client(
    make_app: Callable[..., Flask], log_lines: Callable[[], list[str]]
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", TESTING=False)
    ext = UWSGICache(app)
    runs: list[str] = []

    def broken(*args: Any, strict: bool = False) -> bool:
        raise RuntimeError("bug in the app's callable")

    @app.route("/stale")
    @ext.cached(is_stale=broken)
    def page() -> str:
        runs.append("page")
        return "page"

    @ext.memoize(response_filter=broken)
    def value(x: int) -> int:
        runs.append("value")
        return x

    client = app.test_client()
    assert [client.get("/stale").status_code for _ in range(2)] == [200, 200]
    with app.app_context():
        assert value(1) == value(1) == 1
    assert runs == ["page", "page", "value", "value"]  # recomputed, never a 500
    assert any("bug in the app's callable" in line for line in log_lines())


def test_args_to_ignore_self_shares_entries_between_instances(ext: UWSGICache) -> None:
    runs: list[int] = []

    class Shared:
        @ext.memoize(args_to_ignore=["self"])
        def value(self, x: int) -> int:
            runs.append(x)
            return x

    assert Shared().value(1) == Shared().value(1) == 1
    assert runs == [1]


def test_decorated_functions_keep_their_signature_for_type_checkers(
    app: Flask, ext: UWSGICache
) -> None:
    """mypy (run over the tests by scripts/test.sh) reports the calls marked below as
    wrong; if the decorators lost the signature, the markers would be unused, which
    mypy --strict reports too."""

    @ext.cached(timeout=5, key_prefix="sig")
    def greeting(name: str, punctuation: str = "!") -> str:
        return f"hello {name}{punctuation}"

    @ext.memoize(timeout=5)
    async def double(number: int) -> int:
        return number * 2

    with app.app_context():
        with pytest.raises(TypeError):  # a miss: the call itself fails
            greeting("ada", "?", "extra")  # type: ignore[call-arg]
        assert greeting("ada") == "hello ada!"
        result: int = asyncio.run(double(4))
        assert result == 8
        with pytest.raises(TypeError):
            asyncio.run(double(4, 5))  # type: ignore[call-arg]
