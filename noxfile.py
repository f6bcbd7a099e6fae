"""The test suite on the lowest Flask this package supports, on Flask 3.0 and on the
latest.

``.venv/bin/nox`` runs them all; ``.ci/run`` runs ``lowest`` after the README's test
command, which tests the latest releases in ``.venv`` (``flask30`` adds little to the
two: Werkzeug 2.2 reads headers the way 3.0 does). Run ``bash scripts/test.sh``
first: these sessions use the uwsgi binaries it built in ``.venv`` (uWSGI embeds the
Python it was built with and runs each test with ``--home`` of the session's
virtualenv, so only the Python packages differ) instead of compiling uWSGI again.
"""

from __future__ import annotations

import os
from importlib.metadata import requires
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lowest", "flask30", "latest"]

ROOT = Path(__file__).resolve().parent
#: The oldest releases pyproject.toml accepts (``flask>=2.2``; Werkzeug 2.2 goes with it).
LOWEST = ["flask==2.2.5", "werkzeug==2.2.3"]


def _test_requirements() -> list[str]:
    """The test extra (as installed in .venv), without uwsgi: the binary comes from
    .venv."""
    found = []
    for requirement in requires("flask-uwsgicache") or ():
        name, _, marker = requirement.partition(";")
        if 'extra == "test"' in marker and not name.startswith("uwsgi"):
            found.append(name.strip())
    return found


def _suite(session: nox.Session, *pins: str) -> None:
    built = ROOT / ".venv" / "bin" / "uwsgi"
    if not built.exists():
        session.error(f"{built} is missing: run 'bash scripts/test.sh' first")
    session.install("--no-deps", "-e", ".")
    session.install(*_test_requirements(), *pins)
    session.run("python", "-m", "pip", "check")
    path = os.pathsep.join((session.bin, str(built.parent), os.environ.get("PATH", "")))
    session.run(
        "python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs,
        env={"PATH": path, "UWSGICACHE_NO_ROUTING_PREFIX": str(ROOT / ".venv")},
    )  # fmt: skip


@nox.session
def lowest(session: nox.Session) -> None:
    """The suite on Flask 2.2 and Werkzeug 2.2."""
    _suite(session, *LOWEST)


@nox.session
def flask30(session: nox.Session) -> None:
    """The suite on Flask 3.0 and Werkzeug 3.0 (whose headers differ from 3.1's)."""
    _suite(session, "flask==3.0.3", "werkzeug==3.0.6")


@nox.session
def latest(session: nox.Session) -> None:
    """The suite on the newest Flask and Werkzeug."""
    _suite(session, "--upgrade", "flask", "werkzeug")
