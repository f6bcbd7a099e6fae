"""README.rst renders without errors and names the commands CI runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import docutils.core
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_valid_restructuredtext() -> None:
    text = (ROOT / "README.rst").read_text()
    docutils.core.publish_string(
        text, writer="null", settings_overrides={"report_level": 2, "halt_level": 2}
    )


def test_the_docs_build_without_a_warning(tmp_path: Path) -> None:
    """docs/ as Sphinx builds it with -W (as .ci/run does): every page, the autodoc of
    the public names, the README parts the docs include."""
    import importlib.util

    from conftest import needs

    if importlib.util.find_spec("sphinx") is None:
        needs("Sphinx is not installed: pip install -e '.[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", "docs", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "api.html").read_text().count("get_or_set") >= 1


def test_every_docs_page_is_in_the_table_of_contents() -> None:
    index = (ROOT / "docs" / "index.rst").read_text()
    pages = {path.stem for path in (ROOT / "docs").glob("*.rst")} - {"index"}
    assert {page for page in pages if f"\n   {page}\n" not in index} == set()


def the_two_commands() -> list[str]:
    """The commands of README's "The two commands" block, comments left out."""
    readme = (ROOT / "README.rst").read_text()
    section = readme.split("The two commands\n", 1)[1]
    block = section.split(".. code-block:: sh\n\n", 1)[1].split("\n\n", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines()]


def test_ci_runs_the_readme_test_command() -> None:
    run, test = the_two_commands()
    assert (run, test) == ("bash scripts/run-example.sh", "bash scripts/test.sh")
    for command in (run, test):  # the scripts exist and parse
        subprocess.run(["bash", "-n", command.split()[1]], cwd=ROOT, check=True)
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # .ci/run runs the test command itself (not in a comment, not changed), after it
    # has made a missing server a failure.
    assert test in ci
    assert ci.index("export UWSGICACHE_REQUIRE_SERVERS=1") < ci.index(test)
    subprocess.run(["bash", "-n", ".ci/run"], cwd=ROOT, check=True)


def test_a_missing_server_fails_where_servers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conftest import needs

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("UWSGICACHE_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        needs("no redis-server")  # a developer's machine: skipped
    monkeypatch.setenv("UWSGICACHE_REQUIRE_SERVERS", "1")  # what .ci/run sets
    with pytest.raises(pytest.fail.Exception, match="no redis-server"):
        needs("no redis-server")
