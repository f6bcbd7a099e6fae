"""Sphinx configuration: ``sphinx-build -W -b html docs <outdir>`` (see .ci/run)."""

from __future__ import annotations

import sys
from importlib.util import find_spec
from pathlib import Path

# autodoc imports the package from this checkout, not from an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

project = "flask-uwsgicache"
author = "flask-uwsgicache contributors"
copyright = "flask-uwsgicache contributors"

extensions = ["sphinx.ext.autodoc"]
# No intersphinx: the build must work offline.

root_doc = "index"
exclude_patterns = ["_build"]
html_theme = "furo" if find_spec("furo") else "alabaster"
html_title = "flask-uwsgicache"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
