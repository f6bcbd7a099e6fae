"""What this package can do with a cache2 line: ``uwsgi --cache2 LINE --pyrun THIS``.

Run by ``tests/test_doctor_truth.py`` without ``--master``, so uWSGI exits with this
script's status, and the script prints ``PROBE`` and what it found: ``stores`` (0) when
a value was stored and read back, ``stores nothing`` (3) when the write was refused or
did not read back, ``unusable`` (5) when the app could not use the cache at all
(``init_app`` failed). An uncaught exception in a ``--pyrun`` script ends uWSGI with
status 0, so every failure is an explicit exit here. The cache name is
``UWSGICACHE_PROBE_NAME``.
"""

from __future__ import annotations

import os
import sys
import traceback

from flask import Flask

from flask_uwsgicache import BoundCache, UWSGICache

STORES, STORES_NOTHING, UNUSABLE = 0, 3, 5

app = Flask(__name__)
app.config.update(
    SECRET_KEY="probe",
    UWSGICACHE_BACKEND="uwsgi",
    UWSGICACHE_NAME=os.environ.get("UWSGICACHE_PROBE_NAME", "default"),
)
try:
    UWSGICache(app)
except Exception:
    traceback.print_exc()
    print("PROBE unusable", flush=True)
    sys.exit(UNUSABLE)
try:
    with app.app_context():
        cache: BoundCache = app.extensions["uwsgicache"]
        # One character: the smallest entry this package writes (a signed str).
        stored = cache.set("probe", "v") and cache.get("probe") == "v"
except BaseException:
    traceback.print_exc()
    stored = False
print(f"PROBE {'stores' if stored else 'stores nothing'}", flush=True)
sys.exit(STORES if stored else STORES_NOTHING)
