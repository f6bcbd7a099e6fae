"""The edge's routes and keys: the ini lines that let uWSGI answer from an edge cache,
and the key the route computes, as the app computes it (see :mod:`flask_uwsgicache.edge`
and docs/uwsgi-cache2-facts.rst §10).

No Flask here: the route lines are text, the keys come from the WSGI environ.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .privacy import DEFAULT_PERSONAL_HEADERS, SERVER_AUTH, environ_names, personal_headers

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


# Host headers the edge keys by: a name or address and a port, nothing that could
# blur where the host ends and the URI begins.
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?")


def route_guards(credentials: Iterable[str] = DEFAULT_PERSONAL_HEADERS) -> tuple[str, ...]:
    """The ini lines that send every request that is not an anonymous GET (no cookie,
    none of the ``credentials`` headers) past the edge, to the app."""
    # uWSGI's cache action answers any method and any request; "last" ends the routing
    # so the request goes on to the app, and "empty" is true for a missing variable
    # too (docs/uwsgi-cache2-facts.rst §10).
    return (
        "route-if-not = equal:${REQUEST_METHOD};GET last:",
        # A target that does not start with "/" could be read with the Host header
        # as another host's key ("a.test:1" + "2/p" is "a.test:12/p").
        "route-if-not = startswith:${REQUEST_URI};/ last:",
        "route-if-not = empty:${HTTP_COOKIE} last:",
        "route-if-not = empty:${HTTP_UPGRADE} last:",
        *(
            f"route-if-not = empty:${{{name}}} last:"
            for name in (*environ_names(personal_headers(credentials)), *SERVER_AUTH)
        ),
    )


#: The guards for the default ``UWSGICACHE_PERSONAL_HEADERS``.
ROUTE_GUARDS = route_guards()

# What makes uWSGI's (and so the app's) scheme https: the front server's HTTPS and
# UWSGI_SCHEME, and the client's X-Forwarded-Ssl and X-Forwarded-Proto, which uWSGI
# honours itself (docs/uwsgi-cache2-facts.rst §10). All in the key.
_SCHEME_VARS = ("HTTPS", "HTTP_X_FORWARDED_SSL", "UWSGI_SCHEME", "HTTP_X_FORWARDED_PROTO")
_SCHEME_VALUE = re.compile(r"[A-Za-z0-9]*")

#: The edge's key in a route line, what :func:`edge_key` computes: the scheme's inputs,
#: each ended by "|", then the Host header and the raw URI.
EDGE_ROUTE_KEY = "".join(f"${{{name}}}|" for name in _SCHEME_VARS) + (
    "${HTTP_HOST}${REQUEST_URI}"
)


def route_line(content_type: str, name: str) -> str:
    """The ini line that serves edge cache ``name`` as ``content_type`` (after the
    :func:`route_guards`)."""
    return f"route = .* cache:key={EDGE_ROUTE_KEY},name={name},content_type={content_type}"


def route_lines(
    caches: Mapping[str, str], credentials: Iterable[str] = DEFAULT_PERSONAL_HEADERS
) -> str:
    """The ini lines that serve the edge ``caches`` (``{content type: name}``) to
    requests without a cookie and without the ``credentials`` headers."""
    serve = [route_line(content_type, name) for content_type, name in caches.items()]
    return "\n".join((*route_guards(credentials), *serve))


def edge_key(environ: WSGIEnvironment) -> str | None:
    """The edge's key for this request (what the route computes), or None when it
    could be read as another request's: a ``Host`` that is not a plain name or address
    and port, a URI that does not start with "/" (``Host: a.test:1`` with ``2/page``
    would be ``a.test:12/page``'s key), or a scheme input that is not letters and
    digits."""
    host = environ.get("HTTP_HOST", "")
    uri = environ.get("REQUEST_URI", "")
    scheme = [environ.get(name, "") for name in _SCHEME_VARS]
    if (
        not _HOST.fullmatch(host)
        or not uri.startswith("/")
        or not all(_SCHEME_VALUE.fullmatch(value) for value in scheme)
    ):
        return None
    return "".join(f"{value}|" for value in scheme) + f"{host}{uri}"
