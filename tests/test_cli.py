"""``flask uwsgicache config | doctor | stats``, through Flask's CLI runner."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from flask_uwsgicache import UWSGICache

Run = Callable[..., Result]


@pytest.fixture
def run(make_app: Callable[..., Flask]) -> Run:
    """``flask uwsgicache ARGS`` on an app with the extension (and ``config``)."""

    def run(*args: str, **config: Any) -> Result:
        app = make_app(**{"UWSGICACHE_BACKEND": "memory", **config})
        UWSGICache(app)
        return app.test_cli_runner().invoke(args=["uwsgicache", *args])

    return run


def ini(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "uwsgi.ini"
    path.write_text("[uwsgi]\n" + "\n".join(lines) + "\n")
    return str(path)


def test_config_shows_the_resolved_settings_and_backend(run: Run) -> None:
    result = run("config", UWSGICACHE_REDIS_URL="redis://user:hunter2@127.0.0.1:6379/0")
    assert result.exit_code == 0, result.output
    assert re.search(r'^  UWSGICACHE_BACKEND +"memory"$', result.output, re.M)
    assert re.search(r"^  signed +true$", result.output, re.M), result.output
    assert "max_value_size" in result.output
    assert "hunter2" not in result.output and "user:***@" in result.output


def test_the_reference_deployment_ini_is_healthy(run: Run) -> None:
    result = run("doctor", "--ini", "deploy/uwsgi.ini")
    assert result.exit_code == 0, result.output
    assert "usable items   19 (items=20; slot 0 is reserved)" in result.output
    assert "bitmap: uWSGI's cache_inc does not count here" in result.output
    assert "largest value  1310720 bytes" in result.output
    assert "lock engine    ipcsem" in result.output
    assert "responses      in 'views' (UWSGICACHE_RESPONSES_NAME)" in result.output
    assert result.output.endswith("0 error(s), 0 warning(s)\n")


def test_the_doctor_checks_the_responses_cache(run: Run, tmp_path: Path) -> None:
    app_line = "cache2 = name=c,items=20"
    shared = run("doctor", "--ini", ini(tmp_path, app_line), UWSGICACHE_NAME="c")
    assert "responses      in 'c' with the app's data" in shared.output
    assert shared.exit_code == 0, shared.output
    missing = run(
        "doctor", "--ini", ini(tmp_path, app_line), UWSGICACHE_NAME="c",
        UWSGICACHE_RESPONSES_NAME="pages",
    )  # fmt: skip
    assert missing.exit_code == 1
    assert "no cache2 line has name=pages (UWSGICACHE_RESPONSES_NAME)" in missing.output
    # The name may come from the ini's env line, as in deploy/uwsgi.ini.
    lines = (
        app_line,
        "cache2 = name=pages,items=50",
        "env = FLASK_UWSGICACHE_RESPONSES_NAME=pages",
    )
    no_lru = run("doctor", "--ini", ini(tmp_path, *lines), UWSGICACHE_NAME="c")
    assert "responses      in 'pages'" in no_lru.output
    assert no_lru.exit_code == 0, no_lru.output
    assert "'pages' has no purge_lru" in no_lru.output
    with_lru = [line.replace("items=50", "items=50,purge_lru=1") for line in lines]
    lru = run("doctor", "--ini", ini(tmp_path, *with_lru), UWSGICACHE_NAME="c")
    assert "no purge_lru" not in lru.output


def test_the_edge_ini_and_its_include(run: Run) -> None:
    edge = {"text/html; charset=utf-8": "edge", "application/json": "edge_json"}
    result = run("doctor", "--ini", "deploy/uwsgi-edge.ini", UWSGICACHE_EDGE=edge)
    assert result.exit_code == 0, result.output
    assert "cache 'edge_json'" in result.output and "cache 'default'" in result.output
    assert "'edge' serves text/html; charset=utf-8 (route at" in result.output
    assert result.output.endswith("0 error(s), 0 warning(s)\n")


# (ini lines, text in the output): uWSGI or the app would fail, exit 1
ERRORS = [
    (["cache2 = name=c,max-items=100"], "'max-items' is not a cache2 option (did you"),
    (["cache2 = name=c,items=10,blocksize=64k"], "blocksize=64k is read as 64"),
    (["cache2 = items=10"], "no name=: uWSGI will not start"),
    (["cache2 = name=c,items=1"], "items=1: uWSGI starts, but slot 0 is reserved"),
    (["cache2 = name=c,items=10,blocks=5,bitmap=1"],
     "blocks=5 is below items=10: uWSGI will not start"),
    (["cache2 = name=c, items=10"], "no items= (' items' is ignored): uWSGI will not"),
    (["cache2 = name=c,items=10,hash=rr"], "every read misses"),
    (["cache2 = name=c,items=10", "cache2 = name=c,items=20"], "two caches are named"),
    (["cache2 = name=c,items=10,keysize=70000"], "keysize=70000"),
    (["cache2 = name=c,items=10,hash=md5"], "hash=md5"),
    (["master = true"], "no cache2 line"),
    (["cache2 = name=c,items=10,blocksize=8"], "every write is refused"),
    (["cache2 = name=c,items=10", "route = ^/ cache:key=${REQUEST_URI},name=nope"],
     "reads cache 'nope', which does not exist"),
]  # fmt: skip
# (ini lines, text in the output): runs, but not as the line reads; exit 0
WARNINGS = [
    (["cache2 = name=c,items=10,purge_lru=0"], "purge_lru=0 turns purge_lru ON"),
    (["cache2 = name=c,items=10,purge_lru"], "'purge_lru' has no '='"),
    (["cache2 = name=c,items=10,block-size=64"],
     "'block-size' is not a cache2 option (did you mean blocksize?)"),
    (["cache2 = name=c,items=10,purge-lru=1"], "(did you mean purge_lru?)"),
    (["cache2 = name=c,items=10,blocksize=512"], "values over 484 bytes (signed)"),
    (["processes = 4", "cache2 = name=c,items=10"], "no master: uWSGI never frees"),
    (["master = true", "processes = 4", "cache2 = name=c,items=10"],
     "set lock-engine = ipcsem"),
    (["master = true", "processes = 4", "cache2 = name=c,items=10,lazy_expire=1"],
     "lazy_expire with several processes"),
    (["cache2 = name=c,items=10,bitmap=1,store=/tmp/x"], "bitmap with store="),
    (["cache2 = name=c,items=10,udp=127.0.0.1:3000"], "unauthenticated"),
    (["cache2 = name=edge,items=10", "cache2 = name=c,items=10"],
     "edge cache 'edge' (text/html; charset=utf-8) has no route line"),
]  # fmt: skip

# The edge's route lines before this package keyed by host and kept visitors with
# cookies or credentials out: each serves one visitor's page to another.
UNSAFE_EDGE_ROUTES = [
    "route-if = equal:${REQUEST_METHOD};GET cache:key=${REQUEST_URI},name=edge",
    "route = .* cache:key=${HTTPS}|${HTTP_HOST}${REQUEST_URI},name=edge",  # no guards
    "route-if-not = equal:${REQUEST_METHOD};GET last:\n"
    "route = .* cache:key=${HTTPS}|${HTTP_HOST}${REQUEST_URI},name=edge",  # one guard
]


@pytest.mark.parametrize("route", UNSAFE_EDGE_ROUTES)
def test_edge_routes_that_serve_the_wrong_visitor_are_errors(
    run: Run, tmp_path: Path, route: str
) -> None:
    lines = ["cache2 = name=edge,items=10", *route.split("\n"), "cache2 = name=c,items=10"]
    result = run("doctor", "--ini", ini(tmp_path, *lines), UWSGICACHE_NAME="c")
    assert result.exit_code == 1, result.output
    assert "serves edge cache 'edge' to requests the app would answer differently" in (
        result.output
    )


@pytest.mark.parametrize(
    ("lines", "expected", "exit_code"),
    [(*case, 1) for case in ERRORS] + [(*case, 0) for case in WARNINGS],
)
def test_errors_exit_1_with_the_fix_and_warnings_0(
    run: Run, tmp_path: Path, lines: list[str], expected: str, exit_code: int
) -> None:
    result = run("doctor", "--ini", ini(tmp_path, *lines), UWSGICACHE_NAME="c")
    assert result.exit_code == exit_code, result.output
    assert expected in result.output


def test_the_apps_cache_must_be_in_the_ini(run: Run, tmp_path: Path) -> None:
    result = run("doctor", "--ini", ini(tmp_path, "cache2 = name=other,items=10"))
    assert result.exit_code == 1
    assert "no cache2 line has name=default: init_app fails under uWSGI" in result.output


def test_doctor_without_an_ini_checks_the_app_config(run: Run) -> None:
    assert run("doctor").exit_code == 0
    # The uwsgi backend outside uWSGI loads without reading UWSGICACHE_MEMORY.
    result = run("doctor", UWSGICACHE_BACKEND="uwsgi", UWSGICACHE_MEMORY="items=9,lru=0")
    assert result.exit_code == 1
    assert "UWSGICACHE_MEMORY: cache2 line 'items=9,lru=0': lru=0 turns purge_lru ON" in (
        result.output
    )


@pytest.mark.launches_uwsgi
def test_stats_reads_a_running_uwsgi(run: Run, start_uwsgi: Callable[..., Any]) -> None:
    stats = os.path.join(tempfile.mkdtemp(), "stats.sock")
    pidfile = os.path.join(tempfile.gettempdir(), "flask-uwsgicache-cli-{port}.pid")
    server = start_uwsgi(
        ["--ini", "deploy/uwsgi.ini", "--venv", sys.prefix, "--pidfile", pidfile,
         "--stats", stats],
        {"UWSGICACHE_LOCAL": "1"},
    )  # fmt: skip
    for _ in range(3):
        server.json("/slow")
    result = run("stats", "--stats", stats, "--url", server.url + "/stats")
    assert result.exit_code == 0, result.output
    (row,) = [
        line.split() for line in result.output.splitlines() if line.startswith("default ")
    ]
    assert row[1].endswith("/19") and int(row[2]) >= 3  # items/usable, hits
    (view,) = [line.split() for line in result.output.splitlines() if "slow" in line]
    assert view[1:] == ["2", "1", "0"]  # hits, misses, refused
    missing = run("stats", "--stats", stats + ".nothing")
    assert missing.exit_code == 1 and "cannot read the stats" in missing.output


def test_includes_are_followed_and_loops_refused(run: Run, tmp_path: Path) -> None:
    (tmp_path / "base.ini").write_text("[uwsgi]\ncache2 = name=default,items=30\n")
    (tmp_path / "top.ini").write_text("[uwsgi]\nmaster = true\nini = %dbase.ini\n")
    result = run("doctor", "--ini", str(tmp_path / "top.ini"))
    assert "usable items   29" in result.output and "base.ini:2" in result.output
    (tmp_path / "base.ini").write_text("[uwsgi]\nini = %dtop.ini\n")
    looped = run("doctor", "--ini", str(tmp_path / "top.ini"))
    assert looped.exit_code == 1 and "includes itself" in looped.output
