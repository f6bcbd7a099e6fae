"""The stored format of one entry.

::

    "uC" | version (1 byte) | flags (1 byte) | expires_at (float64 LE) | payload | [mac]

* ``flags``: the low four bits are the payload tag (raw bytes, str, int, or a serializer's
  tag); ``SIGNED`` says a 16-byte HMAC-SHA256 follows the payload.
* ``expires_at`` is an absolute Unix time, ``0.0`` for never. uWSGI's own expiry is late
  by seconds with a master, never happens without one and is ignored with ``purge_lru``
  (reference/uwsgi-cache2.md §1.4), so a reader checks this field instead.
* The MAC covers the storage key, the header and the payload: an entry copied under
  another key, or with its expiry or tag changed, fails verification.

Entries are never empty (uWSGI refuses empty values) and start with a fixed header, so
bytes this module did not write are rejected rather than misread.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any, Final

from .errors import SerializationError
from .serializers import Serializer

MAGIC: Final = b"uC"
VERSION: Final = 1
HEADER: Final = struct.Struct("<2sBBd")
HEADER_SIZE: Final = HEADER.size
MAC_SIZE: Final = 16
SIGNED: Final = 0x10
TAG_MASK: Final = 0x0F
TAG_BYTES: Final = 0
TAG_STR: Final = 1
TAG_INT: Final = 2
_KEY_LENGTH = struct.Struct("<I")


class EntryRejected(Exception):
    """A stored entry that must not be used: corrupt, foreign, or badly signed."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""Returned by :meth:`Envelope.decode` for an entry whose expiry has passed."""


def derive_secret(secret_key: str | bytes) -> bytes:
    """The signing key for entries, derived from the app's ``SECRET_KEY``."""
    if isinstance(secret_key, str):
        secret_key = secret_key.encode()
    return hashlib.sha256(b"flask-uwsgicache entry signing\0" + secret_key).digest()


def _load_bytes(payload: memoryview) -> bytes:
    return payload.tobytes()


def _load_str(payload: memoryview) -> str:
    return str(payload, "utf-8", "surrogatepass")


def _load_int(payload: memoryview) -> int:
    return int(payload.tobytes())


class Envelope:
    """Encodes values into entries and decodes them back, for one serializer and secret."""

    def __init__(
        self,
        serializer: Serializer,
        secret: bytes | None,
        clock: Callable[[], float],
    ) -> None:
        self.serializer = serializer
        self.secret = secret
        self.clock = clock
        # Only these tags are read back: an entry tagged with another serializer (a
        # pickle planted in a json-configured cache, say) is rejected, never loaded.
        self.loaders: dict[int, Callable[[memoryview], Any]] = {
            TAG_BYTES: _load_bytes,
            TAG_STR: _load_str,
            TAG_INT: _load_int,
            serializer.tag: serializer.loads,
        }

    def _mac(self, key: bytes, body: bytes | memoryview) -> bytes:
        assert self.secret is not None
        message = b"".join((_KEY_LENGTH.pack(len(key)), key, body))
        return hmac.digest(self.secret, message, "sha256")[:MAC_SIZE]

    def encode(self, key: bytes, value: Any, expires_at: float) -> bytes:
        """The entry for ``value`` under storage ``key``; ``expires_at`` 0 is never.

        Raises :class:`SerializationError` when the serializer cannot encode ``value``.
        """
        kind = type(value)
        payload: bytes
        if kind is bytes:
            tag, payload = TAG_BYTES, value
        elif kind is str:
            tag, payload = TAG_STR, value.encode("utf-8", "surrogatepass")
        elif kind is int:
            tag, payload = TAG_INT, b"%d" % value
        else:
            tag = self.serializer.tag
            try:
                payload = self.serializer.dumps(value)
            except Exception as exc:
                raise SerializationError(
                    f"cannot store a {kind.__name__} with the {self.serializer.name} "
                    f"serializer: {exc}. Store a supported value or change "
                    f"UWSGICACHE_SERIALIZER."
                ) from exc
        if self.secret is None:
            return HEADER.pack(MAGIC, VERSION, tag, expires_at) + payload
        body = HEADER.pack(MAGIC, VERSION, tag | SIGNED, expires_at) + payload
        return body + self._mac(key, body)

    def open(self, key: bytes, entry: bytes) -> tuple[int, float, memoryview]:
        """Check an entry and return ``(tag, expires_at, payload)`` without loading it.

        Raises :class:`EntryRejected` for anything this envelope must not trust.
        """
        try:
            magic, version, flags, expires_at = HEADER.unpack_from(entry)
        except struct.error:
            raise EntryRejected("too short to be an entry") from None
        if magic != MAGIC or version != VERSION:
            raise EntryRejected("not written by flask-uwsgicache (or another version)")
        view = memoryview(entry)
        if flags & SIGNED:
            if len(entry) < HEADER_SIZE + MAC_SIZE:
                raise EntryRejected("truncated signature")
            if self.secret is not None and not hmac.compare_digest(
                self._mac(key, view[:-MAC_SIZE]), view[-MAC_SIZE:]
            ):
                raise EntryRejected(
                    "bad signature (tampered, or written under another key)"
                )
            payload = view[HEADER_SIZE:-MAC_SIZE]
        elif self.secret is not None:
            raise EntryRejected("unsigned entry while signing is on")
        else:
            payload = view[HEADER_SIZE:]
        return flags & TAG_MASK, expires_at, payload

    def load(self, tag: int, payload: memoryview) -> Any:
        """The value of an opened entry; :class:`EntryRejected` if it cannot be read."""
        loader = self.loaders.get(tag)
        if loader is None:
            raise EntryRejected(f"payload tag {tag} is not allowed by this serializer")
        try:
            return loader(payload)
        except Exception as exc:
            raise EntryRejected(
                f"payload does not load ({exc.__class__.__name__})"
            ) from None

    def decode(self, key: bytes, entry: bytes) -> Any:
        """The value stored in ``entry``, or :data:`MISSING` if it has expired.

        Raises :class:`EntryRejected` for a corrupt, foreign or badly signed entry.
        """
        tag, expires_at, payload = self.open(key, entry)
        if expires_at and expires_at <= self.clock():
            return MISSING
        return self.load(tag, payload)

    def reseal(self, key: bytes, entry: bytes, expires_at: float) -> bytes:
        """``entry`` with a new expiry, re-signed. Raises like :meth:`open`."""
        tag, _expires_at, payload = self.open(key, entry)
        flags = tag | (SIGNED if self.secret is not None else 0)
        body = HEADER.pack(MAGIC, VERSION, flags, expires_at) + payload
        return body if self.secret is None else body + self._mac(key, body)

    def is_live(self, key: bytes, entry: bytes) -> bool:
        """True if ``entry`` is valid and not expired (the value is not loaded)."""
        try:
            _tag, expires_at, _payload = self.open(key, entry)
        except EntryRejected:
            return False
        return not expires_at or expires_at > self.clock()


def expiry_of(entry: bytes) -> float | None:
    """The expiry field of an entry without verifying it; ``None`` if not an entry."""
    try:
        magic, version, _flags, expires_at = HEADER.unpack_from(entry)
    except struct.error:
        return None
    return expires_at if magic == MAGIC and version == VERSION else None
