"""``cache.cached(...)``: whole responses of views, or the value of plain functions.

Option names and meanings follow Flask-Caching where they overlap, with differences that
make it safe by default (README: "What is never cached, and why"):

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
import hashlib
from collections.abc import Callable
from typing import Any

from flask import (
    Response,
    current_app,
    has_request_context,
    make_response,
    request,
)

from . import flight, responses
from .cache import BoundCache
from .envelope import MISSING
from .keys import RESULTS
from .privacy import EVERY_HEADER, Watch, is_conditional, is_personal
from .viewkeys import variant_key, view_key
from .wrapping import (
    Args,
    CacheOwner,
    Call,
    Kwargs,
    UserCallableFailed,
    bypass,
    fault,
    function_name,
    keep_result,
    user_call,
    wrap,
)

_CACHEABLE_METHODS = ("GET", "HEAD")


def serves_request(f: Callable[..., Any]) -> bool:
    """Whether ``f`` (maybe under other decorators) is the view of the current request:
    the registered view function, or the method of a class-based view
    (``MethodView``, Flask-RESTful's ``Resource``) that answers this request."""
    view: Any = current_app.view_functions.get(request.endpoint or "")
    view_class = getattr(view, "view_class", None)
    candidates = [view]
    if view_class is not None:
        method = request.method.lower()
        for name in (method, "get" if method == "head" else method, "dispatch_request"):
            candidates.append(getattr(view_class, name, None))
    for candidate in candidates:
        while candidate is not None:
            if candidate is f or getattr(candidate, "__wrapped__", None) is f:
                return True
            candidate = getattr(candidate, "__wrapped__", None)
    return False


def _looks_like_response(result: Any) -> bool:
    """True for what Flask would turn into a response with headers or a status: a
    :class:`flask.Response`, or ``(body, status)``, ``(body, headers)``, ``(body,
    status, headers)``."""
    if isinstance(result, Response):
        return True
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        return False
    if not isinstance(result[0], str | bytes | dict | list | Response):
        return False
    return any(
        (isinstance(part, int) and 100 <= part <= 599) or isinstance(part, dict | list)
        for part in result[1:]
    )


@dataclasses.dataclass(frozen=True)
class _KeyOptions:
    """How ``cached`` makes keys (see :meth:`ViewsMixin.cached`)."""

    key_prefix: str | Callable[[], str]
    query_string: bool
    make_cache_key: Callable[..., str] | None
    source: str

    @property
    def from_path(self) -> bool:
        """True for the default kind of key: derived from the request's path."""
        return (
            isinstance(self.key_prefix, str)
            and "%s" in self.key_prefix
            and self.make_cache_key is None
        )

    def key(self, cache: BoundCache, args: Args, kwargs: Kwargs) -> str:
        """The key of one call (``cache`` is the space it is stored in)."""
        if self.make_cache_key is not None:
            key = str(user_call(self.make_cache_key, *args, **kwargs))
        elif callable(self.key_prefix):
            key = str(user_call(self.key_prefix))
        elif "%s" in self.key_prefix:
            key = view_key(
                request.environ, self.key_prefix, self.query_string, cache.stem_budget
            )
        else:
            key = self.key_prefix
        return f"{key}:{self.source}" if self.source else key


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
        the cache, ``forced_update()`` recomputes and stores. ``source_check`` puts a
        hash of the function's code (by ``hash_method``) in the key.
        ``response_hit_indication`` adds a ``hit_cache`` header. On a miss, one
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
        options = flight.Options(
            timeout, single_flight, single_flight_wait, stale_while_revalidate, quiet=True
        )
        keys = _KeyOptions(key_prefix, query_string, make_cache_key, "")
        # Views whose answer depends on nothing but the request's URL may be served by
        # the fast path and the edge (see flask_uwsgicache.fastpath).
        fast = (
            keys.from_path
            and unless is None
            and forced_update is None
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
        if keys.from_path:
            self.path_key_prefixes[str(key_prefix)] = None

        def decorator(f: Callable[..., Any]) -> Callable[..., Any]:
            source = (
                hash_method(f.__code__.co_code).hexdigest()[:16] if source_check else ""
            )
            name = function_name(f)
            call_keys = dataclasses.replace(keys, source=source)
            this: list[Callable[..., Any]] = []  # the wrapper, once made

            def load(data: object) -> Any:
                stored = responses.parse(data)
                if isinstance(stored, responses.VaryMarker):
                    environ = request.environ
                    found = self.cache.responses.get(
                        variant_key(stored.key, stored.headers, environ)
                    )
                    if found is None:
                        return MISSING
                    stored = responses.parse(found)
                    if isinstance(stored, responses.VaryMarker):
                        raise responses.BadStoredResponse("a marker under a variant key")
                return stored.response()

            view_options = dataclasses.replace(options, decode=load)

            def make_key(*args: Any, **kwargs: Any) -> str:
                cache = self.cache
                view = has_request_context() and serves_request(f)
                return call_keys.key(
                    cache.responses if view else cache.space(RESULTS), args, kwargs
                )

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
                space = cache.responses if view else cache.space(RESULTS)
                key = call_keys.key(space, args, kwargs)
                forced = bool(forced_update and user_call(forced_update))
                if view and fast:
                    cache.fast_prefixes[(str(key_prefix), query_string)] = None
                return Call(
                    space,
                    key,
                    view_options if view else options,
                    forced=forced,
                    view=view,
                    hit_indication=response_hit_indication,
                    watch=Watch.start() if guarded else None,
                )

            def finish(call: Call, result: Any) -> tuple[Any, Any]:
                if not call.view:
                    if call.watch is not None and _looks_like_response(result):
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
                response = make_response(result)
                if response_filter is not None:
                    keep = user_call(response_filter, response)
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
                    if edge and shared:
                        to_edge(call.cache, response)
                    return data
                try:  # each variant under its own key, a marker under the view's
                    variant = variant_key(call.key, headers, environ)
                    call.cache.set(variant, data, flight.ttl_of(call.cache, call.options))
                except Exception as error:  # the response is served all the same
                    fault(call.cache, error)
                    return flight.NOTHING
                return responses.dump_marker(call.key, headers)

            def to_edge(cache: BoundCache, response: Response) -> None:
                try:
                    cache.edge.store(
                        current_app._get_current_object(),  # type: ignore[attr-defined]
                        request.environ,
                        response,
                        cache.default_timeout if timeout is None else timeout,
                    )
                except Exception as error:  # the response is served all the same
                    fault(cache, error)

            def finish_safely(call: Call, result: Any) -> tuple[Any, Any]:
                try:
                    return finish(call, result)
                except UserCallableFailed as failed:
                    if failed.propagate:
                        raise failed.error from None
                    failed.log(call.cache.log)
                    return result, flight.NOTHING

            wrapper = wrap(f, prepare, finish_safely, timeout)
            wrapper.make_cache_key = make_key  # type: ignore[attr-defined]
            this.append(wrapper)
            return wrapper

        return decorator
