"""What survives worker recycling, a graceful reload and a full restart.

Recycling keeps everything (tests/test_e2e.py). A reload (SIGHUP) re-execs uWSGI, and
a restart starts a new one: both begin with an empty cache, unless its cache2 line has
``store=``, whose file keeps the entries (docs/uwsgi-cache2-facts.rst §9).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.launches_uwsgi


def serve(start_uwsgi: Callable[..., Any], line: str) -> Any:
    return start_uwsgi(
        ["--master", "--processes", "2", "--die-on-term",
         "--http-socket", "127.0.0.1:{port}", "--cache2", line,
         "--wsgi-file", "tests/apps/counter.py"],
        path="/value",
    )  # fmt: skip


def reload(server: Any) -> None:
    """SIGHUP the master and wait until a new generation of workers answers."""
    before = server.json("/value")["pid"]
    server.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            if server.json("/value")["pid"] != before:
                return
        except OSError:
            continue
    pytest.fail("uWSGI did not come back after SIGHUP")


@pytest.mark.parametrize("store", [False, True], ids=["memory only", "store="])
def test_what_survives_a_reload_and_a_restart(
    start_uwsgi: Callable[..., Any], tmp_path: Path, store: bool
) -> None:
    line = (
        "name=default,items=100"  # no bitmap with store= (docs/uwsgi-cache2-facts.rst §12)
    )
    if store:
        line += f",store={tmp_path / 'cache.store'}"
    server = serve(start_uwsgi, line)
    assert server.json("/set/kept?value=yes&timeout=0")["stored"] is True
    reload(server)
    assert server.json("/get/kept")["value"] == ("yes" if store else None)
    server.json("/set/kept?value=yes&timeout=0")
    server.stop()
    again = serve(start_uwsgi, line)
    assert again.json("/get/kept")["value"] == ("yes" if store else None)
