"""The stored format: raw paths, expiry, signatures, and rejection of anything else.

Every test that encodes or decodes runs on both implementations (``codec``): the
envelope's Python methods and the C speedups' fast paths, which hand every case they do
not handle to those methods.
"""

from __future__ import annotations

import random
from typing import Any, Protocol

import pytest

from flask_uwsgicache.envelope import (
    MISSING,
    TRAILER,
    VIEW_FROM,
    EntryRejected,
    Envelope,
    derive_secret,
    expiry_of,
)
from flask_uwsgicache.serializers import get_serializer


class Codec(Protocol):
    name: str

    def encode(self, envelope: Envelope, key: bytes, value: Any, at: float) -> bytes: ...
    def decode(self, envelope: Envelope, key: bytes, entry: bytes) -> Any: ...


def envelope(secret: bytes | None = derive_secret("s"), now: float = 1000.0) -> Envelope:
    return Envelope(get_serializer("pickle"), secret, lambda: now)


def test_an_entry_round_trips_with_its_expiry(codec: Codec) -> None:
    entry = codec.encode(envelope(), b"k", {"a": 1}, 1010.0)
    assert codec.decode(envelope(), b"k", entry) == {"a": 1}
    assert expiry_of(entry) == 1010.0
    assert codec.decode(envelope(now=1010.0), b"k", entry) is MISSING


def test_signatures_bind_the_key_and_the_secret(codec: Codec) -> None:
    entry = codec.encode(envelope(), b"k", "v", 0)
    with pytest.raises(EntryRejected, match="signature"):
        codec.decode(envelope(), b"other", entry)
    with pytest.raises(EntryRejected, match="signature"):
        codec.decode(envelope(derive_secret("another")), b"k", entry)


def test_an_unsigned_entry_is_rejected_when_signing_is_on(codec: Codec) -> None:
    entry = codec.encode(envelope(None), b"k", "v", 0)
    with pytest.raises(EntryRejected, match="unsigned"):
        codec.decode(envelope(), b"k", entry)


def test_reseal_changes_only_the_expiry(codec: Codec) -> None:
    entry = codec.encode(envelope(), b"k", [1], 1001.0)
    resealed = envelope().reseal(b"k", entry, 2000.0)
    assert expiry_of(resealed) == 2000.0
    assert codec.decode(envelope(now=1500.0), b"k", resealed) == [1]


@pytest.mark.parametrize("secret", [derive_secret("s"), None], ids=["signed", "unsigned"])
def test_random_bytes_never_raise_anything_but_rejection(
    codec: Codec, secret: bytes | None
) -> None:
    rng = random.Random(1234)
    valid = codec.encode(envelope(secret), b"k", {"a": [1, 2]}, 0.0)
    reader = envelope(secret)
    # The valid entry verified once: the memo of verified entries must never let a
    # damaged one through.
    assert codec.decode(reader, b"k", valid) == {"a": [1, 2]}
    # Real trailers (and MACs) of the raw kinds, whose loaders (int, str, bytes) get
    # random payloads; not a pickle's: random pickle opcodes import random modules.
    tails = [
        codec.encode(envelope(secret), b"k", value, 0.0)[-size:]
        for value in (7, "text", b"raw")
        for size in (12, 28)
    ]
    for _ in range(4000):
        kind = rng.random()
        if kind < 0.35:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        elif kind < 0.5:  # random bytes before a real trailer
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
            data += rng.choice(tails)
        else:
            damaged = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            data = bytes(damaged)
        try:
            value = codec.decode(reader, b"k", data)
        except EntryRejected:
            continue
        if secret is not None:
            assert data == valid and value == {"a": [1, 2]}
        # Unsigned, a damaged entry may decode (nothing can tell), but any other
        # exception than EntryRejected (struct.error, UnpicklingError...) fails here.
    # The control: the valid entry itself decodes on both.
    assert codec.decode(envelope(secret), b"k", valid) == {"a": [1, 2]}


def test_unsigned_entries_are_checked_for_their_form(codec: Codec) -> None:
    unsigned = envelope(None)
    entry = codec.encode(unsigned, b"k", {"a": 1}, 0)
    assert codec.decode(unsigned, b"k", entry) == {"a": 1}
    with pytest.raises(EntryRejected, match="not written by flask-uwsgicache"):
        codec.decode(unsigned, b"k", entry[:-1] + b"\x09")  # another format version
    with pytest.raises(EntryRejected, match="too short"):
        codec.decode(unsigned, b"k", b"abc")
    with pytest.raises(EntryRejected, match="does not load"):
        codec.decode(unsigned, b"k", b"\x80garbage" + entry[-12:])  # a pickle that fails
    signed = codec.encode(envelope(), b"k", "v", 0)
    assert codec.decode(unsigned, b"k", signed) == "v"  # read, not verified: no secret


VALUES: list[Any] = [
    {},
    [],
    {"id": 42, "name": "a user name", "roles": ["admin", "editor"], "score": 3.5},
    [1, "two", 3.0, None, {"nested": [b"bytes", ("a", 1)]}],
    {"big": "x" * (2 * VIEW_FROM)},
    "text é",
    b"raw",
    7,
    (1, 2),
]
KEYS = [b"k", b"\xffprefix\x00user:key", "é".encode() * 40, b"x" * 300]


@pytest.mark.parametrize("secret", [derive_secret("s"), None], ids=["signed", "unsigned"])
def test_the_c_encoder_writes_the_bytes_the_python_one_writes(
    speedups: Any, secret: bytes | None
) -> None:
    writer = envelope(secret)
    for key in KEYS:
        for value in VALUES:
            for expires_at in (0.0, 1010.5, 1e9 + 0.25):
                python = writer.encode(key, value, expires_at)
                assert speedups.encode(writer, key, value, expires_at) == python
                reader = envelope(secret, now=1000.0)
                assert speedups.decode(reader, key, python) == value
                assert speedups.decode(reader, key, python) == value  # memoised now


def test_an_entry_expires_exactly_at_its_expiry(codec: Codec) -> None:
    for secret in (derive_secret("s"), None):
        entry = codec.encode(envelope(secret), b"k", {"a": 1}, 1010.0)
        assert codec.decode(envelope(secret, now=1009.999999), b"k", entry) == {"a": 1}
        assert codec.decode(envelope(secret, now=1010.0), b"k", entry) is MISSING
        assert codec.decode(envelope(secret, now=1010.000001), b"k", entry) is MISSING


def test_a_clock_replaced_after_construction_is_the_one_read(codec: Codec) -> None:
    reader = envelope(None)
    entry = codec.encode(reader, b"k", [1], 1010.0)
    assert codec.decode(reader, b"k", entry) == [1]
    reader.clock = lambda: 2000.0
    assert codec.decode(reader, b"k", entry) is MISSING
    reader.clock = lambda: 1000  # an int: compared as Python compares
    assert codec.decode(reader, b"k", entry) == [1]


def test_a_valid_looking_trailer_with_a_bad_mac_is_rejected(codec: Codec) -> None:
    signer = envelope()
    entry = codec.encode(signer, b"k", {"a": 1}, 0.0)
    assert codec.decode(signer, b"k", entry) == {"a": 1}  # verified and memoised
    planted = entry[:-28] + bytes(16) + entry[-12:]  # the MAC zeroed
    with pytest.raises(EntryRejected, match="signature"):
        codec.decode(signer, b"k", planted)
    other = codec.encode(signer, b"k", {"a": 2}, 0.0)
    forged = other[:-28] + entry[-28:-12] + other[-12:]  # another entry's MAC
    with pytest.raises(EntryRejected, match="signature"):
        codec.decode(signer, b"k", forged)
    assert codec.decode(signer, b"k", entry) == {"a": 1}
    signer.verified.clear()  # cleared in place: verified again, still valid
    assert codec.decode(signer, b"k", entry) == {"a": 1}


def test_short_and_truncated_entries_are_rejected(codec: Codec) -> None:
    unsigned, signed = envelope(None), envelope()
    entry = codec.encode(signed, b"k", {"a": 1}, 0.0)
    for reader in (unsigned, signed):
        for short in (b"", b"x", entry[-11:]):
            with pytest.raises(EntryRejected, match="too short"):
                codec.decode(reader, b"k", short)
    with pytest.raises(EntryRejected, match="truncated signature"):
        codec.decode(signed, b"k", entry[-20:])
    # A trailer and nothing before it: no pickle to load.
    with pytest.raises(EntryRejected, match="does not load"):
        codec.decode(unsigned, b"k", codec.encode(unsigned, b"k", {}, 0.0)[-12:])
    # Without a secret a signed entry is read unverified; shorter than its MAC, its
    # payload is empty (as the Python decoder slices it).
    tail = TRAILER.pack(0.0, 0x10, b"uC\x02")
    assert codec.decode(unsigned, b"k", b"abc" + tail) == b""


def test_counter_entries_are_read_as_ints(codec: Codec) -> None:
    plain = Envelope(get_serializer("pickle"), None, lambda: 1000.0, bare_ints=True)
    assert codec.decode(plain, b"k", b"42") == 42
    assert codec.decode(plain, b"k", b"-9223372036854775808") == -(2**63)
    signing = Envelope(
        get_serializer("pickle"), derive_secret("s"), lambda: 1000.0, bare_ints=True
    )
    entry = codec.encode(signing, b"k", 42, 0.0)
    assert codec.decode(signing, b"k", entry) == 42
    with pytest.raises(EntryRejected, match="unsigned counter"):
        codec.decode(signing, b"k", b"42")


def test_large_entries_are_read_through_a_view(codec: Codec) -> None:
    for secret in (derive_secret("s"), None):
        reader = envelope(secret)
        for value in ("é" * VIEW_FROM, b"x" * VIEW_FROM, {"big": "y" * VIEW_FROM}):
            entry = codec.encode(reader, b"k", value, 0.0)
            assert len(entry) > VIEW_FROM
            assert codec.decode(reader, b"k", entry) == value
            assert codec.decode(reader, b"k", entry) == value  # memoised


def test_a_payload_that_does_not_load_is_rejected(codec: Codec) -> None:
    for secret in (derive_secret("s"), None):
        reader = envelope(secret)
        entry = codec.encode(reader, b"k", {"a": 1}, 0.0)
        assert codec.decode(reader, b"k", entry) == {"a": 1}
        # A signed entry of this envelope whose pickle fails (a bad opcode), in the
        # memo of verified entries so that only the loader can reject it.
        broken = reader._seal(b"k", 3, b"\x80\x05\xff", 0.0)
        if secret is not None:
            reader._remember(b"k", broken)
        with pytest.raises(EntryRejected, match="does not load"):
            codec.decode(reader, b"k", broken)
