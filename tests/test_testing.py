"""The pytest plugin users get (flask_uwsgicache.testing), run on a user's project."""

from __future__ import annotations

import pytest

CONFTEST = """
import pytest
from flask import Flask
from flask_uwsgicache import UWSGICache

cache = UWSGICache()


@cache.cached(timeout=60)
def page():
    return "page"


@pytest.fixture
def app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "user secret"
    cache.init_app(app)
    app.add_url_rule("/page", view_func=page)
    return app
"""

TESTS = """
import pytest
from conftest import page


def test_views_hit_miss_and_expire(client, uwsgicache):
    with uwsgicache.expect_miss(page):
        assert client.get("/page").text == "page"
    with uwsgicache.expect_hit(page, times=2):
        client.get("/page")
        client.get("/page")
    uwsgicache.advance(61)
    with uwsgicache.expect_miss(page):
        client.get("/page")


@pytest.mark.uwsgicache("name=default,items=3,blocksize=100")
def test_the_limits_of_the_line(uwsgicache):
    cache = uwsgicache.cache
    assert cache.set("big", "x" * 200) is False
    assert cache.set("a", 1) and cache.set("b", 2)
    assert cache.set("c", 3) is False
    uwsgicache.assert_hit("a", 1)
    uwsgicache.assert_miss("c")


def test_from_the_ini(uwsgicache):
    options = uwsgicache.cache.backend.options
    assert (options.items, options.keysize, options.bitmap) == (20, 60, True)


def test_a_failing_expectation_says_what_happened(client, uwsgicache):
    with uwsgicache.expect_hit(page):
        client.get("/page")
"""

INI = """[uwsgi]
master = true
cache2 = name=default,items=20,blocksize=65536,keysize=60,bitmap=1
"""


def test_the_plugin_on_a_users_project(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=TESTS)
    pytester.makefile(".ini", uwsgi=INI)
    pytester.makeini("[pytest]\nuwsgicache_ini = uwsgi.ini\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*expected 1 hit(s) and 0 miss(es) of conftest.page*"])
