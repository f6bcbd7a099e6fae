#!/usr/bin/env bash
# Sets up .venv and serves the example app under uWSGI with deploy/uwsgi.ini (the
# article's settings: 4 workers, its cache2 line) on http://127.0.0.1:5001/ , as the
# current user. Stop it with Ctrl-C. Extra arguments go to uwsgi.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$venv/bin/python" -m pip install -q --no-cache-dir -e . uwsgi
UWSGICACHE_LOCAL=1 exec "$venv/bin/uwsgi" --ini deploy/uwsgi.ini --venv "$venv" "$@"
