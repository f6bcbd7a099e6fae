"""Entries planted through the uwsgi protocol (modifier1 111) are never trusted.

Any client that reaches a uwsgi-protocol socket can write the cache with a "simple
cache set" request, [111, size, 1] + key and value as a uwsgi var pair, with no
authentication (docs/uwsgi-cache2-facts.rst §11). With signing on, what it plants is
a miss and a log line, and a pickle planted that way never runs.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flask_uwsgicache.envelope import LEAD, TRAILER

pytestmark = pytest.mark.launches_uwsgi


def uwsgi_cache_command(path: str, command: int, body: bytes) -> None:
    """Send a modifier1 111 request (``command`` is modifier2) to a uwsgi socket."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(struct.pack("<BHB", 111, len(body), command) + body)
        sock.recv(16)  # uWSGI closes the connection when done


def plant(path: str, key: bytes, value: bytes) -> None:
    """Replace ``key``: "simple cache del" (2), then "simple cache set" (1), which only
    adds, like cache_set."""
    uwsgi_cache_command(path, 2, key)
    pair = struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
    uwsgi_cache_command(path, 1, pair)


def test_planted_entries_are_misses_and_planted_pickles_never_run(
    start_uwsgi: Callable[..., Any], tmp_path: Path
) -> None:
    sock = os.path.join(tempfile.mkdtemp(), "uwsgi.sock")
    marker = tmp_path / "pwned"
    server = start_uwsgi(
        ["--master", "--processes", "2", "--die-on-term",
         "--http-socket", "127.0.0.1:{port}", "--socket", sock,
         "--cache2", "name=default,items=100", "--wsgi-file", "tests/apps/counter.py"],
        path="/value",
    )  # fmt: skip
    evil = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    # A raw pickle, and one dressed in this package's trailer (unsigned), under live keys.
    dressed = evil + TRAILER.pack(0.0, 3, LEAD)
    for key in ("raw", "dressed"):
        assert server.json(f"/set/{key}?value=genuine")["stored"] is True
    plant(sock, b"raw", evil)
    plant(sock, b"dressed", dressed)
    time.sleep(0.2)
    for key in ("raw", "dressed"):
        answer = server.json(f"/get/{key}")
        assert answer["raw"] is True  # the planted bytes are in uWSGI's cache...
        assert answer["value"] is None  # ...and read as a miss
    assert not marker.exists()
    server.stop()
    # One line per kind per 10 s and worker: both reads may have been the same worker.
    assert "ignored the entry under b'" in server.output
