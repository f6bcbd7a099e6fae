"""The Flask extension: ``UWSGICache(app)`` or ``UWSGICache()`` + ``init_app(app)``.

Each app gets its own :class:`~flask_uwsgicache.BoundCache`, built once from its
config and kept in ``app.extensions["uwsgicache"]``. The extension object holds no app:
its cache methods act on the current app's cache.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import Flask

from . import fastpath
from .appcache import BoundCache
from .backends import create_backend
from .cached import CachedMixin
from .cli import group
from .config import EXTENSION_KEY, resolve, shared_cookies, signing
from .contexts import app_context
from .edge import Edge, build_edge
from .envelope import Envelope, derive_secret
from .jinja import CacheExtension
from .logs import RateLimitedLog
from .memoize import MemoizeMixin
from .privacy import environ_names, personal_headers
from .serializers import get_serializer


def edge_of(config: Mapping[str, Any], backend: str, log: RateLimitedLog) -> Edge:
    """The app's edge, off (and why) where the backend cannot have one."""
    if backend == "null":
        return Edge({}, "the null backend stores nothing, at the edge neither", log)
    if backend == "tiered":
        # uWSGI's routing answers from the edge cache without Python: a delete made
        # on another machine, which reaches this one's copies through Redis, would
        # not reach it.
        return Edge(
            {},
            "with the tiered backend a page is kept where every machine's deletes reach "
            "it, and the edge cache is this machine's alone",
            log,
        )
    return build_edge(config, log)


def build_cache(config: Mapping[str, Any]) -> BoundCache:
    """A :class:`BoundCache` from settings made by :func:`~.config.resolve`."""
    timeout = config["UWSGICACHE_DEFAULT_TIMEOUT"]
    backend = create_backend(config)
    sign = signing(config, backend.shared, backend.name)
    secret_key = config.get("SECRET_KEY")
    envelope = Envelope(
        get_serializer(config["UWSGICACHE_SERIALIZER"]),
        (
            derive_secret(secret_key, f"{backend.secret_scope}:{backend.cache_name}")
            if sign and secret_key
            else None
        ),
        time.time,
        bare_ints=backend.native_counters,
    )
    log = RateLimitedLog()
    responses = config["UWSGICACHE_RESPONSES_NAME"]
    responses_backend = None
    if responses and responses != config["UWSGICACHE_NAME"] and backend.shared:
        # Only stores with names have a cache of their own for responses; in the
        # memory backend (one process) they share its store.
        responses_backend = create_backend(config, "UWSGICACHE_RESPONSES_NAME")
    cache = BoundCache(
        backend,
        envelope,
        key_prefix=str(config["UWSGICACHE_KEY_PREFIX"] or ""),
        default_timeout=timeout,
        raise_errors=bool(config["UWSGICACHE_RAISE_ERRORS"]),
        log=log,
        responses_backend=responses_backend,
        edge=edge_of(config, backend.name, log),
    )
    cache.settings = dict(config)
    cache.source_check = config["UWSGICACHE_SOURCE_CHECK"]
    cache.hash_method = config["UWSGICACHE_HASH_METHOD"] or hashlib.md5
    cache.shared_cookies = shared_cookies(config)
    cache.credentials = environ_names(
        personal_headers(config["UWSGICACHE_PERSONAL_HEADERS"])
    )
    return cache


P = ParamSpec("P")
R = TypeVar("R")


def _on_current_app(
    method: Callable[Concatenate[BoundCache, P], R],
) -> Callable[Concatenate[UWSGICache, P], R]:
    """``method`` of :class:`BoundCache`, called on the current app's cache."""

    def on_current_app(self: UWSGICache, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return method(self.cache, *args, **kwargs)

    # The method's name, docstring and signature, for help() and the API docs.
    functools.update_wrapper(on_current_app, method)
    on_current_app.__qualname__ = f"UWSGICache.{method.__name__}"
    return on_current_app


class UWSGICache(CachedMixin, MemoizeMixin):
    """A cache shared by every worker process of a uWSGI app.

    The methods below act on the current app's cache and have the semantics documented
    on :class:`~flask_uwsgicache.BoundCache`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        with_jinja2_ext: bool = True,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        #: The ``key_prefix`` (with ``%s``) of every ``cached`` view, for ``delete_edge``.
        self.path_key_prefixes: dict[str, None] = {}
        #: Settings every app of this extension gets over its own config.
        self.config = config
        # The cache used outside an app context: the app's, while there is only one.
        self._apps = 0
        self._only: BoundCache | None = None
        self.with_jinja2_ext = with_jinja2_ext
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, config: Mapping[str, Any] | None = None) -> None:
        """Read the app's settings and attach its cache.

        ``config`` (and the extension's own ``config``) override the app's config for
        this cache, as in Flask-Caching; Flask-Caching's ``CACHE_*`` keys are read when
        the ``UWSGICACHE_*`` one is not set (:mod:`flask_uwsgicache.config`). The
        resolved settings are also set in ``app.config`` where it has none.

        Raises ``RuntimeError`` if the app already has a uwsgicache, ``ValueError`` for
        bad config or, under uWSGI, a cache name uWSGI does not have.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"app {app.name!r} already has a UWSGICache: call init_app once per app, "
                f"and use app.extensions[{EXTENSION_KEY!r}] to reach it."
            )
        settings = resolve(app.config, self.config, config)
        cache = build_cache(settings)
        for key, value in settings.items():  # once it is built: a failure changes nothing
            if key.startswith("UWSGICACHE_"):
                app.config.setdefault(key, value)
        app.extensions[EXTENSION_KEY] = cache
        self._apps += 1
        self._only = cache if self._apps == 1 else None
        if self.with_jinja2_ext:
            app.jinja_env.add_extension(CacheExtension)
        fastpath.install(app)
        app.cli.add_command(group)

    @property
    def cache(self) -> BoundCache:
        """The current app's cache. Outside an app context, the cache of the one app
        this extension was given (as Flask-Caching does); ``RuntimeError`` when it
        serves several, or the current app has none."""
        # contexts.app_context, not the current_app proxy: this is the hot path.
        context = app_context.get(None)
        if context is None:
            if self._apps == 1 and self._only is not None:
                # As in Flask-Caching: with one app, scripts and workers need no context.
                return self._only
            several = f" and serves {self._apps} apps" if self._apps > 1 else ""
            raise RuntimeError(
                f"UWSGICache was used outside an application context{several}: call it "
                f"inside a request or 'with app.app_context():', after init_app(app)."
            )
        try:
            return context.app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError(
                f"The current app {context.app.name!r} has no UWSGICache: did you forget "
                f"to call init_app(app)?"
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        """See :meth:`BoundCache.get` (written out: it is the hot path)."""
        context = app_context.get(None)
        if context is not None:
            cache = context.app.extensions.get(EXTENSION_KEY)
            if cache is not None:
                return cache.get(key, default)
        return self.cache.get(key, default)  # raises the helpful RuntimeError

    def set(self, key: str, value: Any, timeout: float | None = None) -> bool:
        """See :meth:`BoundCache.set` (written out: it is the hot path, and the cache's
        own ``set`` may be the C one)."""
        context = app_context.get(None)
        if context is not None:
            cache = context.app.extensions.get(EXTENSION_KEY)
            if cache is not None:
                return cache.set(key, value, timeout)  # type: ignore[no-any-return]
        return self.cache.set(key, value, timeout)

    # The rest of the API, with BoundCache's signatures and docstrings.
    has = _on_current_app(BoundCache.has)
    get_many = _on_current_app(BoundCache.get_many)
    get_dict = _on_current_app(BoundCache.get_dict)
    add = _on_current_app(BoundCache.add)
    set_many = _on_current_app(BoundCache.set_many)
    delete = _on_current_app(BoundCache.delete)
    delete_many = _on_current_app(BoundCache.delete_many)
    unlink = _on_current_app(BoundCache.unlink)
    clear = _on_current_app(BoundCache.clear)
    touch = _on_current_app(BoundCache.touch)
    inc = _on_current_app(BoundCache.inc)
    dec = _on_current_app(BoundCache.dec)
    get_or_set = _on_current_app(BoundCache.get_or_set)
    stats = _on_current_app(BoundCache.stats)
