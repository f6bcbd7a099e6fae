"""Whole responses in the cache: which ones may be stored, and a compact format for them.

A stored response is ``bytes`` (so it takes the envelope's raw path, no pickle)::

    b"uCR2" | head length (uint32 LE) | JSON head | body

where the head is ``[status, [[name, value], ...], view name, fast]``: ``fast`` says the
view may be answered by :mod:`flask_uwsgicache.fastpath` without running Flask.
"""

from __future__ import annotations

import dataclasses
import json
import struct

from flask import Response

MAGIC = b"uCR2"
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


def dump(response: Response, name: str = "", fast: bool = False) -> bytes:
    """The stored form of ``response``: status, headers in order, body, and the view."""
    head = json.dumps(
        [response.status_code, list(response.headers.to_wsgi_list()), name, fast],
        separators=(",", ":"),
    ).encode()
    return b"".join((MAGIC, _LENGTH.pack(len(head)), head, response.get_data()))


def parse(data: object) -> Stored:
    """The parts of a stored response; :class:`BadStoredResponse` if it is not one."""
    if type(data) is not bytes or not data.startswith(MAGIC):
        raise BadStoredResponse("not a stored response")
    try:
        (length,) = _LENGTH.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + _LENGTH.size
        status, headers, name, fast = json.loads(data[start : start + length])
        pairs = [(str(header), str(value)) for header, value in headers]
        return Stored(int(status), pairs, data[start + length :], str(name), bool(fast))
    except (struct.error, ValueError, TypeError) as error:
        raise BadStoredResponse(f"damaged stored response: {error}") from None


def load(data: object) -> Response:
    """The response stored as ``data``; :class:`BadStoredResponse` if it is not one."""
    return parse(data).response()
