"""The Flask extension: ``UWSGICache(app)`` or ``UWSGICache()`` + ``init_app(app)``.

Each app gets its own :class:`~flask_uwsgicache.cache.BoundCache`, built once from its
config and kept in ``app.extensions["uwsgicache"]``. The extension object holds no app:
its cache methods act on the current app's cache.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask
from flask.globals import _cv_app

from .backends import create_backend
from .cache import BoundCache
from .envelope import Envelope, derive_secret
from .jinja import CacheExtension
from .memoize import delete_memoized, delete_memoized_verhash, memoize
from .serializers import get_serializer
from .views import cached

EXTENSION_KEY = "uwsgicache"

DEFAULTS: dict[str, Any] = {
    "UWSGICACHE_BACKEND": "auto",
    "UWSGICACHE_NAME": "default",
    "UWSGICACHE_DEFAULT_TIMEOUT": 300,
    "UWSGICACHE_KEY_PREFIX": "",
    "UWSGICACHE_SERIALIZER": "pickle",
    "UWSGICACHE_SIGN": None,
    "UWSGICACHE_RAISE_ERRORS": False,
    "UWSGICACHE_MEMORY": "items=1000",
    "UWSGICACHE_REDIS_URL": None,
}


def build_cache(config: Mapping[str, Any]) -> BoundCache:
    """A :class:`BoundCache` from an app config with the ``UWSGICACHE_*`` keys set."""
    sign = config["UWSGICACHE_SIGN"]
    secret_key = config.get("SECRET_KEY")
    if sign is None:
        sign = bool(secret_key)
    if sign and not secret_key:
        raise ValueError(
            "UWSGICACHE_SIGN is on but SECRET_KEY is not set: set SECRET_KEY (entries are "
            "signed with a key derived from it) or turn UWSGICACHE_SIGN off."
        )
    timeout = config["UWSGICACHE_DEFAULT_TIMEOUT"]
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
        raise ValueError(
            f"UWSGICACHE_DEFAULT_TIMEOUT is {timeout!r}; set it to a number of seconds "
            f"(0 for never)."
        )
    envelope = Envelope(
        get_serializer(config["UWSGICACHE_SERIALIZER"]),
        derive_secret(secret_key) if sign and secret_key else None,
        time.time,
    )
    return BoundCache(
        create_backend(config),
        envelope,
        key_prefix=str(config["UWSGICACHE_KEY_PREFIX"] or ""),
        default_timeout=timeout,
        raise_errors=bool(config["UWSGICACHE_RAISE_ERRORS"]),
    )


class UWSGICache:
    """A cache shared by every worker process of a uWSGI app.

    The methods below act on the current app's cache and have the semantics documented
    on :class:`~flask_uwsgicache.cache.BoundCache`.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the app's ``UWSGICACHE_*`` config and attach its cache.

        Raises ``RuntimeError`` if the app already has a uwsgicache, ``ValueError`` for
        bad config or, under uWSGI, a cache name uWSGI does not have.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                f"app {app.name!r} already has a UWSGICache: call init_app once per app, "
                f"and use app.extensions[{EXTENSION_KEY!r}] to reach it."
            )
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        app.extensions[EXTENSION_KEY] = build_cache(app.config)
        app.jinja_env.add_extension(CacheExtension)

    @property
    def cache(self) -> BoundCache:
        """The current app's cache; ``RuntimeError`` outside an initialised app."""
        # The context variable behind current_app: the proxy costs ~1 µs per call.
        context = _cv_app.get(None)
        if context is None:
            raise RuntimeError(
                "UWSGICache was used outside an application context: call it inside a "
                "request or 'with app.app_context():', after init_app(app)."
            )
        try:
            return context.app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError(
                f"The current app {context.app.name!r} has no UWSGICache: did you forget "
                f"to call init_app(app)?"
            ) from None

    def get(self, key: str, default: Any = None) -> Any:
        return self.cache.get(key, default)

    def has(self, key: str) -> bool:
        return self.cache.has(key)

    def get_many(self, *keys: str) -> list[Any]:
        return self.cache.get_many(*keys)

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return self.cache.get_dict(*keys)

    def set(self, key: str, value: Any, timeout: float | None = None) -> bool:
        return self.cache.set(key, value, timeout)

    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        return self.cache.add(key, value, timeout)

    def set_many(
        self, mapping: Mapping[str, Any], timeout: float | None = None
    ) -> list[str]:
        return self.cache.set_many(mapping, timeout)

    def delete(self, key: str) -> bool:
        return self.cache.delete(key)

    def delete_many(self, *keys: str) -> list[str]:
        return self.cache.delete_many(*keys)

    def clear(self) -> bool:
        return self.cache.clear()

    def touch(self, key: str, timeout: float | None = None) -> bool:
        return self.cache.touch(key, timeout)

    def inc(self, key: str, delta: int = 1, *, timeout: float | None = None) -> int | None:
        return self.cache.inc(key, delta, timeout=timeout)

    def dec(self, key: str, delta: int = 1, *, timeout: float | None = None) -> int | None:
        return self.cache.dec(key, delta, timeout=timeout)

    def get_or_set(
        self, key: str, default: Any | Callable[[], Any], timeout: float | None = None
    ) -> Any:
        return self.cache.get_or_set(key, default, timeout)

    def stats(self) -> dict[str, Any]:
        return self.cache.stats()

    # -- decorators -------------------------------------------------------------------

    def _resolve(self) -> BoundCache:
        return self.cache

    def cached(
        self,
        timeout: float | None = None,
        key_prefix: str | Callable[[], str] = "view/%s",
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[[], Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        query_string: bool = True,
        hash_method: Callable[..., Any] = hashlib.md5,
        cache_none: bool = False,
        make_cache_key: Callable[..., str] | None = None,
        source_check: bool = False,
        response_hit_indication: bool = False,
        single_flight: bool = True,
        single_flight_wait: float = 10.0,
        stale_while_revalidate: float = 0,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Cache a view's whole response, or a function's value.

        For a view (GET and HEAD only) the default key is ``key_prefix % request.path``
        plus the query string with its parameters sorted (``query_string=False`` leaves
        it out). A ``key_prefix`` without ``%s`` is the key itself; a callable
        ``key_prefix`` returns the key; ``make_cache_key(*args, **kwargs)`` overrides
        both. Only responses ``response_filter`` accepts (by default: status 200) that
        set no cookie, do not vary on the cookie, are not private and not streamed are
        stored, in a compact non-pickle format. ``unless()`` skips the cache,
        ``forced_update()`` recomputes and stores. ``source_check`` puts a hash of the
        function's code in the key. ``response_hit_indication`` adds a ``hit_cache``
        header. On a miss, one process computes (``single_flight``) while the others
        wait up to ``single_flight_wait`` seconds; ``stale_while_revalidate`` seconds
        serve an expired copy while one process refreshes it. Cache faults are logged
        and the view's own response is served.
        """
        return cached(
            self._resolve,
            timeout=timeout,
            key_prefix=key_prefix,
            unless=unless,
            forced_update=forced_update,
            response_filter=response_filter,
            query_string=query_string,
            hash_method=hash_method,
            cache_none=cache_none,
            make_cache_key=make_cache_key,
            source_check=source_check,
            response_hit_indication=response_hit_indication,
            single_flight=single_flight,
            single_flight_wait=single_flight_wait,
            stale_while_revalidate=stale_while_revalidate,
        )

    def memoize(
        self,
        timeout: float | None = None,
        make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[[], Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        hash_method: Callable[..., Any] = hashlib.md5,
        cache_none: bool = False,
        source_check: bool = False,
        args_to_ignore: Iterable[str] = (),
        single_flight: bool = True,
        single_flight_wait: float = 10.0,
        stale_while_revalidate: float = 0,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Cache a function's result per arguments (normalised: ``f(1, b=2)`` is
        ``f(1, 2)``). ``args_to_ignore`` names arguments left out of the key;
        ``cache_none`` stores ``None`` results. Other options as in :meth:`cached`.
        Works on functions, instance methods and class methods, sync or async.
        """
        return memoize(
            self._resolve,
            timeout=timeout,
            make_name=make_name,
            unless=unless,
            forced_update=forced_update,
            response_filter=response_filter,
            hash_method=hash_method,
            cache_none=cache_none,
            source_check=source_check,
            args_to_ignore=args_to_ignore,
            single_flight=single_flight,
            single_flight_wait=single_flight_wait,
            stale_while_revalidate=stale_while_revalidate,
        )

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Drop ``f(*args, **kwargs)``'s entry; without arguments, every entry of ``f``."""
        return delete_memoized(self.cache, f, *args, **kwargs)

    def delete_memoized_verhash(self, f: Callable[..., Any]) -> bool:
        """Drop every entry of ``f`` (in every process) by renewing its version."""
        return delete_memoized_verhash(self.cache, f)
