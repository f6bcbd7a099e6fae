"""The one place that maps ``UWSGICACHE_BACKEND`` to a backend."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, NoReturn

from .. import cache2
from .base import Backend
from .cache2store import Cache2Store

logger = logging.getLogger("flask_uwsgicache")

BACKENDS = ("auto", "uwsgi", "memory", "redis", "tiered", "null")


def running_under_uwsgi() -> bool:
    """True inside a uWSGI process: the ``uwsgi`` module exists only there."""
    # uWSGI injects the module without a spec, so find_spec() cannot be used.
    try:
        import uwsgi  # noqa: F401
    except ImportError:
        return False
    return True


class UnavailableBackend(Cache2Store):
    """Stands in for the uwsgi backend outside uWSGI (``flask routes``, ``flask shell``).

    The app loads; the first cache call raises ``RuntimeError`` naming the fix.
    """

    name = "unavailable"

    def __init__(self, cache_name: str) -> None:
        self.use_options(cache2.parse(f"name={cache_name},items=2"))

    def _fail(self) -> NoReturn:
        raise RuntimeError(
            "UWSGICACHE_BACKEND is 'uwsgi' but this process does not run under uWSGI, "
            "so there is no uWSGI cache to use. Run the app with uwsgi, or set "
            "UWSGICACHE_BACKEND to 'auto' (uwsgi under uWSGI, memory otherwise) or "
            "'memory' (for example FLASK_UWSGICACHE_BACKEND=memory)."
        )

    def get(self, key: bytes) -> bytes | None:
        self._fail()

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        self._fail()

    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        self._fail()

    def delete(self, key: bytes) -> bool:
        self._fail()

    def keys(self) -> list[bytes]:
        self._fail()

    def clear(self) -> None:
        self._fail()

    def lock(self) -> AbstractContextManager[None]:
        self._fail()


def create_backend(config: Mapping[str, Any], setting: str = "UWSGICACHE_NAME") -> Backend:
    """The backend ``config`` (an app's config) asks for, for the cache named by
    ``setting``; ``ValueError`` if it is wrong."""
    choice = config["UWSGICACHE_BACKEND"]
    cache_name = config[setting]
    if choice not in BACKENDS:
        raise ValueError(
            f"UWSGICACHE_BACKEND is {choice!r}; use one of {', '.join(BACKENDS)}."
        )
    if choice in ("redis", "tiered"):
        try:
            from .redis import RedisBackend
        except ImportError:
            raise ValueError(
                f"UWSGICACHE_BACKEND is {choice!r} but redis-py is not installed: "
                f"pip install 'flask-uwsgicache[redis]'."
            ) from None
        remote = RedisBackend(config["UWSGICACHE_REDIS_URL"], cache_name, choice)
        if choice == "redis":
            return remote
        from .tiered import TieredBackend, local_table

        # The local copies: this instance's cache2 (shared by its workers), or the
        # memory stand-in outside uWSGI (one process).
        local_kind = "uwsgi" if running_under_uwsgi() else "memory"
        local = create_backend({**config, "UWSGICACHE_BACKEND": local_kind}, setting)
        table = local_table(f"{cache_name}:{remote.url}")
        return TieredBackend(remote, local, table)
    if choice == "null":
        from .null import NullBackend

        return NullBackend(cache_name)
    under_uwsgi = running_under_uwsgi()
    if choice == "uwsgi" or (choice == "auto" and under_uwsgi):
        if not under_uwsgi:
            return UnavailableBackend(cache_name)
        from .uwsgi import UWSGIBackend

        backend: Backend = UWSGIBackend(cache_name, setting)
    else:
        from .memory import MemoryBackend

        backend = MemoryBackend(config["UWSGICACHE_MEMORY"])
        if under_uwsgi:
            logger.warning(
                "flask-uwsgicache: UWSGICACHE_BACKEND is 'memory' under uWSGI: each "
                "worker process has its own cache, not shared. Use 'auto' or 'uwsgi'."
            )
    if choice == "auto":
        # Which backend "auto" chose matters when debugging a deployment: say it.
        logger.info(
            "flask-uwsgicache: using the %s backend (UWSGICACHE_BACKEND=auto)", backend.name
        )
    return backend
