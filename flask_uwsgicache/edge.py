"""The edge: responses uWSGI serves from its cache by internal routing, without Python.

A view decorated with ``cached(edge=True)`` puts its response body under the request's
``Host`` header followed by its raw ``REQUEST_URI`` in an edge cache, one per content
type (``UWSGICACHE_EDGE``). Route lines in the ini answer later anonymous GETs for that
host and URI from the cache; see :func:`route_lines` and ``deploy/uwsgi-edge.ini``.

uWSGI's ``cache`` action sends only the body, ``Content-Type`` (from the route line),
``Content-Length`` and ``Expires``, for any method, to any request, before any Python
code runs. So the route lines let only GETs without ``Cookie`` and ``Authorization``
reach it, and a response goes there only when the whole app would give it to every such
request: the view is the registered view function itself, no hook, middleware or other
session interface could change the answer (the fast path's rules,
:mod:`flask_uwsgicache.fastpath`), the app is what uWSGI calls (no WSGI middleware
around it), the response is the same for everyone and loses nothing without its other
headers. Anything else stays in the normal cache, and a log line says why.

Edge entries expire by uWSGI's own expiry (the ``expires`` given to ``cache_update``),
which needs a master and runs every ``cache-expire-freq`` seconds: an edge entry can be
served up to that long after its timeout. When the edge cannot work (no routing in the
uWSGI build, no master, an edge cache with ``purge_lru`` or ``no_expire``, not under
uWSGI) it is off, a warning says why, and ``edge=True`` views are cached the normal way.
"""

from __future__ import annotations

import ctypes
import math
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from . import edgeindex, fastpath
from .config import DEFAULT_EDGE
from .edgeroutes import (
    EDGE_ROUTE_KEY,
    ROUTE_GUARDS,
    edge_key,
    route_guards,
    route_line,
    route_lines,
)
from .logs import RateLimitedLog, logger
from .privacy import SERVER_AUTH, environ_names, personal_headers
from .responses import refusal

__all__ = [
    "EDGE_ROUTE_KEY",
    "ROUTE_GUARDS",
    "Edge",
    "build_edge",
    "edge_key",
    "parse_config",
    "route_guards",
    "route_line",
    "route_lines",
]

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

# Headers the route cannot send that a client can do without: the date. Any other
# header (Content-Encoding, Location, security headers...) would be lost at the edge,
# so a response that has one is not put there; nor one with validators (ETag,
# Last-Modified) or Accept-Ranges, whose view may answer conditional and range requests
# with a 304 or a 206; nor one with its own Cache-Control or Expires, since the route
# always sends Expires: the entry's expiry.
_DROPPABLE = frozenset(("content-type", "content-length", "date"))


def routing_supported() -> bool:
    """True if this uWSGI was built with internal routing (it needs PCRE at build time).

    The monolithic binary exports its symbols, and ``uwsgi_apply_routes`` exists only in
    routing builds (docs/uwsgi-cache2-facts.rst §10).
    """
    return hasattr(ctypes.CDLL(None), "uwsgi_apply_routes")


def _called_by_server(app: Flask) -> bool:
    """True if the WSGI server called ``app`` itself (or its ``wsgi_app``): no WSGI
    middleware around it that the edge would skip. Only the outermost Python frame of
    this request can tell (uWSGI calls the app from C): it must be this app's (not
    another Flask app's that mounts it) ``__call__`` or fast path."""
    frame = sys._getframe(1)
    while frame.f_back is not None:
        frame = frame.f_back
    entries = (type(app).__call__.__code__, fastpath.FastPath.__call__.__code__)
    caller = frame.f_locals.get("self")
    return frame.f_code in entries and (
        caller is app or caller is vars(app).get("wsgi_app")
    )


def parse_config(value: Any) -> dict[str, str]:
    """``UWSGICACHE_EDGE`` as ``{content type: cache name}``; ``ValueError`` if wrong."""
    if value is None:
        return dict(DEFAULT_EDGE)
    if not isinstance(value, Mapping) or not all(
        isinstance(key, str) and isinstance(name, str) and name and "@" not in name
        for key, name in value.items()
    ):
        raise ValueError(
            f"UWSGICACHE_EDGE is {value!r}; set it to a dict of content type to local "
            f"cache2 name, for example {DEFAULT_EDGE!r}."
        )
    return {key.lower(): name for key, name in value.items()}


class Edge:
    """The edge caches of one app; ``reason`` says why the edge is off (``None``: on)."""

    def __init__(
        self,
        caches: Mapping[str, str],
        reason: str | None,
        log: RateLimitedLog,
        skips_middleware: bool = False,
        credentials: Iterable[str] = environ_names(personal_headers(())),
    ) -> None:
        #: ``{content type: cache name}`` of the caches the edge writes to.
        self.caches = dict(caches)
        self.reason = reason
        self.log = log
        #: ``UWSGICACHE_EDGE_SKIPS_MIDDLEWARE``: the app says its WSGI middleware need
        #: not run for what the edge answers (it only counts, logs or times requests).
        self.skips_middleware = skips_middleware
        #: Environ keys of the headers the route lines keep away from the edge.
        self.credentials = tuple(credentials)
        self._told = False

    def describe(self) -> dict[str, Any]:
        """For ``stats()``: whether the edge is on, why not, and its caches."""
        return {"on": self.reason is None, "reason": self.reason, "caches": self.caches}

    def store(
        self, app: Flask, environ: WSGIEnvironment, response: Response, timeout: float
    ) -> bool:
        """Put ``response`` at the edge for this request for ``timeout`` seconds (0:
        never expires). The caller has checked that the response was made for an
        anonymous GET by a view the fast path could serve. False, with a log line
        saying why, when it does not go there; the caller has cached it the normal way
        anyway."""
        if self.reason is not None:
            if not self._told:  # once per process: every edge miss would say it again
                self._told = True
                logger.warning(
                    "flask-uwsgicache: edge=True views are cached the normal way: %s",
                    self.reason,
                )
            return False
        if environ.get("REQUEST_METHOD") != "GET" or any(
            name in environ
            for name in ("HTTP_COOKIE", "HTTP_UPGRADE", *self.credentials, *SERVER_AUTH)
        ):
            return False  # the route serves anonymous GETs only
        key = edge_key(environ)
        name = self.caches.get((response.content_type or "").lower(), "")
        why = (
            self._refusal(response)
            or self._unplaced(key, name, response)
            or self._app_refusal(app)
        )
        if why is not None:
            self.log.warning("EdgeSkipped", f"flask-uwsgicache: not put at the edge: {why}")
            return False
        assert key is not None
        # The key as the route sees it: the request's raw bytes (WSGI strs are
        # latin-1; a str would go to uWSGI as UTF-8, another request's key).
        raw_key = key.encode("latin-1")
        path = edgeindex.request_path(environ)
        why = edgeindex.put(name, path, raw_key, response.get_data(), math.ceil(timeout))
        if why is not None:
            self.log.warning(
                "EdgeRefused",
                f"flask-uwsgicache: {key[:80]!r} is not put at the edge: {why}",
            )
            return False
        return True

    def _app_refusal(self, app: Flask) -> str | None:
        """Why uWSGI answering without the app could change the answer, or None."""
        why = fastpath.why_not_plain(app)
        if why is not None or self.skips_middleware:
            return why
        fix = " (set UWSGICACHE_EDGE_SKIPS_MIDDLEWARE if it only counts, logs or times)"
        if not fastpath.unwrapped(app):
            return (
                "app.wsgi_app is wrapped in WSGI middleware, which the edge would skip"
                + fix
            )
        if not _called_by_server(app):
            return (
                "uWSGI calls WSGI middleware around the app (or another app, or an "
                "async view runs in a thread of its own), and the edge would answer "
                "without it" + fix
            )
        return None

    @staticmethod
    def _unplaced(key: str | None, name: str, response: Response) -> str | None:
        """Why there is no edge key or cache for this response, or None."""
        if key is None:
            return (
                "no edge key could tell this request from others (a Host that is not "
                "a plain name, a URI not starting with /, or an odd scheme header)"
            )
        if not name:
            return (
                f"no edge cache for Content-Type {response.content_type!r}: add it to "
                f"UWSGICACHE_EDGE, with a cache2 line and "
                f"'{route_line(response.content_type or 'TYPE', 'NAME')}'"
            )
        return None

    @staticmethod
    def _refusal(response: Response) -> str | None:
        if response.status_code != 200:
            return "not a 200 response"
        why = refusal(response)
        if why is not None:
            return f"not the same for everyone: {why}"
        if "Vary" in response.headers:
            return "it varies on request headers, which the route does not look at"
        for header, _value in response.headers.to_wsgi_list():
            if header.lower() not in _DROPPABLE:
                return f"the route cannot send its {header} header"
        if not response.get_data():
            return "uWSGI cannot store an empty body"
        return None

    def delete(self, path: str) -> int:
        """Delete every edge entry for ``path`` as the app sees it (``request.path``:
        any query string, host, scheme, and under any mount point); how many went."""
        if self.reason is not None:
            return 0
        # By the path's records (flask_uwsgicache.edgeindex): no key is listed.
        return sum(edgeindex.forget(name, path) for name in set(self.caches.values()))

    def clear(self) -> None:
        """Empty every edge cache."""
        if self.reason is not None:
            return
        import uwsgi

        for name in set(self.caches.values()):
            uwsgi.cache_clear(name)


def build_edge(config: Mapping[str, Any], log: RateLimitedLog) -> Edge:
    """The app's edge from ``UWSGICACHE_EDGE``; on only when uWSGI can serve it.

    Logs a warning at start when an edge cache exists but the edge cannot work; stays
    quiet when no edge cache is configured (the app may not use the edge at all).
    """
    caches = parse_config(config.get("UWSGICACHE_EDGE"))
    skips = config.get("UWSGICACHE_EDGE_SKIPS_MIDDLEWARE", False)
    if not isinstance(skips, bool):
        raise ValueError(
            f"UWSGICACHE_EDGE_SKIPS_MIDDLEWARE is {skips!r}; set it to True or False."
        )
    headers = personal_headers(config.get("UWSGICACHE_PERSONAL_HEADERS", ()))
    credentials = environ_names(headers)
    try:
        import uwsgi
    except ImportError:
        return Edge(caches, "the app does not run under uWSGI", log, skips, credentials)
    present: dict[str, str] = {}
    for content_type, name in caches.items():
        try:
            uwsgi.cache_keys(
                name
            )  # ValueError: no such cache (docs/uwsgi-cache2-facts.rst §9)
        except ValueError:
            continue
        present[content_type] = name
    if not present:
        example = next(iter(caches.items()), next(iter(DEFAULT_EDGE.items())))
        return Edge(
            caches,
            f"uWSGI has none of the edge caches {sorted(set(caches.values()))} "
            f"(UWSGICACHE_EDGE); add 'cache2 = name={example[1]},items=1000,"
            f"blocksize=65536,keysize=512' and the route lines "
            f"'{route_lines(dict([example]), headers)}'",
            log,
            skips,
            credentials,
        )
    reason = _cannot_serve(present)
    if reason is not None:
        logger.warning("flask-uwsgicache: the edge is off: %s", reason)
    return Edge(present, reason, log, skips, credentials)


def _cannot_serve(caches: Mapping[str, str]) -> str | None:
    import uwsgi

    from .backends.uwsgi import find_options

    if not routing_supported():
        return (
            "this uWSGI was built without internal routing, so no route can serve the "
            "edge. Install libpcre2-dev (Debian) and reinstall with 'pip install "
            "--no-cache-dir uwsgi'; its startup log must not say 'no internal routing "
            "support'"
        )
    if not uwsgi.opt.get("master") or uwsgi.opt.get("cache-no-expire"):
        return (
            "uWSGI expires cache items only in its master's sweeper, so "
            "edge entries would never expire: set 'master = true' (and no "
            "cache-no-expire)"
        )
    for name in caches.values():
        options = find_options(name)  # None when uWSGI does not show the line
        if options is not None and (options.purge_lru or options.no_expire):
            return (
                f"edge cache {name!r} has purge_lru or no_expire, with which uWSGI "
                f"ignores expiry: remove them from its cache2 line"
            )
    return None
