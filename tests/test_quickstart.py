"""README.rst's Quickstart, run as written: under ``flask run``'s app (the test client)
and under real uWSGI with the ini shown, four workers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart_blocks() -> dict[str, str]:
    """The code blocks of README's Quickstart section, by language."""
    readme = (ROOT / "README.rst").read_text()
    section = readme.split("Quickstart\n----------\n", 1)[1].split("\n----", 1)[0]
    blocks: dict[str, str] = {}
    for part in section.split(".. code-block:: ")[1:]:
        language, _, rest = part.partition("\n\n")
        lines = []
        for line in rest.splitlines():
            if line and not line.startswith("    "):
                break
            lines.append(line[4:])
        blocks[language.strip()] = "\n".join(lines).strip() + "\n"
    return blocks


@pytest.fixture
def myapp(tmp_path: Path) -> Path:
    """A directory with the Quickstart's myapp.py and myapp.ini, as pasted."""
    blocks = quickstart_blocks()
    assert set(blocks) == {"python", "ini"}
    (tmp_path / "myapp.py").write_text(blocks["python"])
    (tmp_path / "myapp.ini").write_text(blocks["ini"])
    return tmp_path


def test_the_quickstart_app_runs_under_flask(myapp: Path) -> None:
    # What `flask --app myapp run` loads, in a process of its own (a fresh import).
    script = (
        "import json, myapp\n"
        "client = myapp.create_app().test_client()\n"
        "print(json.dumps([client.get('/').get_json() for _ in range(3)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=myapp,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(myapp)},
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [answer["visits"] for answer in answers] == [1, 2, 3]
    assert len({json.dumps(answer["report"]) for answer in answers}) == 1  # cached


@pytest.mark.launches_uwsgi
def test_the_quickstart_ini_serves_it_with_four_workers(
    myapp: Path, start_uwsgi: Callable[..., Any]
) -> None:
    ini = myapp / "myapp.ini"
    text = ini.read_text()
    assert "http = 127.0.0.1:8000" in text
    # The ini as written, only on a free port (start_uwsgi passes it as
    # UWSGICACHE_HTTP); uWSGI runs from the app's directory.
    ini.write_text(text.replace("127.0.0.1:8000", "$(UWSGICACHE_HTTP)"))
    server = start_uwsgi(["--chdir", str(myapp), "--ini", str(ini)])
    answers: list[dict[str, Any]] = []

    def visit() -> None:
        for _ in range(6):
            with urllib.request.urlopen(server.url + "/", timeout=30) as response:
                answers.append(json.load(response))

    clients = [threading.Thread(target=visit) for _ in range(4)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(timeout=60)
    visits = sorted(answer["visits"] for answer in answers)
    # Shared and exact: every visit counted once (after start_uwsgi's own first one).
    assert visits == list(range(2, 26))
    assert len({answer["pid"] for answer in answers}) >= 2  # by several workers
    assert len({json.dumps(answer["report"]) for answer in answers}) == 1
    assert server.stop() == 0
    # Nothing the package warns about (the lock engine, a missing cache, ...).
    assert "flask-uwsgicache" not in server.output, server.output
