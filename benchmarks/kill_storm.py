"""SIGKILLs of random uWSGI workers under a write load, with each cache lock engine:
does anything hang? ``python benchmarks/kill_storm.py``.

uWSGI serves ``benchmarks/app.py`` with 4 workers on loopback. Four client threads
alternate writes under the cache lock (``set`` of one of 10 keys) and an exact counter
(``inc``), each request with a 10 s timeout; meanwhile a worker seen answering is
SIGKILLed every 0.2 s, ``--kills`` times (bounded by a deadline too). A request that
takes 10 s or more counts as hung: a cache lock left held by a dead worker would hold
every later request. After the storm and uWSGI's respawn pause, 20 counter requests
must answer within 5 s. The full run writes its table into docs/operations.rst between
its marker comments; ``--quick`` only prints.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import threading
import time
import urllib.request
from dataclasses import dataclass, field

from provenance import provenance, publish
from report import simple_table
from servers import Server, uwsgi_binary, uwsgi_server

CACHE2 = "name=bench,items=2000,blocksize=65536,keysize=250"
ENGINES = {"pthread (default)": [], "ipcsem": ["--lock-engine", "ipcsem"]}
CLIENTS = 4
REQUESTS_PER_CLIENT = 20_000
HUNG_AFTER = 10.0  # seconds


@dataclass
class Storm:
    """What one storm did and what the clients saw."""

    kills: int = 0
    answers: int = 0
    failed: int = 0
    hung: int = 0
    answered_after: bool = False
    workers_seen: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(server: Server, number: int, storm: Storm, stop: threading.Event) -> None:
    """Up to REQUESTS_PER_CLIENT requests until ``stop``: a write, then a count."""
    for request in range(REQUESTS_PER_CLIENT):
        if stop.is_set():
            return
        path = f"/write/{number * 10 + request % 10}" if request % 2 else "/counter"
        started = time.monotonic()
        try:
            with urllib.request.urlopen(server.url + path, timeout=HUNG_AFTER) as answer:
                body = answer.read()
            with storm.lock:
                storm.answers += 1
                if path.startswith("/write"):
                    storm.workers_seen.add(int(json.loads(body)["pid"]))
        except (OSError, ValueError):
            with storm.lock:
                if time.monotonic() - started >= HUNG_AFTER:
                    storm.hung += 1
                else:
                    storm.failed += 1


def kill_workers(server: Server, storm: Storm, kills: int) -> None:
    """SIGKILL a live worker seen answering every 0.2 s, ``kills`` times at most,
    within a deadline; never the master."""
    deadline = time.monotonic() + kills * 0.2 * 3 + 30
    while storm.kills < kills and time.monotonic() < deadline:
        time.sleep(0.2)
        with storm.lock:
            alive = [
                pid
                for pid in storm.workers_seen
                if pid != server.pid and os.path.exists(f"/proc/{pid}")
            ]
        if alive:
            os.kill(random.choice(alive), signal.SIGKILL)
            storm.kills += 1


def answers_after(server: Server) -> bool:
    """Whether 20 counter requests answer within 5 s, after the respawn pause."""
    time.sleep(3)
    started = time.monotonic()
    try:
        for _ in range(20):
            urllib.request.urlopen(server.url + "/counter", timeout=5).read()
    except OSError:
        return False
    return time.monotonic() - started < 5


def storm(options: list[str], kills: int) -> Storm:
    """One storm on a fresh uWSGI with ``options``."""
    found = Storm()
    stop = threading.Event()
    with uwsgi_server(4, ["--cache2", CACHE2, *options], ["/counter"]) as server:
        threads = [
            threading.Thread(target=client, args=(server, number, found, stop))
            for number in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        kill_workers(server, found, kills)
        stop.set()
        for thread in threads:
            thread.join(timeout=HUNG_AFTER + 30)
        found.answered_after = answers_after(server)
    return found


def table(storms: dict[str, Storm]) -> str:
    """One row per engine."""
    rows = [
        [engine, str(found.kills), str(found.answers), str(found.failed), str(found.hung),
         "yes" if found.answered_after else "**no**"]
        for engine, found in storms.items()
    ]  # fmt: skip
    header = ["lock engine (4 workers)", "SIGKILLs", "answers", "failed",
              f"hung (>= {HUNG_AFTER:g} s)", "answers after"]  # fmt: skip
    return "\n".join(simple_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=150, help="SIGKILLs per engine")
    parser.add_argument("--quick", action="store_true", help="10 kills; docs untouched")
    args = parser.parse_args()
    head = provenance(uwsgi_binary())  # the tree as measured, before anything is written
    if args.quick:
        args.kills = 10
    storms = {engine: storm(options, args.kills) for engine, options in ENGINES.items()}
    publish(head, table(storms), "kill-storm", "benchmarks/kill_storm.py", args.quick)


if __name__ == "__main__":
    main()
