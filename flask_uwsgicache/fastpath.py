"""Serve stored responses of cached views before Flask runs, when that changes nothing.

A cached view's hit still costs a whole Flask request (contexts, routing, hooks), so it
can never beat a constant "hello" view. This WSGI middleware, installed by ``init_app``
right around Flask's own ``wsgi_app``, answers a GET from the cache directly, but only
when running Flask could not have changed the answer:

* the stored response says it may be (``fast``): it was stored by the answer to an
  anonymous GET (no ``Cookie``, no ``Authorization``), by a ``cached`` view that is
  itself the registered view function (no decorator outside it, such as a login check),
  that has no per-request options (no ``unless``, ``forced_update``,
  ``make_cache_key``, ``source_check``, ``stale_while_revalidate``; a ``key_prefix``
  with ``%s``) and did not touch the session;
* it is found under the key :func:`flask_uwsgicache.viewkeys.view_key` derives from this
  request, as the decorator derives it (method class, raw path, query, scheme, host and
  script root: another host, or one Flask would refuse, finds nothing);
* the request is an anonymous GET too (HEAD goes to Flask: an app may route it to
  another view);
* the app has no ``before_request``, ``after_request`` or ``url_value_preprocessor``
  functions, nothing listens to ``request_started`` or ``request_finished``, and its
  session interface is Flask's own cookie one (another could read the session from
  elsewhere);
* nothing was wrapped around ``app.wsgi_app`` before ``init_app`` (such middleware would
  sit behind this one: the fast path is then off, and a log line says so; middleware
  wrapped after ``init_app`` runs first, as usual).

Anything else, or any fault, goes to Flask as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request_finished, request_started
from flask.sessions import SecureCookieSessionInterface
from werkzeug.http import HTTP_STATUS_CODES

from . import responses
from .logs import logger
from .privacy import SERVER_AUTH, is_conditional
from .viewcounts import HIT
from .viewkeys import view_key

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


# What Flask runs or builds between the WSGI call and the view's response: a subclass
# that overrides one can refuse or change a request there (an IP check in wsgi_app or
# in ensure_sync, a request class that checks a header, a url map that routes on one).
_REQUEST_METHODS = (
    "__call__", "wsgi_app", "request_context", "full_dispatch_request",
    "preprocess_request", "dispatch_request", "make_response", "finalize_request",
    "process_response", "create_url_adapter", "handle_user_exception",
    "handle_exception", "handle_http_exception", "raise_routing_exception",
    "ensure_sync", "async_to_sync", "request_class", "url_map_class",
    "url_rule_class", "app_ctx_globals_class",
)  # fmt: skip
_overridden: dict[type, str | None] = {}


def _overrides(cls: type) -> str | None:
    """The first of Flask's request methods ``cls`` overrides, or None."""
    if cls not in _overridden:
        _overridden[cls] = next(
            (
                name
                for name in _REQUEST_METHODS
                if getattr(cls, name, None) is not getattr(Flask, name, None)
            ),
            None,
        )
    return _overridden[cls]


def why_not_plain(app: Flask) -> str | None:
    """Why Flask would run more than the view for a request to ``app``, or None."""
    overridden = _overrides(type(app)) or next(
        (name for name in _REQUEST_METHODS[2:] if name in vars(app)), None
    )
    if overridden is not None:
        return f"the app overrides Flask.{overridden}"
    if any(app.before_request_funcs.values()):
        return "the app has before_request functions"
    if any(app.after_request_funcs.values()):
        return "the app has after_request functions"
    if any(app.url_value_preprocessors.values()):
        return "the app has url_value_preprocessor functions"
    # Flask < 2.3: run once per process, by the first request that reaches Flask.
    if getattr(app, "before_first_request_funcs", None):
        return "the app has before_first_request functions"
    # Flask < 2.3 without blinker installed has signals that cannot be connected to.
    if getattr(request_started, "receivers", None) or getattr(
        request_finished, "receivers", None
    ):
        return "something listens to request_started or request_finished"
    if type(app.session_interface) is not SecureCookieSessionInterface:
        return "the app's session interface is not Flask's cookie one"
    response_class = app.response_class
    for name in ("get_wsgi_headers", "get_wsgi_response", "get_app_iter", "__call__"):
        if getattr(response_class, name, None) is not getattr(Response, name, None):
            return f"the app's response class overrides {name}"
    return None


class FastPath:
    """The middleware around Flask's ``wsgi_app``."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._told: str | None = None

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        cache = self.app.extensions.get("uwsgicache")
        if (
            cache is not None
            and cache.fast_prefixes
            and environ.get("REQUEST_METHOD") == "GET"
            and "HTTP_COOKIE" not in environ
            and "HTTP_UPGRADE" not in environ  # a websocket rule may share the path
            and not any(name in environ for name in cache.credentials)
            and not any(environ.get(name) for name in SERVER_AUTH)
            and not is_conditional(environ)
            and self._plain()
        ):
            try:
                served = self._serve(cache, environ, start_response)
            except Exception as error:  # a fault here only means Flask answers
                cache.log.warning("FastPathFault", f"flask-uwsgicache: {error!r}")
                served = None
            if served is not None:
                return served
        return self.wsgi_app(environ, start_response)

    def _plain(self) -> bool:
        why = why_not_plain(self.app)
        if why is not None and why != self._told:  # once per reason and process
            self._told = why
            logger.info("flask-uwsgicache: the fast path is off: %s", why)
        return why is None

    def _serve(
        self, cache: Any, environ: WSGIEnvironment, start_response: StartResponse
    ) -> list[bytes] | None:
        space = cache.view_responses
        budget = space.stem_budget
        for prefix, query_string in list(cache.fast_prefixes):
            key = view_key(environ, prefix, query_string, budget)
            stored = self._find(space, key, environ)
            if stored is None or not stored.fast:
                continue
            status = f"{stored.status} {HTTP_STATUS_CODES.get(stored.status, 'UNKNOWN')}"
            start_response(status, stored.headers)
            cache.view_counts.record(stored.name, HIT)
            return [stored.body]
        return None

    @staticmethod
    def _find(space: Any, key: str, environ: WSGIEnvironment) -> responses.Stored | None:
        """The response stored under ``key`` for this request (its variant, for a
        response that varies), or None."""
        data = space.get(key)
        if data is None:
            return None
        try:
            return responses.find(data, space.get, environ)
        except responses.BadStoredResponse:
            return None


def install(app: Flask) -> bool:
    """Put the fast path right around Flask's ``wsgi_app`` (``init_app`` calls this);
    False, with a log line, when something was wrapped there already."""
    if "wsgi_app" in vars(app):
        logger.warning(
            "flask-uwsgicache: the fast path is off: app.wsgi_app was replaced before "
            "init_app (by %r), and the fast path would answer before it. Call init_app "
            "before wrapping app.wsgi_app in middleware to have it.",
            vars(app)["wsgi_app"],
        )
        return False
    wrapped: Callable[..., Any] = app.wsgi_app
    app.wsgi_app = FastPath(app, wrapped)  # type: ignore[method-assign]
    return True


def unwrapped(app: Flask) -> bool:
    """True if ``app.wsgi_app`` is the fast path right around Flask's own: no WSGI
    middleware was wrapped there, before or after ``init_app``."""
    return isinstance(vars(app).get("wsgi_app"), FastPath)
