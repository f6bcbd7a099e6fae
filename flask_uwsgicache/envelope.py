"""The stored format of one entry.

::

    "uC" | version (1 byte) | flags (1 byte) | expires_at (float64 LE) | payload | [mac]

* ``flags``: the low four bits are the payload tag (raw bytes, str, int, or a serializer's
  tag); ``SIGNED`` says a 16-byte MAC follows the payload.
* ``expires_at`` is an absolute Unix time, ``0.0`` for never. uWSGI's own expiry is late
  by seconds with a master, never happens without one and is ignored with ``purge_lru``
  (reference/uwsgi-cache2.md §1.4), so a reader checks this field instead.
* The MAC is keyed BLAKE2b (RFC 7693's MAC mode, a drop-in for HMAC and about three
  times faster than HMAC-SHA256 on small entries) over the header, the payload, the
  storage key and its length: an entry copied under another key, or with its expiry or
  tag changed, fails verification.

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
_LEAD: Final = MAGIC + bytes([VERSION])
HEADER: Final = struct.Struct("<3sBd")
HEADER_SIZE: Final = HEADER.size
_unpack_header = HEADER.unpack_from
MAC_SIZE: Final = 16
SIGNED: Final = 0x10
TAG_MASK: Final = 0x0F
TAG_BYTES: Final = 0
TAG_STR: Final = 1
TAG_INT: Final = 2
# Entries up to this size are sliced (one small copy is cheaper than a memoryview);
# larger ones are read through a memoryview so the payload is not copied.
_VIEW_FROM: Final = 4096


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


Payload = bytes | memoryview


# Loaders are C callables where possible: no Python frame on the read path. Entries
# holding an int are always short, so their payload is bytes, which int() parses.


def _load_str(payload: Payload) -> str:
    # Strict UTF-8 takes CPython's fast path; only a str that held lone surrogates was
    # stored with surrogatepass, and decoding it strictly fails.
    try:
        return str(payload, "utf-8")
    except UnicodeDecodeError:
        return str(payload, "utf-8", "surrogatepass")


# Signed entries already verified in this process, by storage key: a hit whose bytes
# equal a verified entry skips the MAC (it would pass again; comparing is a memcmp).
# Bounded: entries up to 64 KiB, at most 4 MiB in all per process.
_VERIFIED_ENTRY: Final = 65536
_VERIFIED_TOTAL: Final = 4 << 20


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
        self._verified: dict[bytes, bytes] = {}
        self._verified_bytes = 0
        self._mac_base = (
            None if secret is None else hashlib.blake2b(key=secret, digest_size=MAC_SIZE)
        )
        # Only these tags are read back: an entry tagged with another serializer (a
        # pickle planted in a json-configured cache, say) is rejected, never loaded.
        self.loaders: dict[int, Callable[[Payload], Any]] = {
            TAG_BYTES: bytes,
            TAG_STR: _load_str,
            TAG_INT: int,
            serializer.tag: serializer.loads,
        }

    def _mac(self, key: bytes, body: Payload) -> bytes:
        assert self._mac_base is not None
        mac = self._mac_base.copy()
        mac.update(body)
        # The key's length comes last, so the split between body and key is unambiguous.
        mac.update(key + len(key).to_bytes(4, "little"))
        return mac.digest()

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
            return HEADER.pack(_LEAD, tag, expires_at) + payload
        body = HEADER.pack(_LEAD, tag | SIGNED, expires_at) + payload
        return body + self._mac(key, body)

    def open(self, key: bytes, entry: bytes) -> tuple[int, float, Payload]:
        """Check an entry and return ``(tag, expires_at, payload)`` without loading it.

        Raises :class:`EntryRejected` for anything this envelope must not trust.
        """
        try:
            lead, flags, expires_at = HEADER.unpack_from(entry)
        except struct.error:
            raise EntryRejected("too short to be an entry") from None
        if lead != _LEAD:
            raise EntryRejected("not written by flask-uwsgicache (or another version)")
        data: Payload = entry if len(entry) < _VIEW_FROM else memoryview(entry)
        if flags & SIGNED:
            if len(entry) < HEADER_SIZE + MAC_SIZE:
                raise EntryRejected("truncated signature")
            if self._mac_base is not None and not hmac.compare_digest(
                self._mac(key, data[:-MAC_SIZE]), data[-MAC_SIZE:]
            ):
                raise EntryRejected(
                    "bad signature (tampered, or written under another key)"
                )
            return flags & TAG_MASK, expires_at, data[HEADER_SIZE:-MAC_SIZE]
        if self._mac_base is not None:
            raise EntryRejected("unsigned entry while signing is on")
        return flags & TAG_MASK, expires_at, data[HEADER_SIZE:]

    def decode(self, key: bytes, entry: bytes) -> Any:
        """The value stored in ``entry``, or :data:`MISSING` if it has expired.

        Raises :class:`EntryRejected` for a corrupt, foreign or badly signed entry.
        It repeats part of :meth:`open` inline: it is the hot path.
        """
        try:
            lead, flags, expires_at = _unpack_header(entry)
        except struct.error:
            raise EntryRejected("too short to be an entry") from None
        if lead != _LEAD:
            raise EntryRejected("not written by flask-uwsgicache (or another version)")
        payload: Payload
        if self._mac_base is None and not flags & SIGNED:
            if expires_at and expires_at <= self.clock():
                return MISSING
            tag = flags
            # (_payload written out: one Python call less on the hot path)
            if len(entry) < _VIEW_FROM:
                payload = entry[HEADER_SIZE:]
            else:
                payload = memoryview(entry)[HEADER_SIZE:]
        else:
            if self._verified.get(key) == entry:
                tag, payload = flags & TAG_MASK, self._payload(entry, -MAC_SIZE)
            else:
                # Verified before the expiry is trusted: a forged expiry is logged too.
                tag, _expires_at, payload = self.open(key, entry)
                if self._mac_base is not None and len(entry) <= _VERIFIED_ENTRY:
                    self._remember(key, entry)
            if expires_at and expires_at <= self.clock():
                return MISSING
        loader = self.loaders.get(tag)
        if loader is None:
            raise EntryRejected(f"payload tag {tag} is not allowed by this serializer")
        try:
            return loader(payload)
        except Exception as exc:
            raise EntryRejected(
                f"payload does not load ({exc.__class__.__name__})"
            ) from None

    @staticmethod
    def _payload(entry: bytes, end: int | None) -> Payload:
        if len(entry) < _VIEW_FROM:
            return entry[HEADER_SIZE:end]
        return memoryview(entry)[HEADER_SIZE:end]

    def _remember(self, key: bytes, entry: bytes) -> None:
        """Note ``entry`` as verified under ``key`` (within the memo's bounds)."""
        if self._verified_bytes + len(entry) > _VERIFIED_TOTAL:
            self._verified.clear()
            self._verified_bytes = 0
        old = self._verified.get(key)
        self._verified_bytes += len(entry) - (len(old) if old is not None else 0)
        self._verified[key] = entry

    def reseal(self, key: bytes, entry: bytes, expires_at: float) -> bytes:
        """``entry`` with a new expiry, re-signed. Raises like :meth:`open`."""
        tag, _expires_at, payload = self.open(key, entry)
        flags = tag | (SIGNED if self.secret is not None else 0)
        body = HEADER.pack(_LEAD, flags, expires_at) + payload
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
        lead, _flags, expires_at = HEADER.unpack_from(entry)
    except struct.error:
        return None
    return float(expires_at) if lead == _LEAD else None
