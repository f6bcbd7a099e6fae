"""What ``lock-engine = ipcsem`` costs: requests/s with uWSGI's default cache lock (a
process-shared pthread rwlock) and with SysV semaphores, ``python
benchmarks/lock_engine.py``.

uWSGI serves ``benchmarks/app.py`` with 4 workers on loopback under ``wrk -t2 -c16``:
a cached view's hits (a cache read per request), an exact counter (``inc``: a write
under the lock per request) and "hello" (no cache call). Each repetition starts one
server per engine, one after the other, and loads every view for ``--seconds``; the
ratio is taken inside a repetition. The full run writes its table into
docs/operations.rst between its marker comments; ``--quick`` only prints.
"""

from __future__ import annotations

import argparse
import statistics

from provenance import provenance, publish
from report import simple_table
from servers import load, uwsgi_binary, uwsgi_server

CACHE2 = "name=bench,items=2000,blocksize=65536,keysize=250"
ENGINES = {"pthread (default)": [], "ipcsem": ["--lock-engine", "ipcsem"]}
VIEWS = {"cached view hit": "/cached", "exact counter": "/counter",
         "hello (no cache call)": "/hello"}  # fmt: skip
Results = dict[str, dict[str, list[float]]]  # engine -> view -> requests/s per rep


def measure(reps: int, seconds: float) -> Results:
    """Requests/s of every view under every engine, ``reps`` times."""
    results: Results = {engine: {view: [] for view in VIEWS} for engine in ENGINES}
    for _ in range(reps):
        for engine, options in ENGINES.items():
            server_options = ["--cache2", CACHE2, *options]
            with uwsgi_server(4, server_options, list(VIEWS.values())) as server:
                for view, path in VIEWS.items():
                    results[engine][view].append(load(server.url + path, seconds)[0])
    return results


def table(results: Results, seconds: float) -> str:
    """Median requests/s per view and engine, and the median per-repetition ratio."""
    default, ipcsem = ENGINES
    rows = []
    for view in VIEWS:
        before, after = results[default][view], results[ipcsem][view]
        ratio = statistics.median(a / b for a, b in zip(after, before, strict=True))
        rows.append([view, f"{statistics.median(before):.0f}",
                     f"{statistics.median(after):.0f}", f"{ratio:.2f}"])  # fmt: skip
    reps = len(results[default]["hello (no cache call)"])
    header = [f"4 workers, wrk -c16, {seconds:g} s x {reps}", "pthread req/s",
              "ipcsem req/s", "ipcsem / pthread"]  # fmt: skip
    return "\n".join(simple_table(header, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions")
    parser.add_argument("--seconds", type=float, default=4.0, help="load per view")
    parser.add_argument("--quick", action="store_true", help="seconds; docs untouched")
    args = parser.parse_args()
    head = provenance(uwsgi_binary())  # the tree as measured, before anything is written
    if args.quick:
        args.reps, args.seconds = 1, 1.0
    text = table(measure(max(args.reps, 1), args.seconds), args.seconds)
    publish(head, text, "lock-engine", "benchmarks/lock_engine.py", args.quick)


if __name__ == "__main__":
    main()
