"""Benchmarks, side by side, in one run: ``python benchmarks/run.py`` (docs/benchmarks.rst).

1. Per operation, inside a uWSGI worker (``benchmarks/ops.py`` under ``--pyrun``): the raw
   uWSGI API, this package (signed and unsigned), Flask-Caching's uWSGI backend and
   cachelib's; on a redis-server on loopback, both Redis backends.
2. Growth (``benchmarks/growth.py``): get, set, a cached view, ``clear()``, ``stats()``
   and ``delete_edge`` with 1 000, 10 000 and 100 000 items in the store.
3. End to end: uWSGI on loopback serving ``benchmarks/app.py``, loaded by ``wrk``
   (bounded duration) when it is installed, else by a small Python client: every view
   with 4 workers, then three of them with 1, 2, 4 and 8 workers; then hello and the
   cached view on each backend (uwsgi, redis, tiered) with 4 workers.

Every repetition measures everything once; ratios are taken inside a repetition and the
table shows their medians (the machine is shared and noisy: only ratios from one run
compare). The full run (no ``--quick``, no ``--out``) writes the tables it prints into
docs/benchmarks.rst (between its marker comments, with the revision, versions and
machine) and the chart into docs/_static/benchmarks.png; the raw numbers always go to
``--out`` (benchmarks/results/, ignored by git, by default).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from chart import chart
from provenance import provenance, text_block, write_between_markers
from report import Backends, Growth, Http, Ops, Scaling, backends_report, report
from servers import has_routing, load, redis_server, uwsgi_binary, uwsgi_server

from flask_uwsgicache.edge import route_lines

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS_PAGE = ROOT / "docs" / "benchmarks.rst"
DOCS_CHART = ROOT / "docs" / "_static" / "benchmarks.png"
TIERED_PAGE = ROOT / "docs" / "tiered.rst"
CACHE2 = "name=bench,items=2000,blocksize=65536,keysize=250"
PATHS = {"hello": "/hello", "5 ms view": "/slow", "cached (ours)": "/cached",
         "cached (Flask-Caching)": "/flask-caching",
         "edge-cached (ours)": "/edge"}  # fmt: skip
SCALING_VIEWS = ["hello", "cached (Flask-Caching)", "cached (ours)"]


def edge_options() -> list[str]:
    """The edge cache and the route lines that serve it (flask_uwsgicache.edge)."""
    options = ["--cache2", "name=edge,items=100,blocksize=65536,keysize=512"]
    for line in route_lines({"text/html; charset=utf-8": "edge"}).splitlines():
        option, value = line.split(" = ", 1)
        options += ["--" + option, value]
    return options


def run_pyrun(script: str, cache2: str, env: dict[str, str]) -> Any:
    """Run ``benchmarks/<script>`` in a uWSGI worker with one cache2 line; its JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        result = subprocess.run(
            [uwsgi_binary(), "--home", sys.prefix, "--cache2", cache2,
             "--pyrun", str(HERE / script)],
            cwd=ROOT, env={**os.environ, **env, "BENCH_OUT": str(out)},
            capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        if result.returncode != 0 or not out.exists():
            sys.exit(
                f"benchmarks/{script} failed:\n"
                + result.stdout[-3000:]
                + result.stderr[-3000:]
            )
        return json.loads(out.read_text())


def run_ops(reps: int, number: int) -> Ops:
    """ns per call of every operation of benchmarks/ops.py, per repetition."""
    with redis_server() as redis_url:
        env = {"BENCH_REPS": str(reps), "BENCH_NUMBER": str(number),
               "BENCH_REDIS_URL": redis_url or ""}  # fmt: skip
        ops: Ops = run_pyrun("ops.py", CACHE2, env)
        return ops


def run_growth(sizes: list[int], number: int, slow_reps: int) -> Growth:
    """benchmarks/growth.py at ``sizes`` items, in a cache2 sized for the largest."""
    cache2 = f"name=growth,items={max(sizes) * 11 // 10 + 1},blocksize=512,keysize=128"
    env = {"BENCH_SIZES": ",".join(map(str, sizes)), "BENCH_NUMBER": str(number),
           "BENCH_SLOW_REPS": str(slow_reps)}  # fmt: skip
    growth: Growth = run_pyrun("growth.py", cache2, env)
    return growth


def view_paths() -> dict[str, str]:
    """The views to load: all of PATHS, the edge only where uWSGI can route."""
    paths = dict(PATHS)
    if not has_routing(uwsgi_binary()):
        print("uWSGI has no internal routing (no PCRE at build): no edge row")
        del paths["edge-cached (ours)"]
    return paths


def run_http(reps: int, seconds: float) -> Http:
    """Requests/s and p99 of every view with 4 workers, each view once a repetition."""
    paths = view_paths()
    results: Http = {name: {"rps": [], "p99_ms": []} for name in paths}
    options = [*edge_options(), "--cache2", CACHE2, "--lock-engine", "ipcsem"]
    if "edge-cached (ours)" not in paths:
        options = ["--cache2", CACHE2, "--lock-engine", "ipcsem"]
    with uwsgi_server(4, options, list(paths.values())) as server:
        for _ in range(reps):
            for name, path in paths.items():
                rate, p99 = load(server.url + path, seconds)
                results[name]["rps"].append(rate)
                results[name]["p99_ms"].append(p99)
    return results


def run_backends(reps: int, seconds: float) -> Backends:
    """Requests/s of hello and the cached view with 4 workers on each backend: uWSGI's
    cache, Redis, and the tiered one (local copies in front of that Redis)."""
    results: Backends = {}
    paths = {name: PATHS[name] for name in ("hello", "cached (ours)")}
    with redis_server() as redis_url:
        if redis_url is None:
            return results
        for backend in ("uwsgi", "redis", "tiered"):
            env = {"FLASK_UWSGICACHE_BACKEND": backend,
                   "FLASK_UWSGICACHE_REDIS_URL": redis_url}  # fmt: skip
            options = ["--cache2", CACHE2, "--lock-engine", "ipcsem", "--enable-threads"]
            by_view: dict[str, list[float]] = {name: [] for name in paths}
            with uwsgi_server(4, options, list(paths.values()), env) as server:
                for _ in range(reps):
                    for name, path in paths.items():
                        by_view[name].append(load(server.url + path, seconds)[0])
            results[backend] = by_view
    return results


def run_scaling(worker_counts: list[int], reps: int, seconds: float) -> Scaling:
    """Requests/s of hello and the two cached views at each number of workers."""
    results: Scaling = {}
    paths = {name: PATHS[name] for name in SCALING_VIEWS}
    for workers in worker_counts:
        options = ["--cache2", CACHE2, "--lock-engine", "ipcsem"]
        by_view: dict[str, list[float]] = {name: [] for name in paths}
        with uwsgi_server(workers, options, list(paths.values())) as server:
            for _ in range(reps):
                for name, path in paths.items():
                    by_view[name].append(load(server.url + path, seconds)[0])
        results[str(workers)] = by_view
    return results


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (at least 3)")
    parser.add_argument("--number", type=int, default=20000, help="calls per operation")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per view")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="write here only (the docs are left alone)")  # fmt: skip
    parser.add_argument("--no-http", action="store_true", help="skip end-to-end rows")
    args = parser.parse_args()
    args.reps = max(args.reps, 3)
    args.sizes, args.workers, args.growth_number = (
        [1000, 10_000, 100_000],
        [1, 2, 4, 8],
        2000,
    )
    args.scaling_seconds = 2.0
    if args.quick:
        args.reps, args.number, args.seconds = 3, 500, 1.0
        args.sizes, args.workers, args.growth_number = [100, 1000], [1, 2], 200
        args.scaling_seconds = 1.0
    args.to_docs = not args.quick and args.out is None
    if args.out is None:
        args.out = HERE / "results"
    return args


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    head = provenance(uwsgi_binary())  # the tree as measured, before anything is written
    ops = run_ops(args.reps, args.number)
    growth = run_growth(args.sizes, args.growth_number, 1 if args.quick else 3)
    http: Http = {} if args.no_http else run_http(args.reps, args.seconds)
    scaling: Scaling = (
        {} if args.no_http else run_scaling(args.workers, args.reps, args.scaling_seconds)
    )
    backends: Backends = (
        {} if args.no_http else run_backends(1 if args.quick else args.reps, args.seconds)
    )
    table = report(ops, http, scaling, growth, backends)
    print("\n".join(head) + "\n\n" + table)
    raw = {"ops": ops, "growth": growth, "http": http, "scaling": scaling,
           "backends": backends}  # fmt: skip
    (args.out / "latest.json").write_text(json.dumps(raw, indent=1))
    (args.out / "latest.rst").write_text("\n".join(head) + "\n\n" + table)
    title = f"flask-uwsgicache benchmarks, {datetime.date.today().isoformat()}"
    chart_path = DOCS_CHART if args.to_docs else args.out / "benchmarks.png"
    if chart(ops, http, growth, chart_path, title):
        print(f"chart: {chart_path}")
    if args.to_docs:
        block = "\n".join(head) + "\n\n" + text_block(table)
        write_between_markers(DOCS_PAGE, "results", "benchmarks/run.py", block)
        block = "\n".join(head) + "\n\n" + text_block(backends_report(ops, backends))
        write_between_markers(TIERED_PAGE, "backends", "benchmarks/run.py", block)


if __name__ == "__main__":
    main()
