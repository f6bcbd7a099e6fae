"""The app's own callables that decorators call, called the way Flask-Caching calls them.

``unless`` and ``forced_update`` get the call's arguments when they take any,
``is_stale`` the found value (and the arguments when it takes more than one positional
parameter). An exception in any of them comes out as :class:`UserCallableFailed`: the
decorators log it and go on uncached, or let it reach the app in debug and testing mode.
Signatures are read once per callable, not per call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from flask import current_app, has_app_context

from .logs import RateLimitedLog

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


class UserCallableFailed(Exception):
    """An exception raised by one of the app's own callables given to a decorator."""

    def __init__(self, function: Callable[..., Any], error: Exception) -> None:
        super().__init__(f"{getattr(function, '__qualname__', function)!s}: {error!r}")
        self.error = error
        #: True in debug and testing mode: the error reaches the app as it is.
        self.propagate = has_app_context() and bool(
            current_app.debug or current_app.testing
        )

    def log(self, log: RateLimitedLog) -> None:
        """Log it (rate-limited); the call goes on uncached."""
        log.warning(
            "UserCallableFailed",
            f"flask-uwsgicache: going on uncached: the app's callable {self}",
        )


def user_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)``, an app's own callable; its exception comes out as
    :class:`UserCallableFailed`."""
    try:
        return function(*args, **kwargs)
    except Exception as error:
        raise UserCallableFailed(function, error) from error


@functools.lru_cache(maxsize=1024)
def _positional(function: Callable[..., Any]) -> float:
    """How many arguments ``function`` takes by position (inf with ``*args``); read
    once per function, not per call."""
    kinds = [p.kind for p in inspect.signature(function).parameters.values()]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return float("inf")
    return sum(
        kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for kind in kinds
    )


@functools.lru_cache(maxsize=1024)
def _wants_arguments(function: Callable[..., Any]) -> bool:
    return bool(inspect.signature(function).parameters)


def bypass(
    unless: Callable[..., Any] | None, f: Callable[..., Any], *args: Any, **kwargs: Any
) -> bool:
    """Whether ``unless`` says to skip the cache. As in Flask-Caching, ``unless`` gets the
    function and its arguments when it accepts arguments, and nothing otherwise."""
    if unless is None:
        return False
    if _wants_arguments(unless):
        return bool(user_call(unless, f, *args, **kwargs))
    return bool(user_call(unless))


def staleness(
    is_stale: Callable[..., Any] | None, args: Args, kwargs: Kwargs
) -> Callable[[Any], bool] | None:
    """``is_stale`` for one call: as in Flask-Caching it gets the found value, and the
    call's arguments when it takes more than one parameter."""
    if is_stale is None:
        return None
    extra = _positional(is_stale) > 1

    def stale(value: Any) -> bool:
        if extra:
            return bool(user_call(is_stale, value, *args, **kwargs))
        return bool(user_call(is_stale, value))

    return stale


def forced(forced_update: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> bool:
    """Whether ``forced_update`` says to compute and store afresh. As in Flask-Caching,
    it gets the call's arguments when it accepts arguments, and nothing otherwise."""
    if forced_update is None:
        return False
    if _wants_arguments(forced_update):
        return bool(user_call(forced_update, *args, **kwargs))
    return bool(user_call(forced_update))
