"""``cache.cached(...)``: whole responses of views, or the values of plain functions.

Option names and meanings follow Flask-Caching where they overlap, with differences that
make it safe by default (docs/views.rst: "What is never cached, and why"):

* the default key (a ``key_prefix`` with ``%s``) is derived from the whole request by
  :func:`flask_uwsgicache.viewkeys.view_key`: raw path, sorted query string, scheme,
  host and script root;
* only GET and HEAD, only 200 responses (or what ``response_filter`` accepts) that are
  the same for everyone (:func:`flask_uwsgicache.responses.refusal`), never the answer
  to a personal request (credentials or a session: :mod:`flask_uwsgicache.privacy`);
* ``Vary`` is honoured: each variant is stored under its own key;
* responses, and results of plain functions, live in key spaces of their own.

A cache fault never reaches the client: the view's own response is served and a line is
logged. An exception in the user's own callables (``unless``, ``make_cache_key``, a
callable ``key_prefix``, ``forced_update``, ``response_filter``) propagates when the app
is in debug or testing mode, and is logged otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from flask import (
    Response,
    current_app,
    has_request_context,
    make_response,
    request,
)

from . import flight, responses, wrapping
from .appcache import BoundCache
from .cachedkeys import (
    KeyOptions,
    looks_like_response,
    serves_request,
    view_environ,
    view_path,
)
from .callables import Args, Kwargs, bypass, forced, staleness, user_call
from .envelope import MISSING
from .hashing import Hashing
from .keys import RESULTS
from .privacy import EVERY_HEADER, Watch, is_conditional, is_personal
from .responses import CachedResponse
from .viewkeys import path_stem, quoted_path, variant_key
from .wrapping import (
    CacheOwner,
    Call,
    Decorator,
    P,
    R,
    fault,
    function_name,
    keep_result,
    wrap,
)

_CACHEABLE_METHODS = ("GET", "HEAD")


class CachedMixin(CacheOwner):
    """``cached`` for :class:`~flask_uwsgicache.UWSGICache`."""

    def cached(
        self,
        timeout: float | None = None,
        key_prefix: str | Callable[[], str] = "view/%s",
        unless: Callable[..., Any] | None = None,
        forced_update: Callable[..., Any] | None = None,
        response_filter: Callable[[Any], Any] | None = None,
        query_string: bool = True,
        hash_method: Callable[..., Any] | None = None,
        cache_none: bool = False,
        make_cache_key: Callable[..., str] | None = None,
        source_check: bool | None = None,
        response_hit_indication: bool = False,
        single_flight: bool = True,
        single_flight_wait: float = 10.0,
        stale_while_revalidate: float = 0,
        edge: bool = False,
        is_stale: Callable[..., Any] | None = None,
    ) -> Decorator:
        """Cache a view's whole response, or a function's value.

        For a view (GET and HEAD only) the default key (``key_prefix`` with ``%s``) is
        derived from the request: path, query string with its parameters sorted
        (``query_string=False`` leaves it out), method, scheme, host and script root.
        A ``key_prefix`` without ``%s`` is the key itself; a callable ``key_prefix``
        returns the key; ``make_cache_key(*args, **kwargs)`` overrides both. Only
        responses ``response_filter`` accepts (by default: status 200) that are the
        same for everyone are stored (no cookie set, not private, no-store or no-cache,
        not varying on Cookie, Authorization or ``*``, not streamed), each ``Vary``
        variant under its own key, in a compact non-pickle format. Requests with
        credentials, a session or cookies run the view uncached. ``unless()`` skips
        the cache, ``forced_update()`` recomputes and stores, ``is_stale(value)``
        (given the call's arguments too when it takes them) recomputes a found value
        it calls stale. ``source_check`` puts a hash of the function's source (by
        ``hash_method``; defaults from ``UWSGICACHE_SOURCE_CHECK`` and
        ``UWSGICACHE_HASH_METHOD``) in the key.
        ``response_hit_indication`` adds ``hit_cache: True`` to hits. On a miss, one
        process computes (``single_flight``) while the others wait up to
        ``single_flight_wait`` seconds; ``stale_while_revalidate`` seconds serve an
        expired copy while one process refreshes it. Cache faults are logged and the
        view's own response is served.

        ``edge=True`` also puts the response of an anonymous GET at the edge (see
        :mod:`flask_uwsgicache.edge`): uWSGI then answers that URI from its cache by
        internal routing, without calling Python, until the timeout or
        ``delete_edge(path)``. Only for views whose key is the default one and that
        use no per-request options.
        """
        wrapping.check_options(timeout, is_stale, stale_while_revalidate)
        options = flight.Options(
            timeout, single_flight, single_flight_wait, stale_while_revalidate, quiet=True
        )
        keys = KeyOptions(key_prefix, query_string, make_cache_key)
        # Views whose answer depends on nothing but the request's URL may be served by
        # the fast path and the edge (see flask_uwsgicache.fastpath).
        fast = (
            keys.from_path
            and unless is None
            and forced_update is None
            and is_stale is None
            and source_check is not True
            and not stale_while_revalidate
            and not response_hit_indication
        )
        if edge and not fast:
            raise ValueError(
                "cached(edge=True) responses are served by uWSGI without running Flask, "
                "so they cannot use unless, forced_update, is_stale, make_cache_key, "
                "source_check, stale_while_revalidate, response_hit_indication or a "
                "key_prefix without %s. Drop those options or edge=True."
            )
        if keys.from_path:
            self.path_key_prefixes[str(key_prefix)] = None

        def decorator(f: Callable[P, R]) -> Callable[P, R]:
            name = function_name(f)
            hashing = Hashing(f, hash_method, source_check)
            call_keys = dataclasses.replace(keys, hashing=hashing)
            this: list[Callable[..., Any]] = []  # the wrapper, once made

            def load(data: object) -> Any:
                read = self.cache.view_responses.get
                stored = responses.find(data, read, request.environ)
                return MISSING if stored is None else stored.response()

            view_options = dataclasses.replace(options, decode=load)

            def make_key(
                *args: Any, path: str | None = None, query_args: Any = None, **kwargs: Any
            ) -> str:
                """The key of a call with these arguments. For a view keyed by its
                path: of the current request, or of a GET of ``path`` (or of the view's
                URL with these view arguments) with ``query_args``."""
                cache = self.cache
                if not keys.from_path:
                    view = has_request_context() and serves_request(f)
                    space = cache.responses if view else cache.space(RESULTS)
                    return call_keys.key(space, args, kwargs)
                environ = None
                if args or kwargs or path is not None or query_args is not None:
                    environ = view_environ(this[0], args, kwargs, path, query_args)
                return call_keys.key(cache.responses, args, kwargs, environ)

            def forget(*args: Any, **kwargs: Any) -> bool:
                """``delete_memoized`` of this function: its entry; for a view keyed
                by its path, every entry of its URL with these view arguments."""
                if not keys.from_path:
                    return self.cache.delete(make_key(*args, **kwargs))
                return self.delete_edge(view_path(this[0], args, kwargs))

            def prepare(args: Args, kwargs: Kwargs) -> Call | None:
                in_request = has_request_context()
                view = in_request and serves_request(f)
                # A key from the URL says nothing of the method: GET and HEAD only.
                if (
                    view or (in_request and keys.from_path)
                ) and request.method not in _CACHEABLE_METHODS:
                    return None
                if bypass(unless, f, *args, **kwargs):
                    return None
                # In a request, what a view or a function returns may depend on who
                # asks in ways no key shows (a login decorator outside it, one that
                # hides the view from serves_request without functools.wraps).
                guarded = in_request
                cache = self.cache
                environ = request.environ if in_request else {}
                if guarded and (
                    is_personal(environ, cache.shared_cookies, cache.credentials)
                    or is_conditional(environ)
                ):
                    return None
                space = cache.view_responses if view else cache.space(RESULTS)
                key = call_keys.key(space, args, kwargs)
                forcing = forced(forced_update, *args, **kwargs)
                if view and fast and not hashing.checks_source(cache):
                    cache.fast_prefixes[(str(key_prefix), query_string)] = None
                return Call(
                    space,
                    key,
                    view_options if view else options,
                    forced=forcing,
                    view=view,
                    hit_indication=response_hit_indication,
                    watch=Watch.start() if guarded else None,
                    stale=staleness(is_stale, args, kwargs),
                )

            def finish(call: Call, result: Any) -> tuple[Any, Any]:
                if not call.view:
                    if call.watch is not None and looks_like_response(result):
                        # A view this decorator cannot see as one (under a decorator
                        # without functools.wraps): its response is not checked here.
                        call.cache.log.warning(
                            "ResponseFromFunction",
                            f"flask-uwsgicache: {name} returned a response but is not "
                            f"the request's view as far as cached() can see (a decorator "
                            f"between them without functools.wraps?): not stored",
                        )
                        return result, flight.NOTHING
                    result, to_store = keep_result(result, cache_none, response_filter)
                    if call.watch is not None and (
                        call.watch.refusal()
                        or call.watch.read_session()
                        or call.watch.headers_read - {"host"}
                    ):
                        return result, flight.NOTHING
                    return result, to_store
                # Before make_response, which may change the class of a response.
                own_timeout = isinstance(result, CachedResponse) and result.timeout
                response = make_response(result)
                if response_filter is not None:  # given what the view returned
                    keep = user_call(response_filter, result)
                else:
                    keep = response.status_code == 200
                if not keep or responses.refusal(response) is not None:
                    return response, flight.NOTHING
                if call.watch is not None:
                    if call.watch.refusal() is not None:
                        return response, flight.NOTHING
                    # The request headers the view read: it varies on them, said or not.
                    read = call.watch.headers_read - {"host"}
                    if read & {EVERY_HEADER, "cookie"}:
                        return response, flight.NOTHING
                    for header in sorted(read):
                        response.vary.add(header.title())
                    if call.watch.read_session():
                        # What Flask adds once the session is read; kept with the copy.
                        response.vary.add("Cookie")
                direct = bool(this) and (
                    current_app.view_functions.get(request.endpoint or "") is this[0]
                )
                if own_timeout:
                    call.options = dataclasses.replace(call.options, timeout=own_timeout)
                    stored = store(call, response, fast and direct)
                    return response, flight.Timed(stored, own_timeout)
                return response, store(call, response, fast and direct)

            def store(call: Call, response: Response, direct: bool) -> Any:
                environ = request.environ
                shared = (
                    direct
                    and request.method == "GET"
                    and "HTTP_COOKIE" not in environ
                    and call.watch is not None
                    and not call.watch.accessed
                    and "Cookie" not in response.vary
                )
                headers = responses.vary_names(response)
                data = responses.dump(response, name, shared)
                if not headers:
                    # The edge's key has no digest of the source: not with source_check.
                    if edge and shared and not hashing.checks_source(call.cache):
                        to_edge(call.cache, response, call.options.timeout)
                    return data
                try:  # each variant under its own key, a marker under the view's
                    variant = variant_key(call.key, headers, environ)
                    call.cache.set(variant, data, flight.ttl_of(call.cache, call.options))
                except Exception as error:  # the response is served all the same
                    fault(call.cache, error)
                    return flight.NOTHING
                return responses.dump_marker(call.key, headers)

            def to_edge(
                cache: BoundCache, response: Response, timeout: float | None
            ) -> None:
                try:
                    cache.edge.store(
                        current_app._get_current_object(),  # type: ignore[attr-defined]
                        request.environ,
                        response,
                        cache.default_timeout if timeout is None else timeout,
                    )
                except Exception as error:  # the response is served all the same
                    fault(cache, error)

            wrapper = wrap(f, prepare, finish, timeout)
            wrapper.make_cache_key = make_key  # type: ignore[attr-defined]
            wrapper._uwsgicache_forget = forget  # type: ignore[attr-defined]
            wrapper._uwsgicache_from_path = keys.from_path  # type: ignore[attr-defined]
            this.append(wrapper)
            return wrapper

        return decorator

    def delete_edge(self, path: str) -> bool:
        """Forget what ``cached`` views stored for ``path`` (as ``request.path`` says
        it, or percent-encoded as ``url_for`` writes it; any query string, host or
        ``Vary`` variant), at the edge and in the cache: the next request runs the
        view. True if a response may have been stored for it since it was last
        forgotten. See :meth:`BoundCache.delete_edge`."""
        cache = self.cache
        budget = cache.responses.stem_budget
        prefixes = self.path_key_prefixes or ("view/%s",)
        forgotten = [
            cache.delete_edge(
                form,
                {path_stem(prefix, quoted_path(form), budget) for prefix in prefixes},
            )
            for form in dict.fromkeys((path, unquote(path)))
        ]
        return any(forgotten)

    def delete_cached(
        self,
        f: Callable[..., Any],
        path: str | None = None,
        query_args: Any = None,
        **kwargs: Any,
    ) -> bool:
        """Forget what the ``cached`` view ``f`` stored for ``path`` (or for its URL with
        the view arguments ``kwargs``), as Flask-Caching's method of that name. For a
        view keyed by its path this forgets every copy of that path, whatever its
        query string (``query_args`` is accepted, and more is forgotten), method, host
        or ``Vary`` variant, in the cache and at the edge: what :meth:`delete_edge`
        does, which needs no request. True if anything was deleted (for a view keyed
        by its path: if a response may have been stored since it was last
        forgotten)."""
        if not getattr(f, "_uwsgicache_from_path", False):
            key = f.make_cache_key(**kwargs)  # type: ignore[attr-defined]
            return bool(self.cache.delete(key))
        return self.delete_edge(path if path is not None else view_path(f, (), kwargs))
