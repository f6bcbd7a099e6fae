"""Serializers for values that are not ``bytes``, ``str`` or ``int``.

Those three always take a raw path in the envelope (no pickle, no json). Everything else
goes through the configured serializer, whose ``tag`` is stored in each entry so a reader
knows how it was written and can refuse formats it does not allow.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol


class Serializer(Protocol):
    """Turns a value into bytes and back. ``loads`` gets the payload as a bytes-like."""

    name: str
    tag: int
    #: True if ``loads`` stops at the end of what ``dumps`` wrote and ignores any bytes
    #: after it: the envelope then passes the whole entry and skips copying the payload.
    self_delimiting: bool

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes | memoryview) -> Any: ...


class PickleSerializer:
    """Any picklable value. Only safe to read when entries are signed (``SECRET_KEY``)."""

    name = "pickle"
    tag = 3
    # "Bytes past the pickled representation of the object are ignored" (pickle docs).
    self_delimiting = True

    def dumps(self, value: Any) -> bytes:
        # A method: a functools.partial with protocol= was slower (it merges keywords
        # on every call).
        return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)

    # pickle.loads itself (a C function, no Python frame on the read path).
    loads = staticmethod(pickle.loads)


class JSONSerializer:
    """JSON values: dict, list, str, int, float, bool, None. Tuples come back as lists."""

    name = "json"
    tag = 4
    self_delimiting = False

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()

    def loads(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))


SERIALIZERS: dict[str, Serializer] = {
    serializer.name: serializer for serializer in (PickleSerializer(), JSONSerializer())
}


def get_serializer(name: str) -> Serializer:
    """The serializer for ``UWSGICACHE_SERIALIZER``; ``ValueError`` for an unknown name."""
    try:
        return SERIALIZERS[name]
    except KeyError:
        raise ValueError(
            f"UWSGICACHE_SERIALIZER is {name!r}; use one of "
            f"{', '.join(sorted(SERIALIZERS))}."
        ) from None
