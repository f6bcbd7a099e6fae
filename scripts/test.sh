#!/usr/bin/env bash
# Sets up .venv (uWSGI is compiled from source by pip) and runs every check:
# ruff (lint and format), mypy --strict, and pytest, which also runs the suite inside
# real uWSGI processes. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
# --no-cache-dir: never reuse a uWSGI wheel built before libpcre2-dev was installed
# (such a build silently lacks internal routing).
"$venv/bin/python" -m pip install -q --no-cache-dir -e '.[test,bench,docs]'
# A second uWSGI of the same version built without internal routing, for the test of
# edge=True on such a build (tests/test_edge.py). Built once, ~30 s.
if [ ! -x "$venv/uwsgi-no-routing/bin/uwsgi" ]; then
    version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("uwsgi"))')
    UWSGI_PROFILE_OVERRIDE="pcre=false;routing=false" "$venv/bin/python" -m pip install \
        -q --no-cache-dir --no-deps --target "$venv/uwsgi-no-routing" "uwsgi==$version"
fi
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/python" -m pytest "$@"
