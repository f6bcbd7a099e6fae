"""``cache.memoize(...)`` and ``cache.delete_memoized(...)``: results keyed by arguments.

Arguments are bound to the function's signature with defaults applied, so ``f(1, b=2)``,
``f(1, 2)`` and ``f(1)`` (when ``b`` defaults to 2) share one entry. For methods the
first argument (``self`` or ``cls``) is part of the key: a class by its qualified name,
an instance by its ``__caching_id__()`` if it has one, else by ``repr()``. Each function
has a version, stored in the cache: ``delete_memoized(f)`` without arguments changes it,
which drops every entry of ``f`` in every process at once.
"""

from __future__ import annotations

import dataclasses
import inspect
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from . import flight, wrapping
from .appcache import BoundCache
from .callables import Args, Kwargs, bypass, forced, staleness
from .hashing import Hashing
from .keys import MEMOIZED, VERSIONS, short_digest
from .wrapping import Call, Decorator, P, R

VERSION_PREFIX = "memver:"


def _identity(value: Any) -> str:
    if inspect.isclass(value):
        return f"{value.__module__}.{value.__qualname__}"
    caching_id = getattr(value, "__caching_id__", None)
    return str(caching_id()) if callable(caching_id) else repr(value)


class ArgumentsDoNotFit(TypeError):
    """The arguments of a call do not fit the memoized function's signature."""


class Memoized:
    """The key-making half of a memoized function (kept on it as ``__memoized__``)."""

    def __init__(
        self,
        f: Callable[..., Any],
        name: str,
        hashing: Hashing,
        args_to_ignore: Iterable[str],
        options: flight.Options,
    ) -> None:
        self.f = f
        self.name = name
        self.hashing = hashing
        self.ignore = frozenset(args_to_ignore)
        self.options = options
        self.signature = inspect.signature(f)
        parameters = list(self.signature.parameters)
        self.first = (
            parameters[0] if parameters and parameters[0] in ("self", "cls") else None
        )
        #: Whether each instance has a version of its own (an instance method whose
        #: ``self`` is part of the key).
        self.per_instance = self.first == "self" and "self" not in self.ignore
        #: The decorated function's current ``cache_timeout`` (it may change).
        self.timeout: Callable[[], float | None] = lambda: options.timeout

    def _instance_key(self, instance: Any) -> str:
        return f"{VERSION_PREFIX}{self.name}:{short_digest(_identity(instance))}"

    def version(self, cache: BoundCache, args: tuple[Any, ...], create: bool = True) -> str:
        """The function's current version and, for an instance method, the instance's
        (``delete_memoized(obj.method)`` deletes it). Each is made on first use; one
        that is missing and cannot be stored (a full cache) is a new random one, so a
        key never falls back to one that entries were stored under before."""
        versions, key = cache.space(VERSIONS), VERSION_PREFIX + self.name
        if not self.per_instance or not args:
            return self._made(versions, key, versions.get(key), 0, create)
        instance_key = self._instance_key(args[0])
        version, instance = versions.get_many(key, instance_key)
        ttl = 0.0
        if instance is None and create:
            # The instance's version lives as long as its entries: gone, they are too.
            options = dataclasses.replace(self.options, timeout=self.timeout())
            ttl = flight.ttl_of(cache, options)
        return (
            self._made(versions, key, version, 0, create)
            + "."
            + self._made(versions, instance_key, instance, ttl, create)
        )

    @staticmethod
    def _made(versions: BoundCache, key: str, found: Any, ttl: float, create: bool) -> str:
        if found is None and create:
            versions.add(key, secrets.token_hex(4), timeout=ttl)
            found = versions.get(key)
        return str(found) if found is not None else "new-" + secrets.token_hex(8)

    def forget_instance(self, cache: BoundCache, instance: Any) -> bool:
        """Drop every entry of ``instance``'s calls: its version goes, and the next
        call makes a new one."""
        return cache.space(VERSIONS).delete(self._instance_key(instance))

    def arguments(
        self, cache: BoundCache, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        """The normalised arguments of one call, as a digest."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ArgumentsDoNotFit(str(error)) from None
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
        digest: str = self.hashing.method(cache)("\x1f".join(parts).encode()).hexdigest()
        return digest

    def key(
        self,
        cache: BoundCache,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        create: bool = True,
    ) -> str:
        """The cache key of one call."""
        arguments = self.arguments(cache, args, kwargs)
        version = self.version(cache, args, create) + self.hashing.source(cache)
        return f"memoize:{self.name}:{version}:{arguments}"


class MemoizeMixin(wrapping.CacheOwner):
    """``memoize`` and ``delete_memoized`` for :class:`~flask_uwsgicache.UWSGICache`."""

    def memoize(
        self,
        timeout: float | None = None,
        make_name: Callable[[str], str] | None = None,
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[..., Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        hash_method: Callable[..., Any] | None = None,
        cache_none: bool = False,
        source_check: bool | None = None,
        args_to_ignore: Iterable[str] = (),
        single_flight: bool = True,
        single_flight_wait: float = 10.0,
        stale_while_revalidate: float = 0,
        is_stale: Callable[..., Any] | None = None,
    ) -> Decorator:
        """Cache a function's result per arguments (normalised: ``f(1, b=2)`` is
        ``f(1, 2)``). ``args_to_ignore`` names arguments left out of the key;
        ``cache_none`` stores ``None`` results; ``make_name(name)`` renames the
        function in keys. Other options as in :meth:`cached`. Works on functions,
        instance methods and class methods, sync or async.

        The decorated function has Flask-Caching's attributes: ``uncached``,
        ``cache_timeout`` (settable), ``make_cache_key(f.uncached, *args, **kwargs)``
        (the key of one call, in the memoized key space: ``cache.delete(key)`` forgets
        it) and ``delete_memoized()`` (forgets every entry).
        """
        wrapping.check_options(timeout, is_stale, stale_while_revalidate)
        options = flight.Options(
            timeout, single_flight, single_flight_wait, stale_while_revalidate, quiet=True
        )

        def decorator(f: Callable[P, R]) -> Callable[P, R]:
            name = wrapping.function_name(f)
            memoized = Memoized(
                f,
                make_name(name) if make_name else name,
                Hashing(f, hash_method, source_check),
                args_to_ignore,
                options,
            )

            def prepare(args: Args, kwargs: Kwargs) -> Call | None:
                if bypass(unless, f, *args, **kwargs):
                    return None
                cache = self.cache.space(MEMOIZED)
                try:
                    key = memoized.key(cache, args, kwargs)
                except ArgumentsDoNotFit:
                    return None  # the call itself raises the TypeError
                forcing = forced(forced_update, *args, **kwargs)
                stale = staleness(is_stale, args, kwargs)
                return Call(cache, key, options, forced=forcing, stale=stale)

            def finish(call: Call, result: Any) -> tuple[Any, Any]:
                return wrapping.keep_result(result, cache_none, response_filter)

            def make_cache_key(_f: Any, /, *args: Any, **kwargs: Any) -> str:
                return memoized.key(self.cache.space(MEMOIZED), args, kwargs)

            wrapper = wrapping.wrap(f, prepare, finish, timeout)
            memoized.timeout = lambda: wrapper.cache_timeout  # type: ignore[attr-defined]
            wrapper.__memoized__ = memoized  # type: ignore[attr-defined]
            wrapper.make_cache_key = make_cache_key  # type: ignore[attr-defined]
            wrapper.delete_memoized = lambda: self.delete_memoized(wrapper)  # type: ignore[attr-defined]
            return wrapper

        return decorator

    def delete_memoized(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """Drop the entry of ``f(*args, **kwargs)``; without arguments, every entry of
        ``f``. True if something was dropped.

        As in Flask-Caching: a method reached through an instance (``obj.method``)
        supplies that instance (giving it again as the first argument works too), and
        without arguments drops that instance's entries only; reached through its
        class (``Cls.method``) it takes the instance as the first argument, and without
        arguments drops the entries of every instance. A class method drops every
        entry without arguments, one call's with them (the class first or not).
        ``ValueError`` if the arguments do not fit ``f``.
        """
        forget = getattr(getattr(f, "__func__", f), "_uwsgicache_forget", None)
        if forget is not None:  # a function under cached(): Flask-Caching clears it
            return bool(forget(*args, **kwargs))
        memoized, bound = _memoized_of(f)
        if bound is not None and args and args[0] is bound:
            args = args[1:]
        if not args and not kwargs:
            if bound is None or inspect.isclass(bound) or not memoized.per_instance:
                return self.delete_memoized_verhash(f)
            return memoized.forget_instance(self.cache.space(MEMOIZED), bound)
        if bound is not None:
            args = (bound, *args)
        cache = self.cache.space(MEMOIZED)
        try:
            key = memoized.key(cache, args, kwargs, create=False)
        except ArgumentsDoNotFit as error:
            raise ValueError(
                f"delete_memoized: the arguments do not fit {memoized.name} ({error}). "
                f"For a method reached through its class, give the instance first: "
                f"delete_memoized(Cls.method, obj, *args)."
            ) from None
        return cache.delete(key)

    def delete_memoized_verhash(self, f: Callable[..., Any], *args: Any) -> bool:
        """Drop every entry of ``f``, in every process, by deleting its version."""
        memoized, _ = _memoized_of(f)
        return self.cache.space(VERSIONS).delete(VERSION_PREFIX + memoized.name)


def _memoized_of(f: Any) -> tuple[Memoized, Any]:
    """The ``Memoized`` of a memoized function or bound method, and what it is bound to
    (an instance, a class, or None)."""
    target = getattr(f, "__func__", f)
    memoized = getattr(target, "__memoized__", None)
    if not isinstance(memoized, Memoized):
        raise TypeError(f"{f!r} is not decorated with cache.memoize()")
    return memoized, getattr(f, "__self__", None)
