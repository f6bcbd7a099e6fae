"""Where a benchmark's figures come from, and how they get into the docs.

Every script that measures writes what it printed into the docs page that shows it,
between two comment lines (``.. NAME: written by SCRIPT from here`` and ``... to
here``), with :func:`provenance` above it: the git revision, the versions and the
machine. Nothing between the markers is written by hand.
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DISTRIBUTIONS = ("Flask", "Flask-Caching", "cachelib", "redis")


def command_output(command: list[str]) -> str:
    """The first line ``command`` prints, or "unknown" if it cannot run."""
    if shutil.which(command[0]) is None and not Path(command[0]).exists():
        return "unknown"
    try:
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def git_revision() -> str:
    """The commit measured, and "+ uncommitted changes" when the tree differs from it
    (files under benchmarks/results/ are ignored by git and do not count)."""
    revision = command_output(["git", "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    ).stdout.strip()  # fmt: skip
    return revision + (" + uncommitted changes" if dirty else "")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(distribution: str) -> str:
    """The installed version of ``distribution``, or "not installed"."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def provenance(uwsgi: str) -> list[str]:
    """Lines (an RST field list) saying what was measured where: revision, versions,
    machine, date. ``uwsgi`` is the uWSGI binary the figures come from."""
    redis_server = command_output(["redis-server", "--version"]).split(" sha=")[0]
    versions = ", ".join(
        f"{name} {package_version(name)}" for name in DISTRIBUTIONS
    ).replace("redis ", "redis-py ")
    return [
        f":revision: {git_revision()}",
        f":date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f":machine: {os.cpu_count()} cores, {cpu_model()}",
        f":software: {platform.python_implementation()} {platform.python_version()}, "
        f"uWSGI {command_output([uwsgi, '--version'])}, {versions}, {redis_server}",
        f":command: ``{' '.join(['python', *display_argv()])}``",
    ]


def display_argv() -> list[str]:
    """The command line of this run, with the script's path relative to the repo."""
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = sys.argv[0]
    return [shown, *sys.argv[1:]]


def markers(name: str, script: str) -> tuple[str, str]:
    """The comment lines that open and close the generated block ``name``."""
    return (
        f".. {name}: written by {script} from here",
        f".. {name}: written by {script} to here",
    )


def write_between_markers(page: Path, name: str, script: str, block: str) -> None:
    """Replace what lies between the markers of ``name`` in ``page`` by ``block``,
    indented as the markers are (they may sit in a list item); exits if the page lacks
    them (the docs must say where generated text goes)."""
    start, end = markers(name, script)
    lines = page.read_text().splitlines()
    stripped = [line.strip() for line in lines]
    if stripped.count(start) != 1 or stripped.count(end) != 1:
        sys.exit(f"{page} needs exactly one pair of lines:\n{start}\n{end}")
    first, last = stripped.index(start), stripped.index(end)
    indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
    body = [indent + line if line else "" for line in block.strip().splitlines()]
    lines[first + 1 : last] = ["", *body, ""]
    page.write_text("\n".join(lines) + "\n")
    print(f"wrote the results into {page.relative_to(ROOT)}")


def text_block(text: str) -> str:
    """``text`` as an RST literal block, shown as the script printed it."""
    indented = "\n".join(f"    {line}" if line else "" for line in text.splitlines())
    return f".. code-block:: text\n\n{indented}\n"


def publish(
    head: list[str],
    text: str,
    name: str,
    script: str,
    quick: bool,
    page: str = "operations.rst",
) -> None:
    """Print ``text`` under its provenance ``head``; unless ``quick``, also write both
    into docs/``page`` between the markers of ``name``."""
    print("\n".join(head) + "\n\n" + text)
    if not quick:
        block = "\n".join(head) + "\n\n" + text_block(text)
        write_between_markers(ROOT / "docs" / page, name, script, block)
