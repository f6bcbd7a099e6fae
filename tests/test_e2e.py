"""End to end: deploy/uwsgi.ini (the reference deployment) with 4 workers, over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.launches_uwsgi

Start = Callable[..., Any]
LOCAL = {"UWSGICACHE_LOCAL": "1"}


def deploy_args(*extra: str) -> list[str]:
    """deploy/uwsgi.ini from a clone: this venv, a pidfile of the test's own."""
    pidfile = os.path.join(tempfile.gettempdir(), "flask-uwsgicache-e2e-{port}.pid")
    return ["--ini", "deploy/uwsgi.ini", "--venv", sys.prefix, "--pidfile", pidfile,
            "--disable-logging", *extra]  # fmt: skip


def in_parallel(clients: int, work: Callable[[], None]) -> None:
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive()


def test_every_worker_reads_what_one_wrote(start_uwsgi: Start) -> None:
    server = start_uwsgi(deploy_args(), LOCAL)
    assert server.json("/api/keys/greeting", "PUT", {"value": {"hello": "world"}})["stored"]
    answers: list[dict[str, Any]] = []

    def read() -> None:
        for _ in range(10):
            answers.append(server.json("/api/keys/greeting"))
            time.sleep(0.01)

    in_parallel(8, read)
    assert {json.dumps(answer["value"]) for answer in answers} == {'{"hello": "world"}'}
    assert len({answer["pid"] for answer in answers}) >= 3


def test_the_counter_is_exact_under_concurrent_requests(start_uwsgi: Start) -> None:
    server = start_uwsgi(deploy_args(), LOCAL)
    lock = threading.Lock()
    pids: set[int] = set()

    def visit() -> None:
        for _ in range(250):
            answer = server.json("/counter")
            with lock:
                pids.add(answer["pid"])

    in_parallel(8, visit)
    assert server.json("/counter")["visits"] == 8 * 250 + 1
    assert len(pids) >= 3


def test_entries_survive_worker_recycling(start_uwsgi: Start) -> None:
    # uWSGI recycles on max-requests only once a worker has lived min-worker-lifetime
    # seconds (default 10, found by experiment with 2.0.31), so lower both.
    args = deploy_args("--max-requests", "10", "--min-worker-lifetime", "1")
    server = start_uwsgi(args, LOCAL)
    server.json("/api/keys/kept", "PUT", {"value": "still here", "timeout": 0})
    pids: set[int] = set()
    deadline = time.monotonic() + 20
    while len(pids) < 8 and time.monotonic() < deadline:
        answer = server.json("/api/keys/kept")
        assert answer["value"] == "still here"
        pids.add(answer["pid"])
        time.sleep(0.02)
    assert len(pids) >= 8  # 4 workers, each recycled at least once on average


@pytest.mark.parametrize("loading", [[], ["--lazy-apps"]], ids=["preforked", "lazy-apps"])
def test_the_cached_slow_view_runs_once_for_many_requests(
    start_uwsgi: Start, loading: list[str]
) -> None:
    # Each worker counts in its segment of a table the workers share: made by the master
    # before the fork, or, with lazy-apps, in a file the workers open.
    server = start_uwsgi(deploy_args(*loading), LOCAL)
    bodies: list[dict[str, Any]] = []

    def fetch_slow() -> None:
        for _ in range(5):
            bodies.append(server.json("/slow"))

    in_parallel(8, fetch_slow)
    assert len(bodies) == 40
    assert {body["computed_at"] for body in bodies} == {bodies[0]["computed_at"]}
    assert server.json("/stats")["slow_view_runs"] == 1
    views = server.json("/stats")["stats"]["views"]
    (slow,) = [counts for name, counts in views.items() if name.endswith("slow")]
    assert slow == {"hits": 39, "misses": 1, "refused": 0}
    # After POST /clear no worker brings its old totals back.
    assert server.json("/clear", "POST")["cleared"] is True
    in_parallel(8, lambda: bodies.append(server.json("/slow")))
    views = server.json("/stats")["stats"]["views"]
    (slow,) = [counts for name, counts in views.items() if name.endswith("slow")]
    assert slow == {"hits": 7, "misses": 1, "refused": 0}


@pytest.mark.parametrize("loading", [[], ["--lazy-apps"]], ids=["preforked", "lazy-apps"])
def test_delete_edge_in_one_worker_is_seen_by_every_worker(
    start_uwsgi: Start, loading: list[str]
) -> None:
    # /news is cached the normal way here (no edge cache); delete_edge ends its path's
    # generation in a table the workers share (flask_uwsgicache.generations).
    server = start_uwsgi(deploy_args(*loading), LOCAL)
    bodies: list[str] = []
    pids: set[int] = set()
    # With lazy-apps each worker loads the app itself: wait until several answer.
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        in_parallel(4, lambda: pids.add(server.json("/counter")["pid"]))
    pids.clear()

    def fetch_news() -> None:
        for _ in range(5):
            bodies.append(server.text("/news"))
            pids.add(server.json("/counter")["pid"])

    in_parallel(8, fetch_news)
    assert len(pids) > 1 and {"render number 1" in body for body in bodies} == {True}
    assert server.json("/news/refresh", "POST")["deleted"] is True
    bodies.clear()
    in_parallel(8, fetch_news)
    assert len(pids) > 1 and len(bodies) == 40
    assert {"render number 2" in body for body in bodies} == {True}  # no stale copy
    assert server.json("/stats")["news_renders"] == 2


def test_per_view_counts_survive_worker_recycling(start_uwsgi: Start) -> None:
    args = deploy_args("--max-requests", "10", "--min-worker-lifetime", "1")
    server = start_uwsgi(args, LOCAL)
    pids: set[int] = set()
    requests = 0
    deadline = time.monotonic() + 20
    while len(pids) < 8 and time.monotonic() < deadline:
        server.json("/slow")
        requests += 1
        pids.add(server.json("/counter")["pid"])
        time.sleep(0.02)
    assert len(pids) >= 8  # workers were recycled
    views = server.json("/stats")["stats"]["views"]
    (slow,) = [counts for name, counts in views.items() if name.endswith("slow")]
    assert slow == {"hits": requests - 1, "misses": 1, "refused": 0}


def test_a_second_instance_leaves_the_running_ones_pidfile(
    start_uwsgi: Start, uwsgi_binary: str
) -> None:
    server = start_uwsgi(deploy_args(), LOCAL)
    port = server.url.rsplit(":", 1)[1]
    pidfile = deploy_args()[5].format(port=port)
    assert int(Path(pidfile).read_text()) == server.process.pid
    # The same ini again, on the same address and pidfile: vacuum would delete it.
    second = subprocess.run(
        [uwsgi_binary, "--home", sys.prefix,
         *(arg.format(port=port) for arg in deploy_args())],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env={**os.environ, **LOCAL, "UWSGICACHE_HTTP": server.url.removeprefix("http://")},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert second.returncode != 0
    assert "is locked by another instance" in second.stdout + second.stderr
    assert int(Path(pidfile).read_text()) == server.process.pid
    assert server.json("/counter")["visits"] == 1  # and it still serves


def test_sigterm_stops_the_instance(start_uwsgi: Start) -> None:
    server = start_uwsgi(deploy_args(), LOCAL)
    # Without die-on-term uWSGI 2.0 reloads on SIGTERM and stop() has to SIGKILL it.
    assert server.stop(signal.SIGTERM, timeout=15) == 0
