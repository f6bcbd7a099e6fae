"""Fixtures shared by the suite.

The contract suite runs on every backend this process can reach: ``memory`` and
``redis`` in a plain pytest run, ``uwsgi`` when pytest itself runs inside uWSGI
(``tests/uwsgi_runner.py``, started by ``tests/test_uwsgi.py``). Redis is the server at
``UWSGICACHE_TEST_REDIS_URL`` (``.ci/run`` starts one), or one started here from
``redis-server`` on a free loopback port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from flask import Flask

from flask_uwsgicache import BoundCache, UWSGICache
from flask_uwsgicache import speedups as speedups_module
from flask_uwsgicache.backends import running_under_uwsgi
from flask_uwsgicache.backends.memory import MemoryBackend
from flask_uwsgicache.envelope import Envelope
from flask_uwsgicache.responses import MAGIC, VARY_MAGIC

STORED_MAGICS = (MAGIC, VARY_MAGIC)

IN_UWSGI = running_under_uwsgi()
ROOT = Path(__file__).resolve().parent.parent
# The reference deployment's cache2 line (deploy/uwsgi.ini), and the memory
# stand-in's mirror of it.
REFERENCE_LINE = "name=default,items=20,blocksize=65536,keysize=60,bitmap=1"


class FakeClock:
    """A settable wall clock for the memory backend and the envelope."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def backend_cases() -> list[tuple[str, str]]:
    """``(backend, memory line)`` pairs: each memory line on memory, then the rest."""
    if IN_UWSGI:
        return [("uwsgi", "")]
    return [("memory", line) for line in memory_lines()] + [("redis", ""), ("tiered", "")]


def memory_lines() -> list[str]:
    return [
        "items=1000",
        REFERENCE_LINE.replace("name=default,", ""),
        "items=50,blocksize=4096,purge_lru=1",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the backends a test cannot apply to (``bounded``: Redis has no item
    limit), rather than collecting and skipping them on every run."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("backend_case") if callspec is not None else None
        unbounded = case is not None and case[0] in ("redis", "tiered")
        if unbounded and item.get_closest_marker("bounded") is not None:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(
    params=backend_cases(), ids=["-".join(filter(None, c)) for c in backend_cases()]
)
def backend_case(request: pytest.FixtureRequest) -> tuple[str, str]:
    name, line = request.param
    return str(name), str(line)


@pytest.fixture
def backend_name(backend_case: tuple[str, str]) -> str:
    return backend_case[0]


@pytest.fixture
def memory_line(backend_case: tuple[str, str]) -> str:
    return backend_case[1]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def new_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test secret", TESTING=True)
    app.config.update(config)
    return app


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """A factory of bare apps (no extension yet), config given as keywords. At the
    test's end the backends of those apps let go of their connections (a socket left
    to the garbage collector is a ResourceWarning in whichever test it falls)."""
    made: list[Flask] = []

    def make(**config: object) -> Flask:
        app = new_app(**config)
        made.append(app)
        return app

    yield make
    for app in made:
        bound = app.extensions.get("uwsgicache")
        if isinstance(bound, BoundCache):
            bound.backend.close()


#: The implementations of get and set (and of the envelope's fast paths): the C
#: speedups and the Python methods. A module runs on both with
#: ``pytest.mark.parametrize("implementation", ["c", "python"], indirect=True)``.
IMPLEMENTATIONS = ["c", "python"]


def built_speedups() -> Any:
    """The C speedups, configured; skips without them locally, fails under CI (where
    the package is installed with a compiler: the C path must be built and tested)."""
    built = speedups_module.load()
    if built is None:
        reason = (
            "UWSGICACHE_NO_SPEEDUPS is set"
            if os.environ.get("UWSGICACHE_NO_SPEEDUPS", "") not in ("", "0")
            else "the C speedups are not built (pip install -e . with a C compiler)"
        )
        needs(reason)
    return built


@pytest.fixture
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which get and set the caches built in the test use: ``"c"`` or ``"python"``
    when parametrized (indirect), else the package's own choice."""
    name = getattr(request, "param", None)
    if name is None:
        return "python" if speedups_module.built is None else "c"
    monkeypatch.setattr(speedups_module, "built", built_speedups() if name == "c" else None)
    return str(name)


class Codec:
    """The envelope's encode and decode, in one implementation."""

    def __init__(self, name: str) -> None:
        self.name = name
        speedups = built_speedups() if name == "c" else None
        self._encode = Envelope.encode if speedups is None else speedups.encode
        self._decode = Envelope.decode if speedups is None else speedups.decode

    def encode(
        self, envelope: Envelope, key: bytes, value: Any, expires_at: float
    ) -> bytes:
        entry: bytes = self._encode(envelope, key, value, expires_at)
        return entry

    def decode(self, envelope: Envelope, key: bytes, entry: bytes) -> Any:
        return self._decode(envelope, key, entry)


@pytest.fixture
def speedups() -> Any:
    """The C speedups module (skips locally without it, fails under CI)."""
    return built_speedups()


@pytest.fixture(params=IMPLEMENTATIONS)
def codec(request: pytest.FixtureRequest) -> Codec:
    """``Envelope.encode`` and ``decode``, in C (the speedups) and in Python."""
    return Codec(request.param)


@pytest.fixture
def app(
    request: pytest.FixtureRequest,
    backend_name: str,
    memory_line: str,
    clock: FakeClock,
    implementation: str,
) -> Iterator[Flask]:
    """An app with the extension on the backend under test, over an empty cache."""
    config: dict[str, object] = {"UWSGICACHE_BACKEND": backend_name}
    if backend_name == "uwsgi":
        config["UWSGICACHE_NAME"] = os.environ.get("UWSGICACHE_TEST_CACHE", "default")
    elif backend_name in ("redis", "tiered"):
        config["UWSGICACHE_REDIS_URL"] = request.getfixturevalue("redis_server").url
        config["UWSGICACHE_NAME"] = "contract"
    else:
        config["UWSGICACHE_MEMORY"] = memory_line
    app = new_app(**config)
    UWSGICache(app)
    bound: BoundCache = app.extensions["uwsgicache"]
    assert bound.describe()["speedups"] is (implementation == "c")
    if isinstance(bound.backend, MemoryBackend):
        bound.envelope.clock = clock
        bound.backend.clock = clock
    bound.backend.clear()
    if backend_name == "tiered":
        wait_until_local_copies_serve(bound)
    yield app
    bound.backend.clear()
    bound.backend.close()


def wait_until_local_copies_serve(cache: BoundCache) -> None:
    """Wait until the tiered backend's listener is in sync (a read starts it), so the
    test reads local copies, not only Redis."""
    deadline = time.monotonic() + 5
    while not cache.describe()["local_copies"]:
        assert time.monotonic() < deadline, "the tiered cache's listener did not start"
        cache.get("a key that starts the listener")
        time.sleep(0.01)


@pytest.fixture
def cache(app: Flask) -> BoundCache:
    """The app's bound cache (pytest-flask has pushed a request context)."""
    bound: BoundCache = app.extensions["uwsgicache"]
    return bound


@pytest.fixture
def stored_responses(cache: BoundCache) -> Callable[[], list[bytes]]:
    """What cached views have stored (responses and Vary markers), in any order."""

    def stored() -> list[bytes]:
        space = cache.responses
        found = []
        for key in space.own_keys():
            entry = cache.backend.get(key)
            value = cache.envelope.decode(key, entry) if entry is not None else None
            # Not the generations kept next to them (flask_uwsgicache.generations).
            if isinstance(value, bytes) and value.startswith(STORED_MAGICS):
                found.append(value)
        return found

    return stored


@pytest.fixture
def advance(cache: BoundCache, clock: FakeClock) -> Callable[[float], None]:
    """Let ``seconds`` pass: on the fake clock for memory, really for uWSGI."""

    def advance(seconds: float) -> None:
        if isinstance(cache.backend, MemoryBackend):
            clock.now += seconds
        else:
            time.sleep(seconds)

    return advance


@pytest.fixture
def log_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The messages logged on the ``flask_uwsgicache`` logger so far."""
    caplog.set_level(logging.INFO, logger="flask_uwsgicache")

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "flask_uwsgicache"]

    return lines


@pytest.fixture
def uwsgi_binary() -> str:
    """The uwsgi binary next to this Python; skips locally, fails under CI=true."""
    found = shutil.which("uwsgi", path=str(Path(sys.executable).parent)) or shutil.which(
        "uwsgi"
    )
    if found is None:
        needs("the uwsgi binary is not installed (pip install '.[test]')")
    assert found is not None
    return found


def needs(message: str) -> None:
    """Skip for a missing server or binary; fail where it must be there: under
    ``.ci/run``, which sets ``UWSGICACHE_REQUIRE_SERVERS=1`` itself, or ``CI=true``."""
    if (
        os.environ.get("UWSGICACHE_REQUIRE_SERVERS") == "1"
        or os.environ.get("CI") == "true"
    ):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def uwsgi_without_routing() -> str:
    """A uwsgi built without internal routing, as scripts/test.sh builds it (in this
    virtualenv, or in the one ``UWSGICACHE_NO_ROUTING_PREFIX`` names: noxfile.py)."""
    prefix = os.environ.get("UWSGICACHE_NO_ROUTING_PREFIX", sys.prefix)
    found = Path(prefix, "uwsgi-no-routing", "bin", "uwsgi")
    if not found.exists():
        needs(f"{found} is missing: scripts/test.sh builds it")
    return str(found)


@dataclasses.dataclass
class RedisServer:
    """A redis-server on loopback that this session started (``process``) or found."""

    url: str
    port: int
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        """Stop it by its pid (SIGTERM: redis-server exits at once without saving)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def start(self) -> None:
        """Start it (again) on its port; returns when it answers."""
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--pidfile", os.path.join(tempfile.gettempdir(),
             f"flask-uwsgicache-redis-{self.port}.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)


def children(pid: int) -> list[int]:
    """The pids of the child processes of ``pid`` (Linux' /proc; none elsewhere)."""
    try:
        return [
            int(child)
            for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except OSError:
        return []


@pytest.fixture
def redis_binary() -> str:
    """The redis-server binary (it runs a Sentinel too, with --sentinel)."""
    found = shutil.which("redis-server")
    if found is None:
        needs("redis-server is not installed (Debian: apt-get install redis-server)")
    assert found is not None
    return found


def start_redis() -> RedisServer:
    """A new redis-server on a free loopback port (skips without the binary)."""
    if shutil.which("redis-server") is None:
        needs("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    server = RedisServer(f"redis://127.0.0.1:{port}/0", port)
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """The Redis of the contract suite: ``UWSGICACHE_TEST_REDIS_URL`` or our own."""
    url = os.environ.get("UWSGICACHE_TEST_REDIS_URL")
    if url:
        import redis

        try:
            with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
                client.ping()
        except redis.RedisError as error:
            needs(f"UWSGICACHE_TEST_REDIS_URL={url} does not answer: {error}")
        yield RedisServer(url, 0)
        return
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server for this test alone, which it may stop and start again."""
    server = start_redis()
    yield server
    server.stop()


@dataclasses.dataclass
class Server:
    """A running uWSGI instance on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    output: str = ""

    def json(self, path: str, method: str = "GET", body: object = None) -> dict[str, Any]:
        """The JSON answer to ``method path`` (with ``body`` sent as JSON)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.load(response)
        return answer

    def text(self, path: str) -> str:
        """The body of ``GET path``, as text."""
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            body: bytes = response.read()
        return body.decode()

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        """Stop it with ``sig`` (SIGINT: uWSGI reloads on SIGTERM); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=min(3.0, timeout))
        if self.process.poll() is None:
            # A master that was sleeping off "worker respawning too fast" when the
            # signal came respawns that worker after killing the others, then waits
            # for it for ever (uWSGI 2.0.31; tests/test_e2e.py recycles workers): the
            # workers left get the signal themselves.
            for child in children(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGINT)
            try:
                self.process.wait(timeout=max(0.0, timeout - 3.0))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self.log.closed:
            self.log.seek(0)
            self.output = self.log.read().decode(errors="replace")
            self.log.close()
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start_uwsgi(uwsgi_binary: str) -> Iterator[Callable[..., Server]]:
    """Start uWSGI (``binary``) with ``args`` (and ``env``), wait until ``path``
    answers; stopped by pid after the test. The address is a free loopback port, passed
    as ``UWSGICACHE_HTTP`` (for deploy/uwsgi.ini) and as ``{port}`` in ``args``."""
    servers: list[Server] = []

    def start(
        args: list[str],
        env: dict[str, str] | None = None,
        path: str = "/",
        binary: str = uwsgi_binary,
    ) -> Server:
        port = free_port()
        address = f"127.0.0.1:{port}"
        # Output goes to a file, not a pipe: a pipe nobody reads fills up under load
        # and blocks uWSGI's workers on their next log line.
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [binary, "--home", sys.prefix, *(arg.format(port=port) for arg in args)],
            cwd=ROOT,
            env={**os.environ, "UWSGICACHE_HTTP": address, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(f"http://{address}", process, log)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(server.url + path, timeout=2).read()
                return server
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    server.stop()
                    pytest.fail("uWSGI did not start:\n" + server.output[-4000:])
                time.sleep(0.1)

    yield start
    for server in servers:
        server.stop()
