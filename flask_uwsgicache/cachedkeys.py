"""How ``cached`` keys a call: is it the view of the request, what is its key, and the
environ of a view's URL (for ``make_cache_key(path=...)`` and ``delete_cached``).

A view keyed by its path gets :func:`flask_uwsgicache.viewkeys.view_key`, derived from
the whole request; other keys come from ``key_prefix`` or ``make_cache_key``, with the
digest of the function's source when ``source_check`` is on.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response, current_app, has_request_context, request
from werkzeug.test import EnvironBuilder

from .appcache import BoundCache
from .callables import Args, Kwargs, user_call
from .hashing import Hashing
from .viewkeys import view_key
from .wrapping import function_name


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


def looks_like_response(result: Any) -> bool:
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
class KeyOptions:
    """How ``cached`` makes keys (see :meth:`~flask_uwsgicache.UWSGICache.cached`)."""

    key_prefix: str | Callable[[], str]
    query_string: bool
    make_cache_key: Callable[..., str] | None
    hashing: Hashing | None = None

    @property
    def from_path(self) -> bool:
        """True for the default kind of key: derived from the request's path."""
        return (
            isinstance(self.key_prefix, str)
            and "%s" in self.key_prefix
            and self.make_cache_key is None
        )

    def key(
        self,
        cache: BoundCache,
        args: Args,
        kwargs: Kwargs,
        environ: Mapping[str, Any] | None = None,
    ) -> str:
        """The key of one call (``cache`` is the space it is stored in; ``environ`` the
        request's, for a key from the path)."""
        if self.make_cache_key is not None:
            key = str(user_call(self.make_cache_key, *args, **kwargs))
        elif callable(self.key_prefix):
            key = str(user_call(self.key_prefix))
        elif "%s" in self.key_prefix:
            key = view_key(
                request.environ if environ is None else environ,
                self.key_prefix,
                self.query_string,
                cache.stem_budget,
            )
        else:
            key = self.key_prefix
        source = self.hashing.source(cache) if self.hashing is not None else ""
        return f"{key}:{source}" if source else key


def view_environ(
    view: Callable[..., Any],
    args: Args,
    kwargs: Kwargs,
    path: str | None,
    query_args: Any,
) -> dict[str, Any]:
    """The environ of a GET of ``path`` (or of the URL of ``view`` with ``args`` and
    ``kwargs`` as its view arguments) with ``query_args``, with the current request's
    scheme, ``Host`` header as sent and script root (outside a request: the app's
    ``SERVER_NAME``, ``PREFERRED_URL_SCHEME`` and ``APPLICATION_ROOT``)."""
    app = current_app
    if path is None:
        path = view_path(view, args, kwargs)
    config = app.config
    root = str(config.get("APPLICATION_ROOT") or "/").rstrip("/")
    server = config.get("SERVER_NAME") or "localhost"
    base = f"{config.get('PREFERRED_URL_SCHEME') or 'http'}://{server}{root}"
    builder = EnvironBuilder(path=path, base_url=base, query_string=query_args or None)
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    if has_request_context():  # the same site as this request, as its keys say it
        for name in ("wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT"):
            environ.pop(name, None)
            if name in request.environ:
                environ[name] = request.environ[name]
        environ["SCRIPT_NAME"] = request.environ.get("SCRIPT_NAME", "")
    return environ


def view_path(view: Callable[..., Any], args: Args, kwargs: Kwargs) -> str:
    """The path (as ``request.path`` says it) of the route of ``view`` (the decorated
    function, as registered or under other decorators) with these view arguments."""
    app = current_app
    for endpoint, registered in app.view_functions.items():
        function: Any = registered
        while function is not None and function is not view:
            function = getattr(function, "__wrapped__", None)
        if function is None:
            continue
        names = list(inspect.signature(view).parameters)
        values = {**dict(zip(names, args, strict=False)), **kwargs}
        adapter = app.url_map.bind("localhost", script_name="/")
        return adapter.build(endpoint, values, force_external=False)
    raise ValueError(
        f"{function_name(view)} is not the view of any route: give the path "
        f"(path=...) or use cache.delete_edge(path)."
    )
