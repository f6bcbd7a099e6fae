"""What ``cached`` and ``memoize`` share: the wrapper (sync or async), bypass, faults.

A decorator supplies ``prepare`` (decide, before the call, whether and under which key to
use the cache) and ``finish`` (turn the function's result into what to return and what to
store). :func:`wrap` does the rest: the lookup with single flight, the statistics, and the
rule that a cache fault never reaches the caller.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from flask import Response, current_app, has_app_context

from . import flight, timeouts
from .appcache import BoundCache
from .callables import Args, Kwargs, UserCallableFailed, user_call
from .envelope import MISSING
from .logs import RateLimitedLog
from .privacy import Watch
from .viewcounts import HIT, MISS, REFUSED

P = ParamSpec("P")
R = TypeVar("R")


class Decorator(Protocol):
    """What ``cached`` and ``memoize`` return: it keeps the decorated function's
    signature for type checkers (the wrapper also has Flask-Caching's attributes:
    ``uncached``, ``cache_timeout``, ``make_cache_key``...)."""

    def __call__(self, f: Callable[P, R], /) -> Callable[P, R]: ...


# slots, not frozen: built on every call, and a frozen __init__ sets each field
# through object.__setattr__.
@dataclasses.dataclass(slots=True)
class Call:
    """One call that goes through the cache."""

    cache: BoundCache
    key: str
    options: flight.Options
    forced: bool = False
    view: bool = False
    hit_indication: bool = False
    #: The request's state before the call, when the request decides what is stored.
    watch: Watch | None = None
    #: ``is_stale`` with the call's arguments: True for a found value to recompute.
    stale: Callable[[Any], bool] | None = None


# Faults met before a cache is known (no app, no extension) are logged here.
_log = RateLimitedLog()


class CacheOwner:
    """What the decorator mixins need from the extension: the current app's cache."""

    #: The ``key_prefix`` (with ``%s``) of every ``cached`` view, for ``delete_edge``.
    path_key_prefixes: dict[str, None]

    @property
    def cache(self) -> BoundCache:
        raise NotImplementedError


def keep_result(
    result: Any, cache_none: bool, response_filter: Callable[[Any], Any] | None
) -> tuple[Any, Any]:
    """``(result, what to store)`` for a plain function: ``None`` only with ``cache_none``,
    and only what ``response_filter`` (if given) accepts. A generator is consumed, as
    Flask-Caching does: its chunks joined when they are all ``str`` (or all ``bytes``),
    else a list."""
    if inspect.isgenerator(result):
        result = joined(list(result))
    if result is None and not cache_none:
        return result, flight.NOTHING
    if response_filter is not None and not user_call(response_filter, result):
        return result, flight.NOTHING
    return result, result


def joined(chunks: list[Any]) -> Any:
    """``chunks`` as one ``str`` or ``bytes`` if they are all of that type, else as is."""
    for kind in (str, bytes):
        if chunks and all(type(chunk) is kind for chunk in chunks):
            return kind().join(chunks)
    return chunks


def function_name(f: Callable[..., Any]) -> str:
    """The name statistics and memoize keys use for ``f``."""
    return f"{f.__module__}.{f.__qualname__}"


def check_options(timeout: Any, is_stale: Any, stale_while_revalidate: float) -> None:
    """``TypeError`` or ``ValueError`` for a decorator's options that are wrong or cannot
    go together (a timeout is checked again when it is used: ``cache_timeout`` may
    be set later)."""
    if timeout is not None:
        timeouts.checked(timeout)
    if is_stale is not None and stale_while_revalidate:
        raise ValueError(
            "is_stale and stale_while_revalidate cannot go together: a copy served "
            "stale while it is refreshed is never checked. Use one of them."
        )


def _stale(call: Call, value: Any) -> bool:
    """``call.stale(value)``; an exception in it counts as stale (logged), or reaches
    the app in debug and testing mode."""
    assert call.stale is not None
    try:
        return call.stale(value)
    except UserCallableFailed as failed:
        if failed.propagate:
            raise failed.error from None
        failed.log(call.cache.log)
        return True


def _finish_safely(
    finish: Callable[[Call, Any], tuple[Any, Any]],
) -> Callable[[Call, Any], tuple[Any, Any]]:
    """``finish`` with the app's own callables' errors (``response_filter``) logged and
    the result served unstored, except in debug and testing mode."""

    def safe(call: Call, result: Any) -> tuple[Any, Any]:
        try:
            return finish(call, result)
        except UserCallableFailed as failed:
            if failed.propagate:
                raise failed.error from None
            failed.log(call.cache.log)
            return result, flight.NOTHING

    return safe


def _app_log() -> RateLimitedLog:
    """The current app's cache's log, else this module's (both rate-limited)."""
    if has_app_context():
        cache = current_app.extensions.get("uwsgicache")
        if isinstance(cache, BoundCache):
            return cache.log
    return _log


def fault(cache: BoundCache | None, error: Exception) -> None:
    """Log a cache fault met by a decorator (rate-limited); the call goes on uncached."""
    message = f"flask-uwsgicache: going on uncached after a cache fault: {error!r}"
    (_app_log() if cache is None else cache.log).warning("DecoratorFault", message)


def guarded(
    prepare: Callable[[Args, Kwargs], Call | None],
) -> Callable[[Args, Kwargs], Call | None]:
    """``prepare`` with every exception logged and turned into "no cache", except the
    app's own errors in debug and testing mode."""

    def safe(args: Args, kwargs: Kwargs) -> Call | None:
        try:
            return prepare(args, kwargs)
        except UserCallableFailed as failed:
            if failed.propagate:
                raise failed.error from None
            failed.log(_app_log())
            return None
        except Exception as error:  # a decorator never turns a cache fault into a 500
            fault(None, error)
            return None

    return safe


def _deliver(name: str, call: Call, outcome: flight.Outcome) -> Any:
    try:
        stats = call.cache.view_counts
        stats.record(name, HIT if outcome.hit else MISS)
        if outcome.refused:
            stats.record(name, REFUSED)
    except Exception as error:
        fault(call.cache, error)
    value = outcome.value
    if call.hit_indication and outcome.hit and isinstance(value, Response):
        value.headers["hit_cache"] = "True"  # on hits only, as Flask-Caching does
    return value


def _lookup(call: Call) -> tuple[bool, Any]:
    """``(settled, value)``: a plain read settles a call unless it is forced or serves
    stale copies; the value is ``MISSING`` on a miss (or a fault, logged). A value
    ``is_stale`` rejects forces the call."""
    if call.forced or call.options.stale_while_revalidate:
        return False, MISSING
    try:
        found = flight.read(call.cache, call.key, call.options.decode)
    except Exception as error:
        fault(call.cache, error)
        return True, MISSING
    if found is not MISSING and call.stale is not None and _stale(call, found):
        call.forced = True  # compute and store afresh
        return False, MISSING
    return True, found


def wrap(
    f: Callable[..., Any],
    prepare: Callable[[Args, Kwargs], Call | None],
    finish: Callable[[Call, Any], tuple[Any, Any]],
    timeout: float | None,
) -> Callable[..., Any]:
    """The cached version of ``f`` (a coroutine function stays one), with Flask-Caching's
    ``uncached`` (``f`` itself) and ``cache_timeout`` attributes: setting
    ``cache_timeout`` changes the timeout of what is stored from then on."""
    name = function_name(f)
    safe_prepare = guarded(prepare)
    finish = _finish_safely(finish)
    this: list[Any] = []  # the wrapper, once made

    def start(args: Args, kwargs: Kwargs) -> Call | None:
        call = safe_prepare(args, kwargs)
        if call is not None and this[0].cache_timeout != call.options.timeout:
            call.options = dataclasses.replace(call.options, timeout=this[0].cache_timeout)
        return call

    if inspect.iscoroutinefunction(f):
        wrapper = _async_wrapper(f, name, start, finish)
    else:
        wrapper = _sync_wrapper(f, name, start, finish)
    wrapper.uncached = f  # type: ignore[attr-defined]
    wrapper.cache_timeout = timeout  # type: ignore[attr-defined]
    this.append(wrapper)
    return wrapper


def _sync_wrapper(
    f: Callable[..., Any],
    name: str,
    start: Callable[[Args, Kwargs], Call | None],
    finish: Callable[[Call, Any], tuple[Any, Any]],
) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = start(args, kwargs)
        if call is None:
            return f(*args, **kwargs)
        looked_up, found = _lookup(call)
        if found is not MISSING:
            return _deliver(name, call, flight.Outcome(found, hit=True))
        steps = flight.plan(
            call.cache, call.key, call.options, call.forced, looked=looked_up
        )
        return _deliver(
            name, call, flight.run(steps, lambda: finish(call, f(*args, **kwargs)))
        )

    return wrapper


def _async_wrapper(
    f: Callable[..., Any],
    name: str,
    start: Callable[[Args, Kwargs], Call | None],
    finish: Callable[[Call, Any], tuple[Any, Any]],
) -> Callable[..., Any]:
    @functools.wraps(f)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        call = start(args, kwargs)
        if call is None:
            return await f(*args, **kwargs)
        looked_up, found = _lookup(call)
        if found is not MISSING:
            return _deliver(name, call, flight.Outcome(found, hit=True))

        async def compute() -> tuple[Any, Any]:
            return finish(call, await f(*args, **kwargs))

        steps = flight.plan(
            call.cache, call.key, call.options, call.forced, looked=looked_up
        )
        return _deliver(name, call, await flight.run_async(steps, compute))

    return async_wrapper
