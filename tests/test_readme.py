"""README.rst renders without errors and names the commands CI runs."""

from __future__ import annotations

from pathlib import Path

import docutils.core
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_valid_restructuredtext() -> None:
    text = (ROOT / "README.rst").read_text()
    docutils.core.publish_string(
        text, writer="null", settings_overrides={"report_level": 2, "halt_level": 2}
    )


@pytest.mark.parametrize(
    "page", sorted(path.name for path in (ROOT / "docs").glob("*.rst"))
)
def test_each_docs_page_is_valid_restructuredtext(page: str) -> None:
    text = (ROOT / "docs" / page).read_text()
    docutils.core.publish_string(
        text, writer="null", settings_overrides={"report_level": 2, "halt_level": 2}
    )


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.rst").read_text()
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
