#!/usr/bin/env bash
# Sets up .venv and serves the example app under uWSGI (4 workers, the article's cache2
# line) on http://127.0.0.1:5001/ . Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$venv/bin/python" -m pip install -q --no-cache-dir -e . uwsgi
exec "$venv/bin/uwsgi" --ini deploy/local.ini --home "$venv" "$@"
