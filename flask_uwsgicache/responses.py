"""Whole responses in the cache: which ones may be stored, and a compact format for them.

A stored response is ``bytes`` (so it takes the envelope's raw path, no pickle)::

    b"uCR1" | header length (uint32 LE) | JSON [status, [[name, value], ...]] | body
"""

from __future__ import annotations

import json
import struct

from flask import Response

MAGIC = b"uCR1"
_LENGTH = struct.Struct("<I")
_PRIVATE = ("private", "no-store")


class BadStoredResponse(ValueError):
    """Bytes under a view's key that are not a response stored by this module."""


def is_cacheable(response: Response) -> bool:
    """Whether ``response`` is the same for everyone and can be stored whole.

    Never a streamed response, one that sets a cookie, varies on the cookie or on
    everything, or is marked private or no-store.
    """
    if response.is_streamed or response.direct_passthrough:
        return False
    headers = response.headers
    if "Set-Cookie" in headers:
        return False
    vary = headers.get("Vary", "").lower()
    if "cookie" in vary or "*" in vary:
        return False
    cache_control = headers.get("Cache-Control", "").lower()
    return not any(word in cache_control for word in _PRIVATE)


def dump(response: Response) -> bytes:
    """The stored form of ``response``: status, headers in order, body."""
    head = json.dumps(
        [response.status_code, list(response.headers.to_wsgi_list())],
        separators=(",", ":"),
    ).encode()
    return b"".join((MAGIC, _LENGTH.pack(len(head)), head, response.get_data()))


def load(data: bytes) -> Response:
    """The response stored as ``data``; :class:`BadStoredResponse` if it is not one."""
    if type(data) is not bytes or not data.startswith(MAGIC):
        raise BadStoredResponse("not a stored response")
    try:
        (length,) = _LENGTH.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + _LENGTH.size
        status, headers = json.loads(data[start : start + length])
        body = data[start + length :]
        response = Response(body, status=int(status))
        response.headers.clear()
        response.headers.extend([(str(name), str(value)) for name, value in headers])
    except (struct.error, ValueError, TypeError) as error:
        raise BadStoredResponse(f"damaged stored response: {error}") from None
    return response
