"""delete_edge by generations (flask_uwsgicache.generations): every variant of a path
becomes a miss at once without a list of the store's keys, on every backend, and a
stamp that is not the current one is never served.

The shared table across uWSGI workers (preforked and lazy-apps) is tested end to end
in tests/test_e2e.py; the edge's own records in tests/in_uwsgi.py."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, request, url_for

from flask_uwsgicache import BoundCache, UWSGICache, generations
from flask_uwsgicache.backends.redis import RedisBackend
from flask_uwsgicache.errors import BackendUnavailableError
from flask_uwsgicache.keys import VERSIONS

RedisServer = Any  # tests/conftest.py's RedisServer


def counted_page(app: Flask, ext: UWSGICache, *paths: str) -> list[str]:
    """A cached view at ``paths``; the list of the requests it ran for."""
    runs: list[str] = []

    def page(**_arguments: str) -> str:
        runs.append(request.full_path)
        return f"page {len(runs)}"

    view = ext.cached(timeout=60)(page)
    for path in paths:
        app.add_url_rule(path, view_func=view, endpoint="page", methods=["GET"])
    return runs


def test_delete_edge_lists_no_key(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = UWSGICache()
    runs = counted_page(app, ext, "/a")
    client = app.test_client()
    for query in ("", "?x=1", "?x=2"):
        client.get("/a" + query)
    cache: BoundCache = app.extensions["uwsgicache"]

    def no_listing() -> list[bytes]:
        raise AssertionError("delete_edge listed the store's keys")

    monkeypatch.setattr(cache.backend, "keys", no_listing)
    with app.test_request_context():
        assert ext.delete_edge("/a") is True
    runs.clear()
    for query in ("", "?x=1", "?x=2"):
        client.get("/a" + query)
    assert runs == ["/a?", "/a?x=1", "/a?x=2"]


def test_a_response_of_an_ended_generation_is_never_served_again(
    app: Flask,
) -> None:
    ext = UWSGICache()
    counted_page(app, ext, "/a")
    cache: BoundCache = app.extensions["uwsgicache"]
    client = app.test_client()
    assert client.get("/a").text == "page 1"
    [old] = [(key, cache.backend.get(key)) for key in cache.responses.own_keys()]
    assert client.get("/a").text == "page 1"  # the control: served while current
    with app.test_request_context():
        ext.delete_edge("/a")
    assert client.get("/a").text == "page 2"
    # The old entry put back as it was (a copy taken before the delete): a miss.
    key, entry = old
    assert entry is not None
    cache.backend.set(key, entry, 60)
    assert client.get("/a").text == "page 3"


def test_paths_sharing_a_generation_cell_miss_together(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory")
    ext = UWSGICache(app)
    cells: dict[int, str] = {}
    number = 0
    while True:  # two paths whose stems hash to one cell (a birthday search)
        path = f"/p{number}"
        cell = zlib.crc32(f"view/{path}".encode()) & (generations.SLOTS - 1)
        if cell in cells:
            break
        cells[cell] = path
        number += 1
    first, second, apart = cells[cell], path, "/apart"
    runs = counted_page(app, ext, first, second, apart)
    client = app.test_client()
    for target in (first, second, apart) * 2:
        client.get(target)
    assert len(runs) == 3
    with app.test_request_context():
        ext.delete_edge(first)
    runs.clear()
    for target in (first, second, apart):
        client.get(target)
    # The namesake in the cell misses too (never stale); the other path stays cached.
    assert runs == [first + "?", second + "?"]


def test_a_delete_on_another_machine_is_seen_at_once_on_redis(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    config = {
        "UWSGICACHE_BACKEND": "redis",
        "UWSGICACHE_REDIS_URL": redis_server.url,
        "UWSGICACHE_NAME": "generations",
    }
    here, there = make_app(**config), make_app(**config)
    ext_here, ext_there = UWSGICache(here), UWSGICache(there)
    runs = counted_page(here, ext_here, "/a")
    counted_page(there, ext_there, "/a")
    with here.app_context():
        ext_here.clear()
    client = here.test_client()
    client.get("/a")
    client.get("/a?x=1")
    assert client.get("/a").text == "page 1"  # the control: a hit
    with there.test_request_context():
        assert ext_there.delete_edge("/a") is True
    assert client.get("/a").text == "page 3"
    assert client.get("/a?x=1").text == "page 4"
    # A generation lost to Redis' eviction ends it too: a miss, never an old page.
    cache: BoundCache = here.extensions["uwsgicache"]
    [generation] = cache.space(VERSIONS).own_keys()
    # Twice as long as the page that started it: no key per path piles up in Redis.
    backend = cache.backend
    assert isinstance(backend, RedisBackend)
    assert 60 < backend.client.ttl(backend.namespace + generation) <= 120
    assert cache.backend.delete(generation)
    assert client.get("/a").text == "page 5"
    assert len(runs) == 5


def test_without_generations_delete_edge_lists_the_keys(app: Flask) -> None:
    # Under uWSGI when the workers cannot share a table (lazy-apps without a master):
    # what is stored carries no stamp that counts, and delete_edge deletes by listing.
    cache: BoundCache = app.extensions["uwsgicache"]
    cache.generations = None
    cache._view_responses = None
    ext = UWSGICache()
    runs = counted_page(app, ext, "/a")
    client = app.test_client()
    for _ in range(2):
        client.get("/a")
        client.get("/a?x=1")
    assert len(runs) == 2
    with app.test_request_context():
        assert ext.delete_edge("/a") is True
        assert ext.delete_edge("/a") is False
    client.get("/a")
    assert len(runs) == 3


def test_delete_edge_takes_a_path_as_url_for_writes_it(app: Flask) -> None:
    ext = UWSGICache()
    runs = counted_page(app, ext, "/café/<name>")
    client = app.test_client()
    for _ in range(2):
        client.get("/café/a b")
    assert len(runs) == 1
    with app.test_request_context():
        assert ext.delete_edge(url_for("page", name="a b")) is True  # percent-encoded
    client.get("/café/a b")
    assert len(runs) == 2


def test_a_process_without_the_shared_table_serves_no_stored_response(
    app: Flask,
) -> None:
    # Under uWSGI with a master, a process that could not open the table the others
    # share cannot see their deletes: it must not serve what is stored.
    ext = UWSGICache()
    runs = counted_page(app, ext, "/a")
    client = app.test_client()
    client.get("/a")
    client.get("/a")
    assert len(runs) == 1  # the control: with the table, a hit
    cache: BoundCache = app.extensions["uwsgicache"]
    cache.generations = generations.UnsharedGenerations()
    cache._view_responses = None
    client.get("/a")
    client.get("/a")
    assert len(runs) == 3
    # Its deletes list the keys, so the processes with the table miss too.
    with app.test_request_context():
        assert ext.delete_edge("/a") is True
    assert not [key for key in cache.responses.own_keys() if b"/a?" in key]


def test_a_delete_edge_redis_did_not_get_says_so(
    make_app: Callable[..., Flask], own_redis: RedisServer
) -> None:
    app = make_app(
        UWSGICACHE_BACKEND="redis",
        UWSGICACHE_REDIS_URL=own_redis.url,
        UWSGICACHE_RAISE_ERRORS=True,
    )
    ext = UWSGICache(app)
    counted_page(app, ext, "/a")
    app.test_client().get("/a")
    with app.test_request_context():
        assert ext.delete_edge("/a") is True  # the control
        own_redis.stop()
        # Not "nothing was cached": the page may still be there once Redis is back.
        with pytest.raises(BackendUnavailableError):
            ext.delete_edge("/a")
