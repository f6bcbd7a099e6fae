"""Faults under load on deploy/uwsgi.ini (reference deployment: 19 items, 4 workers)."""

from __future__ import annotations

import json
import os
import random
import signal
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
    # Everything in the reference deployment's 19-item cache (not in the ini's views
    # cache, which would evict instead), so that it is full at once.
    env_line = "FLASK_UWSGICACHE_RESPONSES_NAME=default"
    server = start_uwsgi([*deploy_args(), "--env", env_line], LOCAL)
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + 20

    def load(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(100_000):  # bounded by count and by the deadline
            if time.monotonic() > deadline:
                return
            # Every new query string is a new cached response, every new limit a new
            # memoized entry: the 19-item cache is full at once.
            number = rng.randrange(2, 100_000)
            if number % 2:
                url = f"{server.url}/search?q=load&page={number}"
            else:
                url = f"{server.url}/primes/{number}"
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
    # uWSGI's own "DANGER ... FULL" line, once per refused write (one per request would
    # be thousands), is held to about one a second per worker for each kind of write:
    # new keys, updates (the app's request counter, in a bitmap cache), and a value
    # retried after its single-flight lease gave back the last free slot.
    danger = [line for line in lines if "DANGER" in line]
    assert len(danger) <= 4 * 20 * 4, len(danger)


def test_sigkilled_workers_never_hang_the_instance(start_uwsgi: Callable[..., Any]) -> None:
    """50 SIGKILLs, one every 0.2 s, under a bounded write load (lock-engine = ipcsem).

    A killed worker's requests fail (the router answers 502) and uWSGI throttles
    respawns ("respawning too fast": the master sleeps 2 s), so the bound is 10 s; a
    deadlocked cache lock would hold every request past it, for good.
    """
    server = start_uwsgi(deploy_args(), LOCAL)
    pids: set[int] = set()
    outcomes = {"ok": 0, "failed": 0, "hung": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def load(client: int) -> None:
        for number in range(5000):  # bounded by count, and stopped after the kills
            if stop.is_set():
                return
            if number % 2:
                request = urllib.request.Request(f"{server.url}/counter")
            else:  # a write under the cache lock, to one of 10 keys (the cache never fills)
                request = urllib.request.Request(
                    f"{server.url}/api/keys/k{number % 10}",
                    data=b'{"value": 1}',
                    method="PUT",
                )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    pid = json.load(response)["pid"]
                with lock:
                    outcomes["ok"] += 1
                    pids.add(pid)
            except (OSError, ValueError):
                with lock:
                    outcomes["hung" if time.monotonic() - started >= 10 else "failed"] += 1

    clients = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for client in clients:
        client.start()
    kills = 0
    deadline = time.monotonic() + 60
    while kills < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
        with lock:
            alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}")]
        if alive:
            os.kill(random.choice(alive), signal.SIGKILL)  # a worker seen answering
            kills += 1
    stop.set()
    for client in clients:
        client.join(timeout=60)
    print(f"{kills} kills: {outcomes}")
    assert kills == 50
    assert outcomes["hung"] == 0, outcomes
    assert outcomes["ok"] > 10 * outcomes["failed"], outcomes
    time.sleep(3)  # let the master finish its respawn pause
    started = time.monotonic()
    visits = [server.json("/counter")["visits"] for _ in range(20)]
    assert time.monotonic() - started < 5
    assert visits == sorted(visits) and len(set(visits)) == 20
