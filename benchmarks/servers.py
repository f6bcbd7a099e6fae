"""The servers and load generators the benchmark scripts share: uWSGI and redis-server on
loopback (each stopped by the pid it was started with), wrk or a bounded Python client."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_REQUESTS_PER_CLIENT = 1_000_000  # the Python client stops at this or its deadline


def uwsgi_binary() -> str:
    """The uwsgi next to this Python (the virtualenv's), else the one on PATH."""
    found = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which(
        "uwsgi"
    )
    if found is None:
        sys.exit("no uwsgi binary: pip install -e '.[bench]'")
    return found


def has_routing(binary: str) -> bool:
    """Whether ``binary`` has internal routing: only builds without it carry this line."""
    return b"no internal routing support" not in Path(binary).read_bytes()


def free_port() -> int:
    """A TCP port free on loopback at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> None:
    """Stop a server we started, by its pid: ``sig``, then SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass(frozen=True)
class Server:
    """A uWSGI instance we started: where it answers, and its master's pid."""

    url: str
    pid: int


@contextlib.contextmanager
def uwsgi_server(
    workers: int,
    options: Sequence[str],
    warm_paths: Sequence[str],
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """uWSGI serving ``benchmarks/app.py`` on a loopback port with ``workers`` workers
    and the extra ``options`` (and ``env``: ``FLASK_UWSGICACHE_*`` settings), yielded
    once every warm path answered (which also fills the caches); stopped with SIGINT by
    its master's pid."""
    port = free_port()
    process = subprocess.Popen(
        [uwsgi_binary(), "--home", sys.prefix, "--master", "--processes", str(workers),
         "--die-on-term", "--http-socket", f"127.0.0.1:{port}", *options,
         "--wsgi-file", str(HERE / "app.py"), "--disable-logging"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(process, url, warm_paths)
        yield Server(url, process.pid)
    finally:
        stop(process)


def wait_until_answering(
    process: subprocess.Popen[bytes], url: str, paths: Sequence[str]
) -> None:
    """Return once every path answers; exit the script after 30 s or if uWSGI died."""
    deadline = time.monotonic() + 30
    while True:
        try:
            for path in paths:
                urllib.request.urlopen(url + path, timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                stop(process)
                sys.exit("uWSGI did not start for the benchmarks")
            time.sleep(0.2)


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
        stop(process, signal.SIGTERM)


def load(url: str, seconds: float, connections: int = 16) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) of ``url`` under ``connections`` clients for
    ``seconds``: by wrk when installed, else by Python threads."""
    if shutil.which("wrk"):
        return load_wrk(url, seconds, connections)
    return load_python(url, seconds, connections)


def load_wrk(url: str, seconds: float, connections: int) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) from ``wrk -t2``."""
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{max(int(seconds), 1)}s", "--latency",
         url],
        capture_output=True, text=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", output)
    if rate is None or p99 is None:
        sys.exit(f"wrk printed no rate for {url}:\n{output}")
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rate.group(1)), float(p99.group(1)) * scale


def load_python(url: str, seconds: float, connections: int) -> tuple[float, float]:
    """The fallback without wrk: ``connections`` threads for ``seconds``."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if time.monotonic() >= deadline:
                return
            started = time.perf_counter()
            urllib.request.urlopen(url, timeout=10).read()
            with lock:
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return len(latencies) / seconds, latencies[int(len(latencies) * 0.99)] * 1000
