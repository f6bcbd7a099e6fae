"""Faults under load, on deploy/uwsgi.ini (the article's 19-item cache, 4 workers)."""

from __future__ import annotations

import os
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.launches_uwsgi

LOCAL = {"UWSGICACHE_LOCAL": "1"}


def deploy_args() -> list[str]:
    pidfile = os.path.join(tempfile.gettempdir(), "flask-uwsgicache-faults-{port}.pid")
    return ["--ini", "deploy/uwsgi.ini", "--venv", sys.prefix, "--pidfile", pidfile,
            "--disable-logging"]  # fmt: skip


def test_a_full_cache_under_load_serves_every_request(
    start_uwsgi: Callable[..., Any],
) -> None:
    server = start_uwsgi(deploy_args(), LOCAL)
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + 20

    def load(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(100_000):  # bounded by count and by the deadline
            if time.monotonic() > deadline:
                return
            # Every new limit is a new memoized entry: the 19-item cache is full at once.
            url = f"{server.url}/primes/{rng.randrange(2, 100_000)}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    clients = [threading.Thread(target=load, args=(seed,)) for seed in range(8)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=60)
    server.stop()
    assert set(statuses) == {200}, statuses
    assert statuses[200] > 500
    lines = server.output.splitlines()
    refusals = [line for line in lines if "refused a write" in line]
    # Ours: at most one line per kind per 10 s in each of the 4 workers.
    assert 1 <= len(refusals) <= 4 * 3 * 2, refusals
    # uWSGI's own "DANGER ... FULL" line, once per refused write, is held to about one
    # a second per worker: new keys are refused without asking uWSGI for a second.
    danger = [line for line in lines if "DANGER" in line]
    assert len(danger) <= 4 * 25, len(danger)
