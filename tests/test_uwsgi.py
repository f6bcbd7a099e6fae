"""The suite against real uWSGI: in-process runs on several cache2 lines, and 4 workers.

Each run starts ``uwsgi`` without ``--master`` (so its exit status is pytest's) and runs
pytest inside it. Skipped locally without the uwsgi binary; fails under ``CI=true``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = "name=default,items=20,blocksize=65536,keysize=60,bitmap=1"
LINES = {
    "reference": REFERENCE,
    "plain": "name=plain,items=1000",
    "purge_lru": "name=lru,items=200,blocksize=8192,keysize=250,purge_lru=1",
}
SUITE = (
    "tests/test_contract.py tests/test_views.py tests/test_memoize.py"
    " tests/test_fastpath.py tests/test_properties.py tests/test_flask_caching.py"
    " tests/in_uwsgi.py"
)

pytestmark = pytest.mark.launches_uwsgi


def run_in_uwsgi(uwsgi_binary: str, args: list[str], pytest_args: str, cache: str) -> None:
    env = {
        **os.environ,
        "UWSGICACHE_TEST_ARGS": pytest_args,
        "UWSGICACHE_TEST_CACHE": cache,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        [uwsgi_binary, "--home", sys.prefix, *args, "--pyrun", "tests/uwsgi_runner.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    # Belt and braces: uWSGI exits 0 after an uncaught exception in a --pyrun script.
    assert re.search(r"\d+ passed", result.stdout + result.stderr), output


@pytest.mark.parametrize("mode", LINES)
def test_the_contract_holds_inside_uwsgi(uwsgi_binary: str, mode: str) -> None:
    line = LINES[mode]
    cache = line.split(",")[0].removeprefix("name=")
    # Both implementations of get and set (the C speedups and the Python methods) on
    # the reference line; on the others, the one that runs by default (C).
    python = "" if mode == "reference" else " and not python"
    selection = f"{SUITE} -k 'not without_any_cache2 and not every_cache_line{python}'"
    run_in_uwsgi(uwsgi_binary, ["--cache2", line], selection, cache)


# What tests/in_uwsgi.py's test_every_cache_line_is_read expects to find.
EVERY_LINE = (
    "name=first,items=30,blocksize=1000,keysize=70,bitmap=1,blocks=90",
    "name=middle,items=12,keysize=300,purge_lru=1,no_expire=1",
    "name=last,items=7,blocksize=4096",
)


def test_every_cache2_line_is_read_inside_uwsgi(uwsgi_binary: str) -> None:
    args = [arg for line in EVERY_LINE for arg in ("--cache2", line)]
    run_in_uwsgi(uwsgi_binary, args, "tests/in_uwsgi.py -k every_cache_line", "first")


def test_init_app_fails_inside_uwsgi_without_any_cache2(uwsgi_binary: str) -> None:
    run_in_uwsgi(uwsgi_binary, [], "tests/in_uwsgi.py -k without_any_cache2", "default")


@pytest.fixture(params=["reference", "plain"])
def counter_server(start_uwsgi: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    """uWSGI with a master and 4 workers serving tests/apps/counter.py on loopback."""
    line = LINES[str(request.param)]
    server = start_uwsgi(
        [
            "--master", "--processes", "4", "--die-on-term",
            "--http-socket", "127.0.0.1:{port}",
            "--cache2", line,
            "--env", f"UWSGICACHE_NAME={line.split(',')[0].removeprefix('name=')}",
            "--wsgi-file", "tests/apps/counter.py",
            "--disable-logging",
        ],
        path="/value",
    )  # fmt: skip
    return server


def test_an_entry_expires_exactly_under_a_master(counter_server: Any) -> None:
    # The entry's own expiry is 1 s; uWSGI is told to keep the item for an hour, so
    # its sweeper cannot be what makes it a miss.
    assert counter_server.json("/plant/ttl?value=v&timeout=1")["stored"] is True
    assert counter_server.json("/get/ttl")["value"] == "v"
    time.sleep(1.2)
    answers = [counter_server.json("/get/ttl") for _ in range(8)]
    assert [answer["value"] for answer in answers] == [None] * 8
    assert all(answer["raw"] for answer in answers)  # uWSGI still holds it
    # And set() with a timeout reads as a miss after it as well.
    assert counter_server.json("/set/t2?value=v&timeout=1")["stored"] is True
    time.sleep(1.2)
    assert counter_server.json("/get/t2")["value"] is None


def test_four_workers_count_exactly(counter_server: Any) -> None:
    clients, requests_each, incs_each = 8, 10, 100
    pids: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(requests_each):
            answer = counter_server.json(f"/inc?n={incs_each}")
            with lock:
                pids.append(answer["pid"])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    total = counter_server.json("/value")["value"]
    assert len(pids) == clients * requests_each
    assert total == clients * requests_each * incs_each
    assert len(set(pids)) >= 2, set(pids)
    print(f"{len(set(pids))} workers served the {len(pids)} requests")


def test_concurrent_misses_across_workers_run_the_view_once(counter_server: Any) -> None:
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def client() -> None:
        answer = counter_server.json("/slow")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [answer["body"] for answer in answers] == ["slow"] * 8
    assert counter_server.json("/get/slow-runs")["value"] == 1
    # Per-view statistics add up the counts of every worker that served /slow.
    assert len({answer["pid"] for answer in answers}) == 1  # every body is the one stored
    views = counter_server.json("/stats")
    (slow,) = [counts for name, counts in views.items() if name.endswith(".slow")]
    assert slow == {"hits": 7, "misses": 1, "refused": 0}


@pytest.mark.parametrize(
    "lock_engine", [[], ["--lock-engine", "ipcsem"]], ids=["default", "ipcsem"]
)
def test_the_default_lock_engine_is_warned_about(
    start_uwsgi: Callable[..., Any], lock_engine: list[str]
) -> None:
    server = start_uwsgi(
        ["--master", "--processes", "2", "--die-on-term",
         "--http-socket", "127.0.0.1:{port}", "--cache2", REFERENCE,
         "--wsgi-file", "tests/apps/counter.py", *lock_engine],
        path="/value",
    )  # fmt: skip
    server.stop()
    warned = "lock-engine = ipcsem" in server.output
    assert warned == (not lock_engine), server.output[-3000:]
