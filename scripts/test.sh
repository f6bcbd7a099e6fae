#!/usr/bin/env bash
# Sets up .venv (uWSGI is compiled from source by pip) and runs every check:
# ruff (lint and format), mypy --strict, and pytest, which also runs the suite inside
# real uWSGI processes. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# --no-cache-dir: never reuse a uWSGI wheel built before libpcre2-dev was installed
# (such a build silently lacks internal routing).
"$venv/bin/python" -m pip install -q --no-cache-dir -e '.[test,bench]'
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/python" -m pytest "$@"
