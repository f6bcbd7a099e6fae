"""The stored format of one entry.

::

    payload | [mac] | expires_at (float64 LE) | flags (1 byte) | "uC" | version (1 byte)

* The fixed 12-byte trailer comes last so a pickle can be loaded from the entry itself:
  ``pickle.loads`` stops at the pickle's end and ignores what follows (documented), so
  the hot read path never copies the payload.
* ``flags``: the low four bits are the payload tag (raw bytes, str, int, or a serializer's
  tag); ``SIGNED`` says a 16-byte MAC sits between the payload and the trailer.
* ``expires_at`` is an absolute Unix time, ``0.0`` for never. uWSGI's own expiry is late
  by seconds with a master, never happens without one and is ignored with ``purge_lru``
  (docs/uwsgi-cache2-facts.rst §5), so a reader checks this field instead.
* The MAC is keyed BLAKE2b (RFC 7693's MAC mode, a drop-in for HMAC that hashes once
  where HMAC hashes twice, inner and outer) over the payload, the trailer, the
  storage key and its length: an entry copied under another key, or with its expiry or
  tag changed, fails verification.

Entries are never empty (uWSGI refuses empty values) and end in a fixed trailer, so
bytes this module did not write are rejected rather than misread.

One exception, for stores with atomic counters (Redis' INCRBY, run in a script): with
``bare_ints`` an ``int`` of the counters' range (signed 64-bit) is stored as a *counter
entry*: its decimal digits, which the store can increment, and when signing is on ``:``
and a MAC in hex the store's script can compute and check (Redis scripts have SHA-1,
not BLAKE2b)::

    digits [":" sha1hex(K + sha1hex(K + key + ":" + digits))]

``K`` (:attr:`Envelope.counter_key`) is derived from the secret for this use only, so
what the script is given cannot sign other entries. The nested hash is not open to
length extension, and the digits cannot hold a ":", so key and digits split one way.
Such an entry has no expiry field (the store's own expiry is exact there), can only
ever be read as an int, and with signing on, digits without a valid MAC are rejected
like any other unsigned entry.
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import re
import struct
from collections.abc import Callable
from typing import Any, Final

from .errors import SerializationError
from .serializers import PickleSerializer, Serializer

MAGIC: Final = b"uC"
VERSION: Final = 2
LEAD: Final = MAGIC + bytes([VERSION])
TRAILER: Final = struct.Struct("<dB3s")
TRAILER_SIZE: Final = TRAILER.size
# The trailer as (expires_at, flags byte + LEAD): what decode() looks its reader up by.
_unpack_tail = struct.Struct("<d4s").unpack_from
_pack_trailer = TRAILER.pack
_dumps = pickle.dumps
MAC_SIZE: Final = 16
# What Redis INCRBY reads and writes: a signed 64-bit integer in decimal (a counter
# entry's digits; signed ones are followed by ":" and a SHA-1 in hex).
_BARE_INT: Final = re.compile(rb"-?[0-9]{1,19}")
_SIGNED_INT: Final = re.compile(rb"(-?[0-9]{1,19}):([0-9a-f]{40})")
#: The range of counters on every backend (Redis' INCRBY, uWSGI's int64).
COUNTER_MIN: Final = -(2**63)
COUNTER_MAX: Final = 2**63 - 1
_SIGNED_TAIL: Final = MAC_SIZE + TRAILER_SIZE
SIGNED: Final = 0x10
TAG_MASK: Final = 0x0F
TAG_BYTES: Final = 0
TAG_STR: Final = 1
TAG_INT: Final = 2
# Payloads of entries up to this size are sliced (one small copy is cheaper than a
# memoryview); larger ones are read through a memoryview so they are not copied.
VIEW_FROM: Final = 4096


class EntryRejected(Exception):
    """A stored entry that must not be used: corrupt, foreign, or badly signed."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final[Any] = _Missing()
"""Returned by :meth:`Envelope.decode` for an entry whose expiry has passed."""


def derive_secret(secret_key: str | bytes, store: str = "") -> bytes:
    """The signing key for entries of ``store`` (a backend and cache name), derived
    from the app's ``SECRET_KEY``: an entry copied from one cache to another (``site``
    to ``staging``, with one ``SECRET_KEY``) does not verify there."""
    if isinstance(secret_key, str):
        secret_key = secret_key.encode()
    context = b"flask-uwsgicache entry signing\0" + store.encode("utf-8", "replace")
    return hashlib.sha256(context + b"\0" + secret_key).digest()


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
        *,
        bare_ints: bool = False,
    ) -> None:
        self.serializer = serializer
        self._dumps = serializer.dumps
        self._pickle_protocol = (
            pickle.HIGHEST_PROTOCOL if type(serializer) is PickleSerializer else 0
        )
        self.bare_ints = bare_ints
        self.secret = secret
        self.clock = clock
        #: Signed entries already verified, by storage key (see ``_VERIFIED_ENTRY``).
        self.verified: dict[bytes, bytes] = {}
        self._verified_bytes = 0
        self._mac_base = (
            None if secret is None else hashlib.blake2b(key=secret, digest_size=MAC_SIZE)
        )
        #: The key of counter entries' MACs (see the module docstring); empty when
        #: entries are not signed.
        self.counter_key = (
            b""
            if secret is None
            else hmac.new(secret, b"flask-uwsgicache counter entries", "sha256")
            .hexdigest()
            .encode()
        )
        # Only these tags are read back: an entry tagged with another serializer (a
        # pickle planted in a json-configured cache, say) is rejected, never loaded.
        loaders: dict[int, Callable[[Payload], Any]] = {
            TAG_BYTES: bytes,
            TAG_STR: _load_str,
            TAG_INT: int,
            serializer.tag: serializer.loads,
        }
        #: ``{flags byte + LEAD: (loader, end, verify)}`` for every flags byte this
        #: envelope reads: the loader gets ``entry[:end]``, or the whole entry when
        #: ``end`` is None (a pickle ends itself, so its payload is not copied);
        #: ``verify``: the MAC is checked. A signing envelope reads only signed
        #: entries; one that does not sign reads both kinds, unverified.
        self.readers: dict[bytes, tuple[Callable[[Payload], Any], int | None, bool]] = {}
        for tag, loader in loaders.items():
            whole = tag == serializer.tag and serializer.self_delimiting
            self.readers[bytes([tag | SIGNED]) + LEAD] = (
                loader,
                None if whole else -_SIGNED_TAIL,
                secret is not None,
            )
            if secret is None:
                self.readers[bytes([tag]) + LEAD] = (
                    loader,
                    None if whole else -TRAILER_SIZE,
                    False,
                )

    def _mac(self, key: bytes, body: Payload, trailer: Payload) -> bytes:
        assert self._mac_base is not None
        mac = self._mac_base.copy()
        mac.update(body)  # not copied into one buffer: entries may be large
        # The key's length comes last, so the split between entry and key is unambiguous.
        mac.update(b"".join((trailer, key, len(key).to_bytes(4, "little"))))
        return mac.digest()

    def encode(self, key: bytes, value: Any, expires_at: float) -> bytes:
        """The entry for ``value`` under storage ``key``; ``expires_at`` 0 is never.

        Raises :class:`SerializationError` when the serializer cannot encode ``value``.
        """
        kind = type(value)
        payload: bytes
        if kind is dict or kind is list:  # the usual values first: no other test runs
            tag = self.serializer.tag
            try:
                # pickle called here rather than through the serializer: one frame less.
                protocol = self._pickle_protocol
                payload = _dumps(value, protocol) if protocol else self._dumps(value)
            except Exception as exc:
                raise self._unserializable(value, exc) from exc
        elif kind is bytes:
            tag, payload = TAG_BYTES, value
        elif kind is str:
            tag, payload = TAG_STR, value.encode("utf-8", "surrogatepass")
        elif kind is int:
            if self.bare_ints and COUNTER_MIN <= value <= COUNTER_MAX:
                return self.counter_entry(key, b"%d" % value)
            tag, payload = TAG_INT, b"%d" % value
        else:
            tag, payload = self.serializer.tag, self._serialized(value)
        # _seal() inlined: this is the hot write path.
        # (Concatenation: cheaper than join for entries this small.)
        if self._mac_base is None:
            return payload + _pack_trailer(expires_at, tag, LEAD)
        trailer = _pack_trailer(expires_at, tag | SIGNED, LEAD)
        return payload + self._mac(key, payload, trailer) + trailer

    def _serialized(self, value: Any) -> bytes:
        try:
            return self._dumps(value)
        except Exception as exc:
            raise self._unserializable(value, exc) from exc

    def _unserializable(self, value: Any, exc: Exception) -> SerializationError:
        return SerializationError(
            f"cannot store a {type(value).__name__} with the {self.serializer.name} "
            f"serializer: {exc}. Store a supported value or change "
            f"UWSGICACHE_SERIALIZER."
        )

    def counter_entry(self, key: bytes, digits: bytes) -> bytes:
        """The counter entry holding ``digits`` under ``key`` (see the module docstring)."""
        if not self.counter_key:
            return digits
        return digits + b":" + self._counter_mac(key, digits)

    def _counter_mac(self, key: bytes, digits: bytes) -> bytes:
        inner = hashlib.sha1(self.counter_key + key + b":" + digits).hexdigest()
        return hashlib.sha1(self.counter_key + inner.encode()).hexdigest().encode()

    def counter_value(self, key: bytes, entry: bytes) -> int | None:
        """The int in a counter entry; None if ``entry`` is not one (only with
        ``bare_ints``). Raises :class:`EntryRejected` for a counter entry without a
        valid MAC while signing is on."""
        if not self.bare_ints or len(entry) > 62:
            return None
        if _BARE_INT.fullmatch(entry):
            if self.counter_key:
                raise EntryRejected("unsigned counter while signing is on")
            return int(entry)
        found = _SIGNED_INT.fullmatch(entry)
        if found is None:
            return None
        digits, mac = found.groups()
        if not self.counter_key:
            raise EntryRejected("a signed counter, and no secret to check it")
        if not hmac.compare_digest(self._counter_mac(key, digits), mac):
            raise EntryRejected("bad counter signature (tampered, or another key)")
        return int(digits)

    def _seal(self, key: bytes, tag: int, payload: Payload, expires_at: float) -> bytes:
        if self.secret is None:
            return b"".join((payload, TRAILER.pack(expires_at, tag, LEAD)))
        trailer = TRAILER.pack(expires_at, tag | SIGNED, LEAD)
        return b"".join((payload, self._mac(key, payload, trailer), trailer))

    def open(self, key: bytes, entry: bytes) -> tuple[int, float, Payload]:
        """Check an entry and return ``(tag, expires_at, payload)`` without loading it.

        Raises :class:`EntryRejected` for anything this envelope must not trust.
        """
        counter = self.counter_value(key, entry)
        if counter is not None:
            return TAG_INT, 0.0, b"%d" % counter
        try:
            expires_at, flags, lead = TRAILER.unpack_from(entry, -TRAILER_SIZE)
        except struct.error:
            raise EntryRejected("too short to be an entry") from None
        if lead != LEAD:
            raise EntryRejected("not written by flask-uwsgicache (or another version)")
        data: Payload = entry if len(entry) < VIEW_FROM else memoryview(entry)
        if flags & SIGNED:
            end = len(entry) - TRAILER_SIZE - MAC_SIZE
            if end < 0:
                raise EntryRejected("truncated signature")
            if self._mac_base is not None and not hmac.compare_digest(
                self._mac(key, data[:end], data[-TRAILER_SIZE:]),
                data[end : end + MAC_SIZE],
            ):
                raise EntryRejected(
                    "bad signature (tampered, or written under another key)"
                )
            return flags & TAG_MASK, expires_at, data[:end]
        if self._mac_base is not None:
            raise EntryRejected("unsigned entry while signing is on")
        return flags, expires_at, data[:-TRAILER_SIZE]

    def decode(self, key: bytes, entry: bytes) -> Any:
        """The value stored in ``entry``, or :data:`MISSING` if it has expired.

        Raises :class:`EntryRejected` for a corrupt, foreign or badly signed entry.
        This is the one decoder of entries, and the cache's hot read path: a trusted
        entry (unsigned, or signed and verified before in this process) costs one
        trailer unpack, one dict lookup and the loader.
        """
        try:
            expires_at, tail = _unpack_tail(entry, -TRAILER_SIZE)
            reader = self.readers.get(tail)  # the flags byte and LEAD, in one lookup
        except struct.error:  # shorter than a trailer
            reader = None
        if reader is None:
            # A counter entry (digits: never a trailer), or what must be rejected.
            counter = self.counter_value(key, entry)
            if counter is not None:
                return counter
            self.open(key, entry)  # raises with the reason, or:
            raise EntryRejected(f"payload tag {entry[-4] & TAG_MASK} is not allowed here")
        load, end, verify = reader
        if verify and self.verified.get(key) != entry:
            # Verified before the expiry is trusted: a forged expiry is logged too.
            self.open(key, entry)
            if len(entry) <= _VERIFIED_ENTRY:
                self._remember(key, entry)
        if expires_at and expires_at <= self.clock():
            return MISSING
        try:
            if end is None:
                return load(entry)
            return load(entry[:end] if len(entry) < VIEW_FROM else memoryview(entry)[:end])
        except Exception as exc:
            raise EntryRejected(
                f"payload does not load ({exc.__class__.__name__})"
            ) from None

    def _remember(self, key: bytes, entry: bytes) -> None:
        """Note ``entry`` as verified under ``key`` (within the memo's bounds)."""
        if self._verified_bytes + len(entry) > _VERIFIED_TOTAL:
            self.verified.clear()
            self._verified_bytes = 0
        old = self.verified.get(key)
        self._verified_bytes += len(entry) - (len(old) if old is not None else 0)
        self.verified[key] = entry

    def reseal(self, key: bytes, entry: bytes, expires_at: float) -> bytes:
        """``entry`` with a new expiry, re-signed. Raises like :meth:`open`.

        A counter entry is returned as it is: its expiry is the store's (the caller's
        write passes the new one)."""
        if self.counter_value(key, entry) is not None:
            return entry
        tag, _expires_at, payload = self.open(key, entry)
        return self._seal(key, tag, payload, expires_at)

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
        expires_at, _flags, lead = TRAILER.unpack_from(entry, -TRAILER_SIZE)
    except struct.error:
        return None
    return float(expires_at) if lead == LEAD else None
