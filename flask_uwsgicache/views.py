"""``cache.cached(...)``: whole responses of views, or the value of plain functions.

Option names and meanings follow Flask-Caching where they overlap, with two differences
that make it safe by default: the default key includes the query string (normalised, so
``?a=1&b=2`` and ``?b=2&a=1`` share an entry), and only 200 responses that are the same
for everyone are stored (see :func:`flask_uwsgicache.responses.is_cacheable`).
A cache fault never reaches the client: the view's own response is served and a line
is logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, has_request_context, make_response, request

from . import flight, responses
from .cache import BoundCache
from .wrapping import (
    Args,
    CacheOwner,
    Call,
    Kwargs,
    bypass,
    fault,
    function_name,
    keep_result,
    wrap,
)

_CACHEABLE_METHODS = ("GET", "HEAD")


def normalized_query() -> str:
    """The request's query string with parameters sorted by name (values keep order)."""
    items = sorted(request.args.items(multi=True), key=lambda item: item[0])
    return urlencode(items)


def serves_request(f: Callable[..., Any]) -> bool:
    """Whether ``f`` (maybe under other decorators) is the view of the current request."""
    if not has_request_context():
        return False
    view: Any = current_app.view_functions.get(request.endpoint or "")
    while view is not None:
        if getattr(view, "__wrapped__", None) is f:
            return True
        view = getattr(view, "__wrapped__", None)
    return False


class ViewsMixin(CacheOwner):
    """``cached`` for :class:`~flask_uwsgicache.UWSGICache`."""

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
        edge: bool = False,
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
        function's code (by ``hash_method``) in the key. ``response_hit_indication``
        adds a ``hit_cache`` header. On a miss, one process computes (``single_flight``)
        while the others wait up to ``single_flight_wait`` seconds;
        ``stale_while_revalidate`` seconds serve an expired copy while one process
        refreshes it. Cache faults are logged and the view's own response is served.

        ``edge=True`` also puts the response of a GET at the edge (see
        :mod:`flask_uwsgicache.edge`): uWSGI then answers that URI from its cache by
        internal routing, without calling Python, until the timeout or
        ``delete_edge(path)``. Only for views that are the same for everyone: it cannot
        be combined with the per-request options above.
        """
        options = flight.Options(
            timeout, single_flight, single_flight_wait, stale_while_revalidate, quiet=True
        )
        view_options = dataclasses.replace(options, decode=responses.load)

        # Views whose answer depends on nothing but the path and query string may be
        # served by the fast path (see flask_uwsgicache.fastpath).
        fast = (
            isinstance(key_prefix, str)
            and "%s" in key_prefix
            and unless is None
            and forced_update is None
            and make_cache_key is None
            and not source_check
            and not stale_while_revalidate
            and not response_hit_indication
        )

        if edge and not fast:
            raise ValueError(
                "cached(edge=True) responses are served by uWSGI without running Flask, "
                "so they cannot use unless, forced_update, make_cache_key, "
                "source_check, stale_while_revalidate, response_hit_indication or a "
                "key_prefix without %s. Drop those options or edge=True."
            )
        if edge:
            self.edge_key_prefixes[str(key_prefix)] = None

        def decorator(f: Callable[..., Any]) -> Callable[..., Any]:
            source = (
                hash_method(f.__code__.co_code).hexdigest()[:16] if source_check else ""
            )
            name = function_name(f)

            def make_key(*args: Any, **kwargs: Any) -> str:
                if make_cache_key is not None:
                    key = make_cache_key(*args, **kwargs)
                elif callable(key_prefix):
                    key = key_prefix()
                elif "%s" in key_prefix:
                    key = key_prefix % request.path
                    query = normalized_query() if query_string else ""
                    key += f"?{query}" if query else ""
                else:
                    key = key_prefix
                return f"{key}:{source}" if source else key

            def prepare(args: Args, kwargs: Kwargs) -> Call | None:
                view = serves_request(f)
                if view and request.method not in _CACHEABLE_METHODS:
                    return None
                if bypass(unless, f, *args, **kwargs):
                    return None
                cache = self.cache
                if view and fast:
                    cache.fast_prefixes[(str(key_prefix), query_string)] = None
                return Call(
                    cache,
                    make_key(*args, **kwargs),
                    view_options if view else options,
                    forced=bool(forced_update and forced_update()),
                    view=view,
                    hit_indication=response_hit_indication,
                )

            def finish(call: Call, result: Any) -> tuple[Any, Any]:
                if not call.view:
                    return keep_result(result, cache_none, response_filter)
                response = make_response(result)
                if response_filter is not None:
                    keep = response_filter(response)
                else:
                    keep = response.status_code == 200
                if keep and responses.is_cacheable(response):
                    if edge:
                        to_edge(call.cache, response)
                    return response, responses.dump(response, name, fast)
                return response, flight.NOTHING

            def to_edge(cache: BoundCache, response: Response) -> None:
                try:
                    cache.edge.store(
                        request.environ,
                        response,
                        cache.default_timeout if timeout is None else timeout,
                    )
                except Exception as error:  # the response is served all the same
                    fault(cache, error)

            wrapper = wrap(f, prepare, finish, timeout)
            wrapper.make_cache_key = make_key  # type: ignore[attr-defined]
            return wrapper

        return decorator
