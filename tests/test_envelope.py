"""The stored format: raw paths, expiry, signatures, and rejection of anything else."""

from __future__ import annotations

import random

import pytest

from flask_uwsgicache.envelope import (
    MISSING,
    EntryRejected,
    Envelope,
    derive_secret,
    expiry_of,
)
from flask_uwsgicache.serializers import get_serializer


def envelope(secret: bytes | None = derive_secret("s"), now: float = 1000.0) -> Envelope:
    return Envelope(get_serializer("pickle"), secret, lambda: now)


def test_an_entry_round_trips_with_its_expiry() -> None:
    entry = envelope().encode(b"k", {"a": 1}, 1010.0)
    assert envelope().decode(b"k", entry) == {"a": 1}
    assert expiry_of(entry) == 1010.0
    assert envelope(now=1010.0).decode(b"k", entry) is MISSING


def test_signatures_bind_the_key_and_the_secret() -> None:
    entry = envelope().encode(b"k", "v", 0)
    with pytest.raises(EntryRejected, match="signature"):
        envelope().decode(b"other", entry)
    with pytest.raises(EntryRejected, match="signature"):
        envelope(derive_secret("another")).decode(b"k", entry)


def test_an_unsigned_entry_is_rejected_when_signing_is_on() -> None:
    entry = envelope(None).encode(b"k", "v", 0)
    with pytest.raises(EntryRejected, match="unsigned"):
        envelope().decode(b"k", entry)


def test_reseal_changes_only_the_expiry() -> None:
    entry = envelope().encode(b"k", [1], 1001.0)
    resealed = envelope().reseal(b"k", entry, 2000.0)
    assert expiry_of(resealed) == 2000.0
    assert envelope(now=1500.0).decode(b"k", resealed) == [1]


@pytest.mark.parametrize("secret", [derive_secret("s"), None])
def test_random_bytes_never_raise_anything_but_rejection(secret: bytes | None) -> None:
    rng = random.Random(1234)
    valid = envelope(secret).encode(b"k", {"a": [1, 2]}, 0)
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        else:
            damaged = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            data = bytes(damaged)
        try:
            value = envelope(secret).decode(b"k", data)
        except EntryRejected:
            continue
        if secret is not None:
            assert data == valid and value == {"a": [1, 2]}
        # Unsigned, a damaged entry may decode (nothing can tell), but any other
        # exception than EntryRejected (struct.error, UnpicklingError...) fails here.
    # The control: the valid entry itself decodes on both.
    assert envelope(secret).decode(b"k", valid) == {"a": [1, 2]}


def test_unsigned_entries_are_checked_for_their_form() -> None:
    unsigned = envelope(None)
    entry = unsigned.encode(b"k", {"a": 1}, 0)
    assert unsigned.decode(b"k", entry) == {"a": 1}
    with pytest.raises(EntryRejected, match="not written by flask-uwsgicache"):
        unsigned.decode(b"k", entry[:-1] + b"\x09")  # another format version
    with pytest.raises(EntryRejected, match="too short"):
        unsigned.decode(b"k", b"abc")
    with pytest.raises(EntryRejected, match="does not load"):
        unsigned.decode(b"k", b"\x80garbage" + entry[-12:])  # a pickle that fails
    signed = envelope().encode(b"k", "v", 0)
    assert unsigned.decode(b"k", signed) == "v"  # read, not verified: no secret
