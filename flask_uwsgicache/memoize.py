"""``cache.memoize(...)`` and ``cache.delete_memoized(...)``: results keyed by arguments.

Arguments are bound to the function's signature with defaults applied, so ``f(1, b=2)``,
``f(1, 2)`` and ``f(1)`` (when ``b`` defaults to 2) share one entry. For methods the
first argument (``self`` or ``cls``) is part of the key: a class by its qualified name,
an instance by its ``__caching_id__()`` if it has one, else by ``repr()``. Each function
has a version, stored in the cache: ``delete_memoized(f)`` without arguments changes it,
which drops every entry of ``f`` in every process at once.
"""

from __future__ import annotations

import hashlib
import inspect
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from . import flight, wrapping
from .cache import BoundCache
from .keys import MEMOIZED
from .wrapping import Call

VERSION_PREFIX = "memver:"


def _identity(value: Any) -> str:
    if inspect.isclass(value):
        return f"{value.__module__}.{value.__qualname__}"
    caching_id = getattr(value, "__caching_id__", None)
    return str(caching_id()) if callable(caching_id) else repr(value)


class Memoized:
    """The key-making half of a memoized function (kept on it as ``__memoized__``)."""

    def __init__(
        self,
        f: Callable[..., Any],
        name: str,
        hash_method: Callable[..., Any],
        args_to_ignore: Iterable[str],
        source_check: bool,
    ) -> None:
        self.f = f
        self.name = name
        self.hash_method = hash_method
        self.ignore = frozenset(args_to_ignore)
        self.signature = inspect.signature(f)
        parameters = list(self.signature.parameters)
        self.first = (
            parameters[0] if parameters and parameters[0] in ("self", "cls") else None
        )
        self.source = (
            hash_method(f.__code__.co_code).hexdigest()[:16] if source_check else ""
        )

    def version(self, cache: BoundCache, create: bool = True) -> str:
        """The function's current version, created on first use."""
        versions, key = cache.internal, VERSION_PREFIX + self.name
        version = versions.get(key)
        if version is None and create:
            versions.add(key, secrets.token_hex(4), timeout=0)
            version = versions.get(key)
        return str(version)

    def arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The normalised arguments of one call, as a digest."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        parts = []
        for name, value in bound.arguments.items():
            if name in self.ignore:
                continue
            kind = self.signature.parameters[name].kind
            if name == self.first:
                value = _identity(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                value = sorted(value.items())
            parts.append(f"{name}={value!r}")
        digest: str = self.hash_method("\x1f".join(parts).encode()).hexdigest()
        return digest

    def key(self, cache: BoundCache, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The cache key of one call."""
        version = self.version(cache) + self.source
        return f"memoize:{self.name}:{version}:{self.arguments(args, kwargs)}"


class MemoizeMixin(wrapping.CacheOwner):
    """``memoize`` and ``delete_memoized`` for :class:`~flask_uwsgicache.UWSGICache`."""

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
        ``cache_none`` stores ``None`` results; ``make_name(name)`` renames the
        function in keys. Other options as in :meth:`cached`. Works on functions,
        instance methods and class methods, sync or async.
        """
        options = flight.Options(
            timeout, single_flight, single_flight_wait, stale_while_revalidate, quiet=True
        )

        def decorator(f: Callable[..., Any]) -> Callable[..., Any]:
            name = wrapping.function_name(f)
            memoized = Memoized(
                f,
                make_name(name) if make_name else name,
                hash_method,
                args_to_ignore,
                source_check,
            )

            def prepare(args: wrapping.Args, kwargs: wrapping.Kwargs) -> Call | None:
                if wrapping.bypass(unless, f, *args, **kwargs):
                    return None
                cache = self.cache.space(MEMOIZED)
                key = memoized.key(cache, args, kwargs)
                forced = bool(forced_update and wrapping.user_call(forced_update))
                return Call(cache, key, options, forced=forced)

            def finish(call: Call, result: Any) -> tuple[Any, Any]:
                return wrapping.keep_result(result, cache_none, response_filter)

            wrapper = wrapping.wrap(f, prepare, finish, timeout)
            wrapper.__memoized__ = memoized  # type: ignore[attr-defined]
            return wrapper

        return decorator

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of ``f(*args, **kwargs)``; without arguments, every entry of
        ``f`` (``f`` may be a bound method: its ``self`` counts as the first argument)."""
        memoized, bound_self = _memoized_of(f)
        if not args and not kwargs and not bound_self:
            return self.delete_memoized_verhash(f)
        cache = self.cache.space(MEMOIZED)
        return cache.delete(memoized.key(cache, bound_self + args, kwargs))

    def delete_memoized_verhash(self, f: Callable[..., Any]) -> bool:
        """Drop every entry of ``f``, in every process, by deleting its version."""
        memoized, _ = _memoized_of(f)
        return self.cache.internal.delete(VERSION_PREFIX + memoized.name)


def _memoized_of(f: Any) -> tuple[Memoized, tuple[Any, ...]]:
    """The ``Memoized`` of a memoized function or bound method, and the bound ``self``."""
    target = getattr(f, "__func__", f)
    memoized = getattr(target, "__memoized__", None)
    if not isinstance(memoized, Memoized):
        raise TypeError(f"{f!r} is not decorated with cache.memoize()")
    bound_self = getattr(f, "__self__", None)
    return memoized, (() if bound_self is None else (bound_self,))
