#!/usr/bin/env bash
# Sets up .venv and serves the example app under uWSGI with deploy/uwsgi.ini (the
# reference deployment's settings: 4 workers, its cache2 line) on http://127.0.0.1:5001/ , as the
# current user. Stop it with Ctrl-C. Extra arguments go to uwsgi.
# With a uWSGI built with internal routing (libpcre2-dev installed before pip built it)
# it uses deploy/uwsgi-edge.ini, which adds the edge caches and their route lines.
# On Redis instead of uWSGI's cache: FLASK_UWSGICACHE_BACKEND=redis (REDIS_URL defaults
# to redis://127.0.0.1:6379/0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
"$venv/bin/python" -m pip install -q --no-cache-dir -e '.[redis]' uwsgi
ini=deploy/uwsgi-edge.ini
# Only builds without routing carry this startup warning in the binary.
if grep -q "no internal routing support" "$venv/bin/uwsgi"; then
    echo "This uWSGI has no internal routing (no PCRE at build time): the edge is off." >&2
    ini=deploy/uwsgi.ini
fi
UWSGICACHE_LOCAL=1 exec "$venv/bin/uwsgi" --ini "$ini" --venv "$venv" "$@"
