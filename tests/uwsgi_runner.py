"""Runs pytest inside a uWSGI process: ``uwsgi --cache2 ... --pyrun tests/uwsgi_runner.py``.

The arguments for pytest come from ``UWSGICACHE_TEST_ARGS`` (space-separated). uWSGI
exits with this script's exit status as long as it runs without ``--master``.
"""

from __future__ import annotations

import os
import shlex
import sys

import pytest

args = shlex.split(os.environ.get("UWSGICACHE_TEST_ARGS", "tests/test_contract.py"))
sys.exit(int(pytest.main(["-p", "no:cacheprovider", "-q", *args])))
