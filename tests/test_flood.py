"""A client floods cached URLs with unique ones: deploy/uwsgi.ini keeps serving.

The example app under deploy/uwsgi.ini (4 workers): four clients request 10 000 unique
URLs (``/search?q=...``, a cached view, and ``/primes/N``, a memoized function) while
another asks for 5 hot pages over and over and a third counts visits. With what can be
computed again in a cache of its own that evicts the least recently used (the ini's
``views`` cache), the hot pages stay cached and every visit is counted. The control
runs the same load with everything in the app's own cache (the reference deployment's
19 items): the flood fills it, the hot pages cannot be cached, and new counters cannot
be made.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_e2e import LOCAL, deploy_args

pytestmark = pytest.mark.launches_uwsgi

Start = Callable[..., Any]
FLOOD_CLIENTS, FLOOD_EACH = 4, 2500
HOT = [f"/search?q=hot&page={number}" for number in range(1, 6)]


class Client:
    """One keep-alive-free HTTP client of the server (a connection per request, as
    uWSGI's http router closes them)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 80

    def get(self, path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


def flood(url: str, each: int = FLOOD_EACH) -> dict[str, Any]:
    """The load described in the module docstring; what each client saw."""
    client = Client(url)
    flooded = threading.Semaphore(0)
    deadline = time.monotonic() + 180
    done = threading.Event()
    errors: list[str] = []
    hot_answers: list[tuple[str, float]] = []
    visits: list[int | None] = []

    def flooder(number: int) -> None:
        for index in range(each):
            # Unique query strings of a cached view, and unique arguments of a memoized
            # function (/primes/N): both are entries that can be computed again.
            if index % 2:
                path = f"/primes/{2 + number * each + index}"
            else:
                path = f"/search?q=flood-{number}-{index}"
            status, _body = client.get(path)
            if status != 200:
                errors.append(f"flood: {status}")
            if index == 50:
                flooded.release()
            if time.monotonic() > deadline:
                errors.append("flood: out of time")
                return

    def hot_client() -> None:
        while not done.is_set() and time.monotonic() < deadline:
            for path in HOT:
                status, body = client.get(path)
                if status != 200:
                    errors.append(f"hot: {status}")
                    continue
                hot_answers.append((path, json.loads(body)["computed_at"]))

    def visitor() -> None:
        while not done.is_set() and time.monotonic() < deadline:
            status, body = client.get("/counter")
            visits.append(json.loads(body)["visits"] if status == 200 else None)
            time.sleep(0.01)

    flooders = [threading.Thread(target=flooder, args=(n,)) for n in range(FLOOD_CLIENTS)]
    for thread in flooders:
        thread.start()
    for _ in flooders:  # the flood is under way (each flooder made 50 requests)
        assert flooded.acquire(timeout=60)
    others = [threading.Thread(target=hot_client), threading.Thread(target=visitor)]
    for thread in others:
        thread.start()
    for thread in flooders:
        thread.join(timeout=200)
    done.set()
    for thread in others:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in [*flooders, *others])
    # A hit answers with the stamp of the render before it.
    seen: dict[str, float] = {}
    hits = misses = 0
    for path, computed_at in hot_answers:
        if path in seen:
            hits += seen[path] == computed_at
            misses += seen[path] != computed_at
        seen[path] = computed_at
    return {"errors": errors, "hits": hits, "misses": misses, "visits": visits}


def test_a_flood_of_unique_urls_leaves_hot_pages_cached_and_counts_exact(
    start_uwsgi: Start,
) -> None:
    server = start_uwsgi(deploy_args(), LOCAL)
    seen = flood(server.url)
    assert seen["errors"] == []
    hits, misses = seen["hits"], seen["misses"]
    assert hits + misses >= 50, seen  # the hot client kept asking during the flood
    assert hits / (hits + misses) >= 0.9, (hits, misses)
    # Every visit counted, in order: 1, 2, 3, ... (one visitor).
    assert seen["visits"] == list(range(1, len(seen["visits"]) + 1))
    # The flood went to the views cache, which stayed within its items.
    stats = json.loads(Client(server.url).get("/stats")[1])["stats"]
    assert stats["responses_cache"] == "views"
    assert 0 < stats["responses_items_used"] <= 99


def test_the_control_a_flood_fills_a_shared_cache(start_uwsgi: Start) -> None:
    # The same load with the responses in the app's own cache (19 usable items).
    server = start_uwsgi(
        deploy_args("--env", "FLASK_UWSGICACHE_RESPONSES_NAME=default"), LOCAL
    )
    seen = flood(server.url, each=500)
    hits, misses = seen["hits"], seen["misses"]
    assert hits / max(hits + misses, 1) < 0.5, (hits, misses)
    assert seen["errors"] or None in seen["visits"]  # counting failed
