"""Benchmarks, side by side, in one run: ``python benchmarks/run.py`` (docs/benchmarks.rst).

1. Per operation, inside a uWSGI worker (``benchmarks/ops.py`` under ``--pyrun``): the raw
   uWSGI API, this package, Flask-Caching's uWSGI backend and cachelib's.
2. End to end: uWSGI with 4 workers on loopback serving ``benchmarks/app.py``, loaded by
   ``wrk`` (bounded duration) when it is installed, else by a small Python client.

Every repetition measures everything once; ratios are taken inside a repetition and the
table shows their medians (the machine is shared and noisy: only ratios from one run
compare). Writes a table (RST), the raw numbers (JSON) and a bar chart of the ratios
(PNG, needs matplotlib: ``pip install -e '.[bench]'``) to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from flask_uwsgicache.edge import route_lines

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE2 = "name=bench,items=2000,blocksize=65536,keysize=250"
PATHS = {"hello": "/hello", "5 ms view": "/slow", "cached (ours)": "/cached",
         "cached (Flask-Caching)": "/flask-caching",
         "edge-cached (ours)": "/edge"}  # fmt: skip
# The edge cache and the route that serves it (flask_uwsgicache.edge.route_line).
EDGE_ARGS = ["--cache2", "name=edge,items=100,blocksize=65536,keysize=512"]
for _line in route_lines({"text/html; charset=utf-8": "edge"}).splitlines():
    _option, _value = _line.split(" = ", 1)
    EDGE_ARGS += ["--" + _option, _value]

# (label, numerator, denominator, limit): ratio = numerator / denominator must be <= limit
OPS_TARGETS = [
    ("get hit small, unsigned / raw get+pickle", "ours get small unsigned",
     "raw get+pickle small", 1.3),
    ("get hit small, signed / raw get+pickle", "ours get small signed",
     "raw get+pickle small", 1.6),
    ("ext.get small / Flask-Caching ext.get", "ours ext.get small signed",
     "flask-caching ext.get small", 0.5),
    ("get 10 KB str, unsigned / raw get", "ours get 10KB str unsigned",
     "raw get 10KB", 4.0),
    ("get 10 KB str, signed / raw get", "ours get 10KB str signed",
     "raw get 10KB", 4.0),
    ("set small, signed / raw update", "ours set small signed",
     "raw update bytes", None),
    ("cachelib get / raw get+pickle", "cachelib get small", "raw get+pickle small", None),
    ("floor: minimal Python get / raw get+pickle", "floor get+expiry+pickle small",
     "raw get+pickle small", None),
    ("redis: ext.get small / Flask-Caching's", "redis: ours ext.get small",
     "redis: flask-caching ext.get small", 1.0),
    ("redis: ext.set small / Flask-Caching's", "redis: ours ext.set small",
     "redis: flask-caching ext.set small", None),
]  # fmt: skip
# (label, numerator, denominator, limit): requests/s ratio must be >= limit
HTTP_TARGETS = [
    ("cached view (ours) / hello", "cached (ours)", "hello", 1.0),
    ("cached view (Flask-Caching) / hello", "cached (Flask-Caching)", "hello", None),
    ("cached (ours) / cached (Flask-Caching)", "cached (ours)",
     "cached (Flask-Caching)", None),
    ("5 ms view / hello", "5 ms view", "hello", None),
    ("edge-cached view / hello", "edge-cached (ours)", "hello", 2.5),
    ("edge-cached / cached (ours)", "edge-cached (ours)", "cached (ours)", None),
]  # fmt: skip


def uwsgi_binary() -> str:
    found = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which(
        "uwsgi"
    )
    if found is None:
        sys.exit("no uwsgi binary: pip install -e '.[bench]'")
    return found


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A redis-server on a free loopback port for the Redis rows (None without one);
    stopped by its pid afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        print("no redis-server (apt-get install redis-server): no Redis rows")
        yield None
        return
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    sys.exit("redis-server did not start for the benchmarks")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_ops(reps: int, number: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        out = Path(tmp) / "ops.json"
        env = {**os.environ, "BENCH_OUT": str(out), "BENCH_REPS": str(reps),
               "BENCH_NUMBER": str(number), "BENCH_REDIS_URL": redis_url or ""}  # fmt: skip
        result = subprocess.run(
            [uwsgi_binary(), "--home", sys.prefix, "--cache2", CACHE2,
             "--pyrun", str(HERE / "ops.py")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if result.returncode != 0 or not out.exists():
            sys.exit(
                "benchmarks/ops.py failed:\n"
                + result.stdout[-3000:]
                + result.stderr[-3000:]
            )
        ops: dict[str, list[float]] = json.loads(out.read_text())
        return ops


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_routing(binary: str) -> bool:
    """Whether ``binary`` has internal routing: only builds without it carry this line."""
    return b"no internal routing support" not in Path(binary).read_bytes()


def start_server(paths: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    binary = uwsgi_binary()
    edge = EDGE_ARGS if "edge-cached (ours)" in paths else []
    process = subprocess.Popen(
        [binary, "--home", sys.prefix, "--master", "--processes", "4",
         "--die-on-term", "--http-socket", f"127.0.0.1:{port}",
         *edge, "--cache2", CACHE2, "--lock-engine", "ipcsem",
         "--wsgi-file", str(HERE / "app.py"), "--disable-logging"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            for path in paths.values():  # also fills the caches
                urllib.request.urlopen(url + path, timeout=5).read()
            return process, url
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                sys.exit("uWSGI did not start for the end-to-end benchmarks")
            time.sleep(0.2)


def load_wrk(url: str, seconds: float) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) from wrk."""
    output = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{max(int(seconds), 1)}s", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rate, float(value) * scale


def load_python(url: str, seconds: float) -> tuple[float, float]:
    """The fallback without wrk: 8 threads for ``seconds``; (requests/s, p99 in ms)."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            urllib.request.urlopen(url, timeout=10).read()
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return len(latencies) / seconds, latencies[int(len(latencies) * 0.99)] * 1000


def run_http(reps: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    load = load_wrk if shutil.which("wrk") else load_python
    paths = dict(PATHS)
    if not has_routing(uwsgi_binary()):
        print("uWSGI has no internal routing (no PCRE at build): no edge row")
        del paths["edge-cached (ours)"]
    process, url = start_server(paths)
    results: dict[str, dict[str, list[float]]] = {
        name: {"rps": [], "p99_ms": []} for name in paths
    }
    try:
        for _ in range(reps):
            for name, path in paths.items():
                rate, p99 = load(url + path, seconds)
                results[name]["rps"].append(rate)
                results[name]["p99_ms"].append(p99)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    return results


def median_ratio(top: list[float], bottom: list[float]) -> float:
    """The median of the ratios taken inside each repetition."""
    return statistics.median(a / b for a, b in zip(top, bottom, strict=True))


def report(
    ops: dict[str, list[float]], http: dict[str, dict[str, list[float]]]
) -> tuple[str, list[tuple[str, float, float | None, bool]]]:
    lines = [f"Machine: {platform.node()}, {os.cpu_count()} cores, "
             f"{platform.python_implementation()} {platform.python_version()}, "
             f"{datetime.date.today().isoformat()}", ""]  # fmt: skip
    width = max(map(len, ops), default=10)
    lines += ["=" * width + " ==========", "operation".ljust(width) + "   ns/op",
              "=" * width + " =========="]  # fmt: skip
    lines += [
        f"{name.ljust(width)} {statistics.median(values):10.0f}"
        for name, values in ops.items()
    ]
    lines += ["=" * width + " ==========", ""]
    if http:
        lines += ["======================== ========== =========",
                  "view (4 workers)         requests/s  p99 (ms)",
                  "======================== ========== ========="]  # fmt: skip
        for name, values in http.items():
            lines.append(f"{name.ljust(24)} {statistics.median(values['rps']):10.0f} "
                         f"{statistics.median(values['p99_ms']):9.2f}")  # fmt: skip
        lines += ["======================== ========== =========", ""]
    ratios: list[tuple[str, float, float | None, bool]] = []
    for label, top, bottom, limit in OPS_TARGETS:
        if top in ops and bottom in ops:
            ratio = median_ratio(ops[top], ops[bottom])
            ratios.append((label, ratio, limit, limit is None or ratio <= limit))
    for label, top, bottom, limit in HTTP_TARGETS:
        if top in http and bottom in http:
            ratio = median_ratio(http[top]["rps"], http[bottom]["rps"])
            ratios.append((label, ratio, limit, limit is None or ratio >= limit))
    width = max(len(label) for label, *_ in ratios)
    rule = "=" * width + " ====== ======== ======"
    lines += [rule, "ratio".ljust(width) + "  value   target   met", rule]
    for label, ratio, limit, met in ratios:
        sign = "<=" if any(label == t[0] for t in OPS_TARGETS) else ">="
        target = f"{sign} {limit:.1f}" if limit is not None else "-"
        verdict = ("yes" if met else "**no**") if limit is not None else "-"
        lines.append(f"{label.ljust(width)} {ratio:6.2f} {target:>8} {verdict:>6}")
    lines += [rule]
    return "\n".join(lines) + "\n", ratios


def chart(ratios: list[tuple[str, float, float | None, bool]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')")
        return False
    labels = [label for label, *_ in ratios]
    values = [ratio for _, ratio, _, _ in ratios]
    colors = ["#4c72b0" if limit is None else ("#55a868" if met else "#c44e52")
              for _, _, limit, met in ratios]  # fmt: skip
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(ratios) + 1.2))
    axes.barh(labels, values, color=colors)
    for index, (_, ratio, limit, _) in enumerate(ratios):
        axes.text(ratio, index, f" {ratio:.2f}", va="center", fontsize=8)
        if limit is not None:
            axes.plot(
                [limit, limit], [index - 0.4, index + 0.4], color="black", linewidth=1
            )
    axes.invert_yaxis()
    axes.set_xlabel("ratio (median of per-repetition ratios); black tick = target")
    axes.set_title(f"flask-uwsgicache benchmarks, {datetime.date.today().isoformat()}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (at least 3)")
    parser.add_argument("--number", type=int, default=20000, help="calls per operation")
    parser.add_argument("--seconds", type=float, default=3.0, help="load per view")
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--no-http", action="store_true", help="skip end-to-end rows")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.number, args.seconds = 3, 500, 1.0
    args.reps = max(args.reps, 3)
    args.out.mkdir(parents=True, exist_ok=True)
    ops = run_ops(args.reps, args.number)
    http = {} if args.no_http else run_http(args.reps, args.seconds)
    table, ratios = report(ops, http)
    print(table)
    (args.out / "latest.rst").write_text(table)
    (args.out / "latest.json").write_text(json.dumps({"ops": ops, "http": http}, indent=1))
    if chart(ratios, args.out / "ratios.png"):
        print(f"chart: {args.out / 'ratios.png'}")


if __name__ == "__main__":
    main()
