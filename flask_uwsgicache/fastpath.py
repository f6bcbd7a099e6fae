"""Serve stored responses of cached views before Flask runs, when that changes nothing.

A cached view's hit still costs a whole Flask request (contexts, routing, hooks), so it
can never beat a constant "hello" view. This WSGI middleware, installed by ``init_app``,
answers a GET or HEAD from the cache directly, but only when running Flask could not
have changed the answer:

* the stored response was written by a ``cached`` view that has no per-request
  options (no ``unless``, ``forced_update``, ``make_cache_key``, ``source_check`` or
  ``stale_while_revalidate``; a ``key_prefix`` with ``%s``), and its key is computed
  here exactly as the decorator computes it (``request.path``, sorted query string);
* the request carries no ``Cookie`` and no ``Authorization`` header (no session, no
  login, nothing personal);
* the app has no ``before_request``, ``after_request`` or ``url_value_preprocessor``
  functions and nothing listens to ``request_started`` or ``request_finished``.

Anything else, or any fault, goes to Flask as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from flask import Flask, request_finished, request_started
from werkzeug.http import HTTP_STATUS_CODES

from . import responses
from .viewstats import HIT

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_METHODS = ("GET", "HEAD")
_PERSONAL = ("HTTP_COOKIE", "HTTP_AUTHORIZATION")


def plain(app: Flask) -> bool:
    """True if Flask would run nothing but the view for a request to ``app``."""
    return not (
        any(app.before_request_funcs.values())
        or any(app.after_request_funcs.values())
        or any(app.url_value_preprocessors.values())
        or request_started.receivers
        or request_finished.receivers
    )


def path_and_query(environ: WSGIEnvironment) -> tuple[str, str]:
    """``request.path`` and the sorted query string, as Flask and ``cached`` make them."""
    path = "/" + environ.get("PATH_INFO", "").encode("latin1").decode(errors="replace")
    pairs = parse_qsl(
        environ.get("QUERY_STRING", ""), keep_blank_values=True, errors="werkzeug.url_quote"
    )
    return "/" + path.lstrip("/"), urlencode(sorted(pairs, key=lambda pair: pair[0]))


class FastPath:
    """The middleware around ``app.wsgi_app``."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        cache = self.app.extensions.get("uwsgicache")
        if (
            cache is not None
            and cache.fast_prefixes
            and environ.get("REQUEST_METHOD") in _METHODS
            and not any(name in environ for name in _PERSONAL)
            and plain(self.app)
        ):
            try:
                served = self._serve(cache, environ, start_response)
            except Exception as error:  # a fault here only means Flask answers
                cache.log.warning("FastPathFault", f"flask-uwsgicache: {error!r}")
                served = None
            if served is not None:
                return served
        return self.wsgi_app(environ, start_response)

    def _serve(
        self, cache: Any, environ: WSGIEnvironment, start_response: StartResponse
    ) -> list[bytes] | None:
        path, query = path_and_query(environ)
        for prefix, query_string in list(cache.fast_prefixes):
            key = prefix % path + (f"?{query}" if query_string and query else "")
            data = cache.get(key)
            if data is None:
                continue
            try:
                stored = responses.parse(data)
            except responses.BadStoredResponse:
                continue
            if not stored.fast:
                continue
            status = f"{stored.status} {HTTP_STATUS_CODES.get(stored.status, 'UNKNOWN')}"
            start_response(status, stored.headers)
            cache.view_stats.record(cache, stored.name, HIT)
            return [] if environ.get("REQUEST_METHOD") == "HEAD" else [stored.body]
        return None


def install(app: Flask) -> None:
    """Put the fast path in front of ``app``'s WSGI app (``init_app`` calls this)."""
    wrapped: Callable[..., Any] = app.wsgi_app
    app.wsgi_app = FastPath(app, wrapped)  # type: ignore[method-assign]
