"""Whole responses in the cache: which ones may be stored, and a compact format for them.

A stored response is ``bytes`` (so it takes the envelope's raw path, no pickle)::

    b"uCR3" | stamp (8 bytes) | head length (uint32 LE) | JSON head | body

where the head is ``[status, [[name, value], ...], view name, fast]``: ``fast`` says the
fast path (and the edge) may answer it without running Flask. A response that varies on
request headers is stored under its variant's key, and its view key holds a marker
instead::

    b"uCV2" | stamp (8 bytes) | JSON [view key, [header, ...]]

The stamp is written as zeros here and filled in by the store: the generation of the
key's stem (:mod:`flask_uwsgicache.generations`). Both live only in the responses' key
space (:mod:`flask_uwsgicache.keys`), which nothing but a cached view writes.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable, Mapping
from typing import Any

from flask import Response

from .viewkeys import variant_key

MAGIC = b"uCR3"
VARY_MAGIC = b"uCV2"
# Where the store stamps what it keeps (flask_uwsgicache.generations.STAMP_AT).
_STAMP = bytes(8)
_LENGTH = struct.Struct("<I")
# Cache-Control directives that forbid a shared cache to store the response (RFC 9111
# 5.2.2): no-cache would need a revalidation with the app before every use.
_NOT_SHARED = ("private", "no-store", "no-cache")
# Vary on these means "per user" (Cookie: what Flask adds once the session is used;
# Authorization: what tells users apart) or "per request" (*): never stored.
_PERSONAL_VARY = frozenset(("*", "cookie", "authorization"))


class CachedResponse(Response):
    """What a ``cached`` view returns to have its response kept ``timeout`` seconds
    instead of the decorator's (Flask-Caching's class of the same name; a false timeout
    keeps the decorator's). The rules on what may be stored still apply."""

    timeout: float | None = None

    def __init__(self, response: Response, timeout: float | None) -> None:
        # Takes the response over as it is (body, status, headers): no copy is made.
        vars(self).update(vars(response))
        self.timeout = timeout


class BadStoredResponse(ValueError):
    """Bytes under a view's key that are not a response stored by this module."""


def refusal(response: Response) -> str | None:
    """Why ``response`` must not be stored to be served to others, or None.

    Never a streamed response, one that sets a cookie, varies on the cookie, on
    ``Authorization`` or on everything, or is marked private, no-store or no-cache.
    """
    if response.is_streamed or response.direct_passthrough:
        return "it is streamed"
    headers = response.headers
    if "Set-Cookie" in headers:
        return "it sets a cookie"
    if _PERSONAL_VARY.intersection(vary_names(response)):
        return "it varies on Cookie, Authorization or *"
    cache_control = headers.get("Cache-Control", "").lower()
    if any(word in cache_control for word in _NOT_SHARED):
        return "its Cache-Control is private, no-store or no-cache"
    return None


def vary_names(response: Response) -> list[str]:
    """The request headers ``response`` varies on, lower-case, sorted, no repeats."""
    names: set[str] = set()
    for value in response.headers.getlist("Vary"):
        names.update(name.strip().lower() for name in value.split(",") if name.strip())
    return sorted(names)


@dataclasses.dataclass(slots=True)
class Stored:
    """A stored response, taken apart."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    name: str = ""
    fast: bool = False

    def response(self) -> Response:
        """A new :class:`flask.Response` with exactly this status, headers and body."""
        response = Response(self.body, status=self.status)
        response.headers.clear()
        response.headers.extend(self.headers)
        return response


@dataclasses.dataclass(slots=True)
class VaryMarker:
    """What a view key holds for a response that varies on request ``headers``."""

    key: str
    headers: list[str]


def dump(response: Response, name: str = "", fast: bool = False) -> bytes:
    """The stored form of ``response``: status, headers in order, body, and the view."""
    head = json.dumps(
        [response.status_code, list(response.headers.to_wsgi_list()), name, fast],
        separators=(",", ":"),
    ).encode()
    return b"".join((MAGIC, _STAMP, _LENGTH.pack(len(head)), head, response.get_data()))


def dump_marker(key: str, headers: list[str]) -> bytes:
    """The stored form of a :class:`VaryMarker`."""
    return VARY_MAGIC + _STAMP + json.dumps([key, headers], separators=(",", ":")).encode()


def parse(data: object) -> Stored | VaryMarker:
    """The parts of a stored response or marker; :class:`BadStoredResponse` if it is
    neither."""
    if type(data) is not bytes:
        raise BadStoredResponse("not a stored response")
    try:
        if data.startswith(VARY_MAGIC):
            key, headers = json.loads(data[len(VARY_MAGIC) + len(_STAMP) :])
            return VaryMarker(str(key), [str(header) for header in headers])
        if not data.startswith(MAGIC):
            raise BadStoredResponse("not a stored response")
        (length,) = _LENGTH.unpack_from(data, len(MAGIC) + len(_STAMP))
        start = len(MAGIC) + len(_STAMP) + _LENGTH.size
        status, headers, name, fast = json.loads(data[start : start + length])
        pairs = [(str(header), str(value)) for header, value in headers]
        return Stored(int(status), pairs, data[start + length :], str(name), bool(fast))
    except (struct.error, ValueError, TypeError) as error:
        raise BadStoredResponse(f"damaged stored response: {error}") from None


def find(
    data: object, read: Callable[[str], object], environ: Mapping[str, Any]
) -> Stored | None:
    """The stored response for the request in ``environ``, from what its view key
    holds (``data``): that response, or for a marker the variant stored under
    :func:`~flask_uwsgicache.viewkeys.variant_key`, read with ``read``; None when
    that variant is not stored. :class:`BadStoredResponse` for anything else, a
    marker under a variant key included. The decorator and the fast path both look
    responses up here."""
    stored = parse(data)
    if isinstance(stored, VaryMarker):
        found = read(variant_key(stored.key, stored.headers, environ))
        if found is None:
            return None
        stored = parse(found)
        if isinstance(stored, VaryMarker):
            raise BadStoredResponse("a marker under a variant key")
    return stored
