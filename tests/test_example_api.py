"""The example app's pages and JSON API under bad input: a 4xx with a JSON error, never a
5xx caused by the input, and no request can reach the keys the app counts with."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parent.parent
Start = Callable[..., Any]


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """A fresh example app on the memory backend (its own module import each time)."""
    monkeypatch.setenv("FLASK_UWSGICACHE_BACKEND", "memory")
    spec = importlib.util.spec_from_file_location(
        "example_manage", ROOT / "example_app" / "manage.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["example_manage"] = module
    spec.loader.exec_module(module)
    yield module.flaskapp
    del sys.modules["example_manage"]


@pytest.fixture
def client(example: Flask) -> FlaskClient:
    return example.test_client()


def answer(response: Any) -> dict[str, Any]:
    assert response.mimetype == "application/json", response.get_data()[:200]
    body: dict[str, Any] = json.loads(response.get_data())
    return body


BAD_PUTS = [
    ("not json", "text/plain", "send a JSON object"),
    ("[1, 2]", "application/json", "send a JSON object"),
    ('{"v": 1}', "application/json", "send a JSON object"),
    ('{"value": 1, "timeout": NaN}', "application/json", "timeout is nan"),
    ('{"value": 1, "timeout": Infinity}', "application/json", "timeout is inf"),
    ('{"value": 1, "timeout": -1}', "application/json", "timeout is -1"),
    ('{"value": 1, "timeout": 1e308}', "application/json", "timeout is 1e+308"),
    ('{"value": 1, "timeout": "abc"}', "application/json", "not a number"),
    ('{"value": 1, "timeout": true}', "application/json", "not a number"),
]


@pytest.mark.parametrize(("body", "content_type", "error"), BAD_PUTS)
def test_bad_puts_are_a_400_with_a_json_error(
    client: FlaskClient, body: str, content_type: str, error: str
) -> None:
    response = client.put("/api/keys/k", data=body, content_type=content_type)
    assert response.status_code == 400
    assert error in answer(response)["error"]
    assert answer(client.get("/api/keys/k"))["found"] is False  # nothing stored
    # The control: a good PUT to the same key is stored.
    good = client.put("/api/keys/k", json={"value": [1, 2], "timeout": 60})
    assert good.status_code == 200 and answer(good)["stored"] is True
    assert answer(client.get("/api/keys/k"))["value"] == [1, 2]


def test_the_apps_own_keys_are_out_of_the_apis_reach(client: FlaskClient) -> None:
    assert answer(client.get("/counter"))["visits"] == 1
    for key in ("visits", "python_requests", "slow_view_runs", "news_renders"):
        assert client.put(f"/api/keys/{key}", json={"value": "a string"}).status_code == 200
    assert client.delete("/api/keys/visits").status_code == 200
    # Counting goes on: the API's keys are another namespace.
    assert answer(client.get("/counter"))["visits"] == 2
    stats = answer(client.get("/stats"))
    assert isinstance(stats["python_requests"], int) and stats["python_requests"] >= 8
    assert answer(client.get("/api/keys/visits"))["found"] is False  # deleted, its own


def test_refused_values_and_odd_requests_are_json_4xx(client: FlaskClient) -> None:
    too_large = client.put("/api/keys/big", json={"value": "x" * 2_000_000})
    assert too_large.status_code == 413 and "bytes" in answer(too_large)["error"]
    assert client.get("/api/keys/big").get_json()["found"] is False
    assert client.put("/api/keys/" + "k" * 201, json={"value": 1}).status_code == 400
    assert client.post("/api/keys/k").status_code == 405
    assert client.get("/no/such/page").status_code == 404
    for path in ("/primes/1", "/primes/99999999"):
        assert client.get(path).status_code == 400
    for path in ("/primes/abc", "/primes/-5"):
        assert client.get(path).status_code == 404
    for response in (too_large, client.post("/api/keys/k"), client.get("/primes/1")):
        assert isinstance(answer(response)["pid"], int)
    odd = client.get("/search?q=%ff&page=abc")
    assert odd.status_code == 200 and answer(odd)["page"] == 1


def test_a_full_cache_leaves_pages_up_and_says_so(example: Flask) -> None:
    client = example.test_client()
    # Fill every item of the app's cache (the memory backend mirrors items=1000).
    for number in range(2000):
        if client.put(f"/api/keys/fill{number}", json={"value": number}).status_code != 200:
            break
    full = client.put("/api/keys/one-more", json={"value": 1})
    assert full.status_code == 507 and "refused" in answer(full)["error"]
    # A new counter cannot be made: the page says so instead of failing.
    counter = client.get("/counter")
    assert counter.status_code == 200 and answer(counter)["visits"] is None
    assert client.get("/").status_code == 200
    news = client.get("/news")
    assert news.status_code == 200 and b"render number unknown" in news.get_data()


def test_pages_name_the_worker(client: FlaskClient) -> None:
    assert b"Answered by worker pid" in client.get("/").get_data()
    for path in ("/counter", "/stats", "/api/keys/k", "/primes/100"):
        assert isinstance(answer(client.get(path))["pid"], int), path
    for path in ("/search?q=a", "/slow"):
        assert isinstance(answer(client.get(path))["computed_by"], int), path
    assert not math.isnan(answer(client.get("/search?q=a"))["computed_at"])


@pytest.mark.launches_uwsgi
def test_under_uwsgi_bad_input_never_breaks_the_app(start_uwsgi: Start) -> None:
    from test_e2e import LOCAL, deploy_args

    server = start_uwsgi(deploy_args(), LOCAL)
    assert server.json("/api/keys/python_requests", "PUT", {"value": "x"})["stored"]
    request = urllib_request(server.url + "/api/keys/k", b"not json")
    status, body = request
    assert status == 400 and "error" in json.loads(body)
    visits = [server.json("/counter")["visits"] for _ in range(3)]
    assert visits == [1, 2, 3]
    assert isinstance(server.json("/stats")["python_requests"], int)


def urllib_request(url: str, data: bytes) -> tuple[int, bytes]:
    """PUT ``data`` to ``url``; the status and body, errors included."""
    import urllib.error
    import urllib.request

    put = urllib.request.Request(url, data=data, method="PUT")
    try:
        with urllib.request.urlopen(put, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
