"""Property tests (hypothesis): keys and values round-trip; the decoder never misleads."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_uwsgicache import BoundCache
from flask_uwsgicache.envelope import MISSING, EntryRejected, Envelope, derive_secret
from flask_uwsgicache.serializers import get_serializer

# Inside uWSGI each example touches shared memory: fewer examples there.
EXAMPLES = 40 if os.environ.get("UWSGICACHE_TEST_CACHE") else 150
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

keys = st.text(min_size=1) | st.text(min_size=1, max_size=5).map(lambda text: text * 3000)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(max_size=10), children, max_size=5)
        | st.tuples(children, children)
    ),
    max_leaves=20,
)


@SETTINGS
@given(key=keys, value=values)
def test_every_key_and_value_round_trips(
    cache: BoundCache, key: str, value: object
) -> None:
    assert cache.set(key, value, timeout=0) is True
    assert cache.get(key, MISSING) == value
    assert cache.delete(key) is True


@SETTINGS
@given(key=keys)
def test_distinct_keys_never_share_an_entry(cache: BoundCache, key: str) -> None:
    cache.set(key, "first", timeout=0)
    cache.set(key + "\x00", "second", timeout=0)
    assert cache.get(key) == "first"
    cache.delete(key)
    cache.delete(key + "\x00")


SIGNED = Envelope(get_serializer("pickle"), derive_secret("secret"), lambda: 1000.0)
VALID = {SIGNED.encode(b"k", value, 0) for value in (1, "text", b"bytes", {"a": [1]})}


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=200) | st.sampled_from(sorted(VALID)).flatmap(
    lambda entry: st.integers(0, len(entry) - 1).flatmap(
        lambda index: st.integers(0, 255).map(
            lambda byte: entry[:index] + bytes([byte]) + entry[index + 1 :]
        )
    )
))  # fmt: skip
def test_the_decoder_never_raises_or_returns_bytes_it_did_not_write(data: bytes) -> None:
    try:
        value = SIGNED.decode(b"k", data)
    except EntryRejected:
        return
    assert data in VALID, value
