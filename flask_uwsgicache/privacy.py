"""What makes a request personal, and what a cached call did to its request's state.

A cached view's stored response is served to other requests, so it may only be one that
the app gives every such request alike. Two things Flask lets us see decide that:

* **Personal requests** carry credentials (``Authorization``, or another header of
  ``UWSGICACHE_PERSONAL_HEADERS``: ``X-Api-Key``, ``X-Auth-Token``, ``X-Access-Token``
  by default), a non-empty session, or a cookie other than the session's and those the
  app names as shared (``UWSGICACHE_SHARED_COOKIES``: analytics, consent). The app
  may answer each of them differently, in ways the cache cannot see (a decorator
  outside ``cached`` that reads the session or a token cookie, ``"user" in session``
  inside it), so they neither read nor fill the cache: they run the view.
* **What the call did** (:class:`Watch`): a view that changed the session, or left
  ``after_this_request`` callbacks, would not do so on a hit, so its response is not
  stored; one that read the (empty) session gets the ``Vary: Cookie`` Flask adds.

The session is looked at without marking it accessed: since Flask 3.1.3 every use of
``flask.session`` does, which adds ``Vary: Cookie`` to the response.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Any

from flask import has_request_context, request, session
from werkzeug.datastructures import EnvironHeaders

from .contexts import request_context
from .viewkeys import environ_name


def current_session() -> Any:
    """This request's session object, without marking it accessed; None before it is
    opened or outside a request."""
    if not has_request_context():
        return None
    context = request_context._get_current_object()
    state = vars(context)
    # Flask >= 3.1.3 keeps it in _session behind a property that sets ``accessed``.
    for name in ("_session", "session"):
        if name in state:
            return state[name]
    # A Flask that keeps it elsewhere: the public way, which may mark it accessed (the
    # response then varies on Cookie): safe, if less often shared.
    return session._get_current_object()  # type: ignore[attr-defined]


#: ``UWSGICACHE_PERSONAL_HEADERS``' default: request headers that carry credentials.
DEFAULT_PERSONAL_HEADERS = ("Authorization", "X-Api-Key", "X-Auth-Token", "X-Access-Token")


def personal_headers(value: Any) -> tuple[str, ...]:
    """The headers that carry credentials: the defaults and ``value``
    (``UWSGICACHE_PERSONAL_HEADERS``, checked), which adds to them."""
    if isinstance(value, str) or not all(isinstance(name, str) and name for name in value):
        raise ValueError(
            f"UWSGICACHE_PERSONAL_HEADERS is {value!r}; set it to a list of the request "
            f"headers that carry credentials, for example {list(DEFAULT_PERSONAL_HEADERS)}."
        )
    names = [*DEFAULT_PERSONAL_HEADERS, *value]
    return tuple(dict.fromkeys(name.title() for name in names))


def environ_names(headers: Iterable[str]) -> tuple[str, ...]:
    """The WSGI environ keys of request ``headers``."""
    return tuple(environ_name(header) for header in headers)


#: What a front server sets for a request it authenticated (HTTP auth in nginx or
#: Apache, a TLS client certificate).
SERVER_AUTH = ("REMOTE_USER", "SSL_CLIENT_S_DN", "SSL_CLIENT_CERT", "HTTPS_DN")


def is_personal(
    environ: Any, shared_cookies: Collection[str], credentials: Collection[str]
) -> bool:
    """True for a request that sends one of the ``credentials`` (environ keys) or was
    authenticated by the front server (:data:`SERVER_AUTH`), has a non-empty session,
    or sends a cookie whose name is not in ``shared_cookies`` (which holds the
    session's)."""
    if any(name in environ for name in credentials) or any(
        environ.get(name) for name in SERVER_AUTH
    ):
        return True
    session = current_session()
    if session is not None and len(session) > 0:
        return True
    # Flask has parsed the cookies already, to open the session.
    return "HTTP_COOKIE" in environ and any(
        name not in shared_cookies for name in request.cookies
    )


# Request headers a view's answer may depend on through make_conditional (send_file,
# send_from_directory): a 304 or a 206 instead of the stored 200.
CONDITIONAL = (
    "HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE",
)  # fmt: skip


def is_conditional(environ: Any) -> bool:
    """True for a conditional or range request: the view, not a stored copy, answers
    it (Flask's answer may be a 304 or a 206)."""
    return any(name in environ for name in CONDITIONAL)


def _accessed(session: Any) -> bool:
    return bool(getattr(session, "accessed", True))


def _callbacks() -> int | None:
    """How many ``after_this_request`` callbacks the request has; None where this Flask
    does not say (then nothing a cached call returns in a request is stored)."""
    context = request_context._get_current_object()
    callbacks = getattr(context, "_after_request_functions", None)
    return None if callbacks is None else len(callbacks)


# A read of every header at once (iterating request.headers).
EVERY_HEADER = "*"


class TrackedHeaders(EnvironHeaders):
    """``request.headers`` while cached calls run: notes the names of the headers
    read (lower-case; :data:`EVERY_HEADER` for an iteration) into each of ``sinks``,
    one per cached call in progress."""

    def __init__(self, environ: Any, sinks: list[set[str]]) -> None:
        super().__init__(environ)
        self.sinks = sinks

    def _note(self, name: object) -> None:
        for sink in self.sinks:
            sink.add(str(name).lower())

    def __getitem__(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        # Werkzeug < 3 has get() call __getitem__(key, _get_mode=True).
        self._note(key)
        return super().__getitem__(key, *args, **kwargs)

    def _get_key(self, key: str) -> str:  # Werkzeug >= 3: get() and "in" come here
        self._note(key)
        return super()._get_key(key)

    def __iter__(self) -> Any:
        self._note(EVERY_HEADER)
        return super().__iter__()


@dataclasses.dataclass(slots=True)
class Watch:
    """The request's state before a cached call, to tell what the call changed and
    which request headers it read."""

    session: Any
    accessed: bool
    callbacks: int | None
    headers_read: set[str]

    @classmethod
    def start(cls) -> Watch:
        """Note the state now (inside a request) and track header reads from now on."""
        session = current_session()
        read: set[str] = set()
        state = request._get_current_object().__dict__  # type: ignore[attr-defined]
        current = state.get("headers")
        sinks = current.sinks if isinstance(current, TrackedHeaders) else []
        state["headers"] = TrackedHeaders(request.environ, [*sinks, read])
        accessed = session is not None and _accessed(session)
        return cls(session, accessed, _callbacks(), read)

    def refusal(self) -> str | None:
        """Why the call's result must not be stored, or None."""
        session = current_session()
        if session is not None and (
            session is not self.session or getattr(session, "modified", True)
        ):
            return "it changed the session"
        callbacks = _callbacks()
        if callbacks is None:
            return "this Flask does not show its after_this_request callbacks"
        if callbacks != self.callbacks:
            return "it registered after_this_request callbacks"
        return None

    def read_session(self) -> bool:
        """True if the call read the session (it was not read before)."""
        session = current_session()
        return session is not None and not self.accessed and _accessed(session)
