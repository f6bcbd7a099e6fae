"""The key of a cached view's response, from the WSGI environ alone.

One function, :func:`view_key`, derives it for the decorator, the fast path and
``delete_edge``, so a request is looked up under the key its response was stored under,
whichever of them looks. The key holds everything Flask routes and builds URLs on, kept
apart so that no two different requests share it:

``<stem>?<query> <method> <scheme> <host> <script root> <key_prefix's digest>``

* the stem is ``key_prefix % path``, where the path is the raw ``PATH_INFO`` bytes
  percent-encoded (a ``?`` sent as ``%3F`` stays ``%3F``, never a query); a stem too
  long to stay readable in a hashed storage key is replaced by a digest, so every key of
  one path starts with the same bytes (``delete_edge`` finds them by those);
* the query is ``q`` and the parameters sorted by name (values keep their order),
  decoded from the raw bytes and encoded again (``?a=1&b=2`` and ``?b=2&a=%31`` share a
  key; raw UTF-8 and its percent-encoding share a key; raw bytes that are not UTF-8,
  on which Werkzeug fails, get a key of their own), or ``-`` for a view with
  ``query_string=False``, so the two kinds of key never meet;
* the method (an app may route HEAD to another view than GET), the scheme, the
  ``Host`` header as sent (or the server's name and port without one) and
  ``SCRIPT_NAME``, each percent-encoded.

A response that ``Vary``s on request headers is found through a marker under this key
and stored under :func:`variant_key`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from .keys import short_digest

# Characters left as they are in a path (RFC 3986 pchar and "/"); "?", "%", "#", " "
# and every non-ASCII byte are percent-encoded.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_HOST_SAFE = ":[]-._~"


def _raw(text: str) -> bytes:
    """The bytes a WSGI server passed as a latin-1 ``str``."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:  # not a WSGI-conforming server: still one key each
        return text.encode("utf-8", "surrogatepass")


def quoted_path(path: str | bytes) -> str:
    """``path`` (raw bytes, or a ``str`` as the app sees it) percent-encoded."""
    if isinstance(path, str):
        path = path.encode("utf-8", "surrogatepass")
    return quote(path, safe=_PATH_SAFE)


def path_stem(key_prefix: str, path: str, budget: int) -> str:
    """``key_prefix`` with ``%s`` replaced by ``path`` (already quoted; any other ``%``
    stays as it is), or its digest when it is longer than ``budget`` bytes."""
    stem = key_prefix.replace("%s", path)
    if len(stem.encode("utf-8", "surrogatepass")) <= budget:
        return stem
    return "~" + short_digest(stem)


def normalized_query(environ: Mapping[str, Any]) -> str:
    """The query string with its parameters sorted by name, from the raw bytes."""
    query = environ.get("QUERY_STRING", "")
    if not query:
        return ""
    raw = _raw(query)
    try:
        raw.decode()
    except UnicodeDecodeError:  # Werkzeug cannot read it: never the key of another
        return "!" + quote(raw, safe="")
    # latin-1 maps each byte to one character and back: no two byte strings meet.
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    pairs.sort(key=lambda pair: pair[0])
    return urlencode(pairs, encoding="latin-1")


def host_of(environ: Mapping[str, Any]) -> str:
    """The ``Host`` header as sent, or the server's name and port without one."""
    host = environ.get("HTTP_HOST")
    if host is None:
        host = f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return str(host)


def view_key(
    environ: Mapping[str, Any], key_prefix: str, query_string: bool, budget: int
) -> str:
    """The key of the response to the request in ``environ`` for a view cached with
    ``key_prefix`` (which holds ``%s``) and ``query_string``; see the module docstring.
    ``budget`` is the cache's :attr:`~flask_uwsgicache.BoundCache.stem_budget`."""
    stem = path_stem(
        key_prefix, quote(_raw(environ.get("PATH_INFO", "")), _PATH_SAFE), budget
    )
    query = "q" + normalized_query(environ) if query_string else "-"
    method = quote(str(environ.get("REQUEST_METHOD", "")), safe="")
    scheme = quote(str(environ.get("wsgi.url_scheme", "")), safe="")
    host = quote(_raw(host_of(environ)), safe=_HOST_SAFE)
    root = quote(_raw(environ.get("SCRIPT_NAME", "")), safe=_PATH_SAFE)
    # The prefix's digest: "page:%s:v2" at /a and "page:%s" at /a:v2 share a stem.
    return f"{stem}?{query} {method} {scheme} {host} {root} {short_digest(key_prefix)}"


def environ_name(header: str) -> str:
    """The WSGI environ key of request header ``header``."""
    name = header.upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name


def variant_key(base: str, headers: Iterable[str], environ: Mapping[str, Any]) -> str:
    """The key of the variant of a response stored under ``base`` that ``Vary``s on
    ``headers``, for the request in ``environ`` (an absent header is not an empty one).
    """
    values = "\n".join(
        f"{header}:{environ.get(environ_name(header))!r}" for header in headers
    )
    return f"{base} vary:{short_digest(values)}"
