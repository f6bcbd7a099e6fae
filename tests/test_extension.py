"""Registration, configuration and backend selection of the Flask extension."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_uwsgicache import BoundCache, CacheFullError, UWSGICache, contexts, extension
from flask_uwsgicache.backends.memory import MemoryBackend

MakeApp = Callable[..., Flask]


def test_the_extension_binds_to_an_app_directly(make_app: MakeApp) -> None:
    app = make_app()
    ext = UWSGICache(app)
    with app.app_context():
        assert ext.set("k", 1) is True
        assert ext.get("k") == 1
        assert isinstance(app.extensions["uwsgicache"], BoundCache)


def test_one_extension_serves_two_apps_with_their_own_config(make_app: MakeApp) -> None:
    ext = UWSGICache()
    first = make_app(UWSGICACHE_KEY_PREFIX="one:", UWSGICACHE_DEFAULT_TIMEOUT=10)
    second = make_app(UWSGICACHE_MEMORY="items=5,keysize=100", UWSGICACHE_SERIALIZER="json")
    ext.init_app(first)
    ext.init_app(second)
    one, two = first.extensions["uwsgicache"], second.extensions["uwsgicache"]
    assert one.backend is not two.backend
    assert (one.key_prefix, one.default_timeout) == ("one:", 10)
    assert two.backend.max_items == 4
    assert two.envelope.serializer.name == "json"
    with first.app_context():
        ext.set("k", "first")
    with second.app_context():
        assert ext.get("k") is None
        ext.set("k", "second")
    with first.app_context():
        assert ext.get("k") == "first"


def test_registering_an_app_twice_raises(make_app: MakeApp) -> None:
    app = make_app()
    ext = UWSGICache(app)
    with pytest.raises(RuntimeError, match="already has a UWSGICache"):
        ext.init_app(app)
    with pytest.raises(RuntimeError, match="already has a UWSGICache"):
        UWSGICache(app)


def test_use_outside_an_app_context_says_what_to_do() -> None:
    ext = UWSGICache()
    with pytest.raises(RuntimeError, match="init_app"):
        ext.get("k")


def test_outside_an_app_context_the_only_apps_cache_is_used(make_app: MakeApp) -> None:
    # Flask-Caching's behaviour: scripts and task workers with one app need no context.
    app = make_app(UWSGICACHE_BACKEND="memory")
    ext = UWSGICache(app)

    runs: list[int] = []

    @ext.memoize()
    def value(x: int) -> int:
        runs.append(x)
        return x

    assert ext.set("k", 1) and ext.get("k") == 1
    assert value(1) == value(1) == 1 and runs == [1]
    with app.app_context():
        assert ext.get("k") == 1
    # With a second app it cannot tell which: it says so.
    ext.init_app(make_app(UWSGICACHE_BACKEND="memory"))
    with pytest.raises(RuntimeError, match="serves 2 apps"):
        ext.get("k")
    with app.app_context():
        assert ext.get("k") == 1


def test_use_in_an_app_without_init_app_says_what_to_do(make_app: MakeApp) -> None:
    ext = UWSGICache()
    with make_app().app_context(), pytest.raises(RuntimeError, match="init_app"):
        ext.get("k")


def test_auto_picks_memory_outside_uwsgi_and_logs_it(
    make_app: MakeApp, log_lines: Callable[[], list[str]]
) -> None:
    app = make_app()
    UWSGICache(app)
    assert isinstance(app.extensions["uwsgicache"].backend, MemoryBackend)
    assert any("using the memory backend" in line for line in log_lines())


def test_the_uwsgi_backend_outside_uwsgi_fails_at_the_first_call(make_app: MakeApp) -> None:
    app = make_app(UWSGICACHE_BACKEND="uwsgi")
    ext = UWSGICache(app)
    with app.app_context(), pytest.raises(RuntimeError, match="UWSGICACHE_BACKEND"):
        ext.get("k")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"UWSGICACHE_BACKEND": "memcached"}, "UWSGICACHE_BACKEND"),
        ({"UWSGICACHE_SERIALIZER": "yaml"}, "UWSGICACHE_SERIALIZER"),
        ({"UWSGICACHE_DEFAULT_TIMEOUT": -1}, "UWSGICACHE_DEFAULT_TIMEOUT"),
        ({"UWSGICACHE_DEFAULT_TIMEOUT": "60"}, "UWSGICACHE_DEFAULT_TIMEOUT"),
        ({"UWSGICACHE_SIGN": True, "SECRET_KEY": None}, "SECRET_KEY"),
        ({"UWSGICACHE_MEMORY": "items=20,purge_lru=0"}, "purge_lru"),
        (
            {"UWSGICACHE_MEMORY": "items=20,keysize=30", "UWSGICACHE_KEY_PREFIX": "p" * 10},
            "PREFIX",
        ),
    ],
)
def test_bad_config_fails_at_init_app(
    make_app: MakeApp, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        UWSGICache(make_app(**config))


def test_signing_follows_the_secret_key(make_app: MakeApp) -> None:
    signed, unsigned, off = (
        make_app(),
        make_app(SECRET_KEY=None),
        make_app(UWSGICACHE_SIGN=False),
    )
    for app in (signed, unsigned, off):
        UWSGICache(app)
    assert signed.extensions["uwsgicache"].envelope.secret is not None
    assert unsigned.extensions["uwsgicache"].envelope.secret is None
    assert off.extensions["uwsgicache"].envelope.secret is None


@pytest.mark.parametrize("backend", ["uwsgi", "redis"])
def test_a_shared_backend_without_a_secret_key_is_an_error_unless_said_on_purpose(
    make_app: MakeApp, backend: str
) -> None:
    # Others can write to uWSGI's cache and to Redis: unsigned entries must be chosen.
    config = {"UWSGICACHE_BACKEND": backend, "UWSGICACHE_REDIS_URL": "redis://127.0.0.1:1"}
    with pytest.raises(ValueError, match="SECRET_KEY is not set.*UWSGICACHE_SIGN = False"):
        UWSGICache(make_app(SECRET_KEY=None, **config))
    app = make_app(SECRET_KEY=None, UWSGICACHE_SIGN=False, **config)
    UWSGICache(app)  # the control: said on purpose, it starts
    assert app.extensions["uwsgicache"].envelope.secret is None
    signed = make_app(**config)
    UWSGICache(signed)
    assert signed.extensions["uwsgicache"].envelope.secret is not None


def test_config_comes_from_prefixed_environment_variables(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLASK_UWSGICACHE_BACKEND", "memory")
    monkeypatch.setenv("FLASK_UWSGICACHE_DEFAULT_TIMEOUT", "60")
    monkeypatch.setenv("FLASK_UWSGICACHE_KEY_PREFIX", "env:")
    app = make_app(UWSGICACHE_BACKEND="uwsgi")
    app.config.from_prefixed_env()
    UWSGICache(app)
    bound = app.extensions["uwsgicache"]
    assert isinstance(bound.backend, MemoryBackend)
    assert (bound.default_timeout, bound.key_prefix) == (60, "env:")


def test_raise_errors_turns_refusals_into_exceptions(make_app: MakeApp) -> None:
    app = make_app(UWSGICACHE_RAISE_ERRORS=True, UWSGICACHE_MEMORY="items=2")
    ext = UWSGICache(app)
    with app.app_context():
        assert ext.set("a", 1)
        with pytest.raises(CacheFullError, match="items=2"):
            ext.set("b", 1)
        assert ext.get("b") is None and ext.get("a") == 1


class CountingDict(dict[str, Any]):
    reads = 0

    def __getitem__(self, key: str) -> Any:
        CountingDict.reads += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        CountingDict.reads += 1
        return super().get(key, default)


def test_get_looks_up_the_app_once_and_no_config(make_app: MakeApp) -> None:
    app = make_app()
    ext = UWSGICache(app)
    app.extensions = CountingDict(app.extensions)
    with app.app_context():
        ext.set("k", "v")
        app.config = CountingDict(app.config)  # type: ignore[assignment]
        CountingDict.reads = 0
        assert ext.get("k") == "v"
        assert CountingDict.reads == 1


@pytest.mark.parametrize("command", [["routes"], ["shell"]])
def test_the_flask_cli_works_for_an_app_configured_for_uwsgi(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "prodapp.py").write_text(
        textwrap.dedent(
            """
            from flask import Flask
            from flask_uwsgicache import UWSGICache

            app = Flask(__name__)
            app.config.update(UWSGICACHE_BACKEND="uwsgi", SECRET_KEY="x")
            cache = UWSGICache(app)

            @app.route("/hello")
            def hello():
                return cache.get("greeting", "hi")
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "prodapp", *command],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        input="print('shell ok')\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert ("/hello" if command == ["routes"] else "shell ok") in result.stdout


def test_json_refuses_what_it_cannot_encode(make_app: MakeApp) -> None:
    app = make_app(UWSGICACHE_SERIALIZER="json")
    ext = UWSGICache(app)
    with app.app_context():
        assert ext.set("nan", float("nan")) is False
        assert ext.set("set", {1, 2}) is False
        assert ext.set("ok", {"a": [1, 2.5, None]}) is True
        assert ext.get("ok") == {"a": [1, 2.5, None]}


def test_the_public_fallback_for_flasks_private_context_variable(
    make_app: MakeApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a Flask without flask.globals._cv_app gets (flask_uwsgicache/contexts.py).
    monkeypatch.setattr(extension, "app_context", contexts.PublicAppContext())
    app = make_app(UWSGICACHE_BACKEND="memory")
    cache = UWSGICache(app)
    assert contexts.PublicAppContext().get("none") == "none"
    with pytest.raises(RuntimeError, match="outside an application context"):
        UWSGICache().get("k")
    with app.app_context():
        assert cache.set("k", 1) and cache.get("k") == 1
        assert contexts.PublicAppContext().get().app is app


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1, True, "300", 2**63])
def test_a_bad_timeout_is_refused_in_the_config_and_by_the_decorators(
    make_app: MakeApp, timeout: Any
) -> None:
    app = make_app(UWSGICACHE_BACKEND="memory", UWSGICACHE_DEFAULT_TIMEOUT=timeout)
    with pytest.raises(ValueError, match="UWSGICACHE_DEFAULT_TIMEOUT is"):
        UWSGICache(app)
    ext = UWSGICache(make_app(UWSGICACHE_BACKEND="memory"))
    for decorator in (ext.cached, ext.memoize):
        with pytest.raises((TypeError, ValueError), match="timeout is"):
            decorator(timeout=timeout)
    # Control: a good one is taken.
    assert callable(ext.cached(timeout=60)) and callable(ext.memoize(timeout=0.5))
