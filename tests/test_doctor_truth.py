"""The doctor's verdict on a cache2 line, checked against what the uWSGI binary does.

For each line the doctor says one of: uWSGI will not start; it starts but this package
stores nothing; it starts but the app cannot use the cache (``init_app`` fails); it
starts and stores. ``test_the_doctor_gives_each_line_its_verdict`` pins the verdicts
(in process); ``test_uwsgi_does_what_the_doctor_says`` runs ``uwsgi --ini`` on the same
ini, without ``--master`` (so the exit status is the probe's) and without any socket,
with ``tests/doctor_probe.py`` doing one ``set`` and one ``get`` through the package, and
checks that uWSGI did what the doctor said (docs/uwsgi-cache2-facts.rst §3, §13).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flask_uwsgicache.cli import doctor
from flask_uwsgicache.cli import report as said

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "tests" / "doctor_probe.py"
# tests/doctor_probe.py's exit statuses.
PROBE_STATUS = {"stores": 0, "stores nothing": 3, "unusable": 5}
WILL_NOT_START, STORES_NOTHING, UNUSABLE, STORES = (
    "will not start",
    "stores nothing",
    "unusable",
    "stores",
)

# (cache2 line, what uWSGI 2.0.31 does with it as the probe sees it)
LINES = [
    ("name=default,items=20,blocksize=65536,keysize=60,bitmap=1", STORES),
    ("name=default, items=20", WILL_NOT_START),  # the option " items" is unknown
    ("name=default ,items=20", UNUSABLE),  # the cache is named "default "
    ("name=default,items= 20", STORES),  # strtoul skips leading spaces
    ("name=default,items=1", STORES_NOTHING),  # slot 0 is reserved
    ("name=default,items=2", STORES),
    ("name=default,items=0", WILL_NOT_START),
    ("name=default,items=abc", WILL_NOT_START),
    ("name=default,items=20,items=abc", WILL_NOT_START),  # the last one counts
    ("name=default,max_items=20", STORES),
    ("name=default,max-items=20", WILL_NOT_START),  # unknown: no items at all
    ("name=default,items=20,max-items=5", STORES),
    ("name=default,items=20,blocksize=abc", WILL_NOT_START),
    ("name=default,items=20,blocksize=0", WILL_NOT_START),
    ("name=default,items=20,blocksize=64k", STORES),  # 64 bytes: small values fit
    ("name=default,items=20,blocksize=28", STORES_NOTHING),  # a signed entry is 29+
    ("name=default,items=20,blocksize=29", STORES),
    ("name=default,items=4,blocksize=8,blocks=40,bitmap=1", STORES),
    ("name=default,items=20,block-size=64", STORES),  # ignored: 65536
    ("name=default,items=20,purge_lru=0", STORES),  # LRU on
    ("name=default,items=20,purge-lru=1", STORES),  # ignored
    ("name=default,items=20,purge_lru", STORES),  # bare word, ignored
    ("name=default,items=20,colour=blue", STORES),  # unknown, ignored
    ("default,items=20", WILL_NOT_START),  # a bare word, no name
    ("items=20", WILL_NOT_START),
    ("name=,items=20", UNUSABLE),  # a cache named ""
    ("name=default,items=20,keysize=65535", STORES),
    ("name=default,items=20,keysize=65536", WILL_NOT_START),
    ("name=default,items=20,keysize=0", WILL_NOT_START),
    ("name=default,items=20,blocks=5", WILL_NOT_START),
    ("name=default,items=20,blocks=0", WILL_NOT_START),
    ("name=default,items=20,hash=murmur2", STORES),
    ("name=default,items=20,hash=md5", WILL_NOT_START),
    ("name=default,items=20,hash=rr", STORES_NOTHING),  # a new bucket every time
    ("name=default,items=20,hashsize=0", WILL_NOT_START),
    ("name=default,items=20,hashsize=1", STORES),
]


def write_ini(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "uwsgi.ini"
    path.write_text(f"[uwsgi]\ncache2 = {line}\n")
    return path


def verdict(ini: Path) -> tuple[str, str]:
    """The doctor's verdict on the app's cache ``default`` served with ``ini``, and the
    line it says uWSGI logs when it will not start."""
    report = doctor.check({"UWSGICACHE_NAME": "default"}, str(ini))
    (cache,) = [section for section in report.sections if section.outcome]
    (app,) = [section for section in report.sections if section.title == "this app"]
    if cache.outcome == said.WILL_NOT_START:
        (label, text), *_ = [fact for fact in cache.facts if fact[0] == "uWSGI"]
        return WILL_NOT_START, text.split("'")[1]
    if any(level == said.ERROR for level, _text in app.problems):
        return UNUSABLE, ""
    if cache.outcome == said.STORES_NOTHING:
        return STORES_NOTHING, ""
    assert cache.outcome == said.STARTS
    return STORES, ""


@pytest.mark.parametrize(("line", "expected"), LINES)
def test_the_doctor_gives_each_line_its_verdict(
    tmp_path: Path, line: str, expected: str
) -> None:
    assert verdict(write_ini(tmp_path, line))[0] == expected


@pytest.mark.launches_uwsgi
@pytest.mark.parametrize(("line", "expected"), LINES)
def test_uwsgi_does_what_the_doctor_says(
    uwsgi_binary: str, tmp_path: Path, line: str, expected: str
) -> None:
    ini = write_ini(tmp_path, line)
    said, log = verdict(ini)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "UWSGICACHE_PROBE_NAME": "default"}
    result = subprocess.run(
        [uwsgi_binary, "--home", sys.prefix, "--ini", str(ini), "--pyrun", str(PROBE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = result.stdout + result.stderr
    if said == WILL_NOT_START:
        assert result.returncode != 0 and "PROBE" not in output, output
        assert log in output, output
    else:
        # The probe ran and ended uWSGI with its status (0 after an uncaught error).
        assert f"PROBE {said}" in output, output
        assert result.returncode == PROBE_STATUS[said], output
