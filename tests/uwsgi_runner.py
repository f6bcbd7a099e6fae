"""Runs pytest inside a uWSGI process: ``uwsgi --cache2 ... --pyrun tests/uwsgi_runner.py``.

The arguments for pytest come from ``UWSGICACHE_TEST_ARGS`` (space-separated). uWSGI
exits with this script's exit status as long as it runs without ``--master`` — but an
*uncaught exception* in a ``--pyrun`` script ends uWSGI with status 0 (seen with
2.0.31), so every failure here becomes an explicit non-zero exit.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback

try:
    import pytest

    args = shlex.split(os.environ.get("UWSGICACHE_TEST_ARGS", "tests/test_contract.py"))
    status = int(pytest.main(["-p", "no:cacheprovider", "-q", *args]))
except BaseException:
    traceback.print_exc()
    status = 99
sys.exit(status)
