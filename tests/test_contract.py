"""The cache contract, run on every backend (memory here, uwsgi inside real uWSGI), and
with both implementations of get and set: the C speedups and the Python methods."""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from typing import Any

import pytest

from flask_uwsgicache import (
    BoundCache,
    CacheFullError,
    CounterOverflowError,
    InvalidKeyError,
    NotACounterError,
    ValueTooLargeError,
)
from flask_uwsgicache.backends.cache2store import Cache2Store
from flask_uwsgicache.cache2 import Cache2Options
from flask_uwsgicache.envelope import TAG_BYTES, TAG_STR, Envelope
from flask_uwsgicache.serializers import get_serializer

Advance = Callable[[float], None]
Lines = Callable[[], list[str]]

pytestmark = pytest.mark.parametrize("implementation", ["c", "python"], indirect=True)

PLANTED: list[str] = []


def record_planted(text: str) -> None:
    PLANTED.append(text)


class Exploit:
    """A pickle that records that it ran, to prove hostile pickles are never loaded.

    Its payload calls a module-level function (pickled by reference): a bound method
    such as ``PLANTED.append`` would pickle the list by value, and loading it would
    append to a copy that no test can see."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (record_planted, ("pickle payload ran",))


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1, 2, 3]},
        [1, "two", 3.0],
        ("a", 1),
        "text é",
        b"\x00bytes\xff",
        42,
        -(2**70),
        3.5,
        None,
        True,
        False,
        0,
        "",
        b"",
    ],
)
def test_set_then_get_returns_an_equal_value(cache: BoundCache, value: Any) -> None:
    assert cache.set("k", value) is True
    got = cache.get("k", default="missing")
    assert got == value
    assert type(got) is type(value)


def test_get_of_a_missing_key_returns_the_default(cache: BoundCache) -> None:
    assert cache.get("nope") is None
    assert cache.get("nope", default=7) == 7


def test_set_replaces_an_existing_value(cache: BoundCache) -> None:
    cache.set("k", "one")
    assert cache.set("k", "two") is True
    assert cache.get("k") == "two"


def test_add_stores_only_when_the_key_is_free(cache: BoundCache) -> None:
    assert cache.add("k", "first") is True
    assert cache.add("k", "second") is False
    assert cache.get("k") == "first"


def test_add_replaces_an_expired_entry(cache: BoundCache, advance: Advance) -> None:
    cache.set("k", "old", timeout=1)
    advance(1.2)
    assert cache.add("k", "new") is True
    assert cache.get("k") == "new"


def test_delete_reports_whether_a_live_value_was_removed(cache: BoundCache) -> None:
    cache.set("k", 1)
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


def test_has_reports_live_entries_only(cache: BoundCache, advance: Advance) -> None:
    cache.set("k", 1, timeout=1)
    assert cache.has("k") is True
    assert cache.has("other") is False
    advance(1.2)
    assert cache.has("k") is False


def test_many_variants(cache: BoundCache) -> None:
    assert cache.set_many({"a": 1, "b": "two"}) == ["a", "b"]
    assert cache.get_many("a", "b", "c") == [1, "two", None]
    assert cache.get_dict("a", "c") == {"a": 1, "c": None}
    assert cache.delete_many("a", "c") == ["a"]
    assert cache.get("a") is None


def test_an_entry_expires_exactly(cache: BoundCache, advance: Advance) -> None:
    cache.set("k", "v", timeout=1)
    assert cache.get("k") == "v"
    advance(1.2)
    assert cache.get("k") is None


def test_timeout_zero_never_expires(cache: BoundCache, advance: Advance) -> None:
    cache.default_timeout = 1
    cache.set("forever", "v", timeout=0)
    cache.set("default", "v")
    advance(1.2)
    assert cache.get("forever") == "v"
    assert cache.get("default") is None


def test_set_passes_the_timeout_again_on_update(
    cache: BoundCache, advance: Advance
) -> None:
    cache.set("k", "immortal", timeout=0)
    cache.set("k", "short", timeout=1)
    advance(1.2)
    assert cache.get("k") is None


def test_touch_extends_a_live_entry(cache: BoundCache, advance: Advance) -> None:
    cache.set("k", "v", timeout=1)
    assert cache.touch("k", timeout=3) is True
    advance(1.2)
    assert cache.get("k") == "v"
    assert cache.touch("missing") is False


def test_negative_timeout_is_a_value_error(cache: BoundCache) -> None:
    with pytest.raises(ValueError, match="timeout"):
        cache.set("k", 1, timeout=-1)


@pytest.mark.parametrize(
    "key",
    [
        "x" * 61,
        "x" * 2049,
        "é" * 40_000,
        "k" * 65_536,
        "🗝️ unicode",
        "lone \ud800 surrogate",
        "with\x00nul",
    ],
)
def test_keys_of_any_length_and_content_work(cache: BoundCache, key: str) -> None:
    assert cache.set(key, "v") is True
    assert cache.get(key) == "v"
    assert cache.delete(key) is True


def test_long_keys_with_a_common_head_stay_distinct(cache: BoundCache) -> None:
    head = "h" * 5000
    cache.set(head + "a", 1)
    cache.set(head + "b", 2)
    assert (cache.get(head + "a"), cache.get(head + "b")) == (1, 2)


def test_short_keys_are_stored_readable(cache: BoundCache) -> None:
    cache.set("user:42", 1)
    assert b"user:42" in cache.backend.keys()


def test_keys_that_are_not_str_are_refused(cache: BoundCache, log_lines: Lines) -> None:
    assert cache.set(42, "v") is False  # type: ignore[arg-type]
    assert cache.get(42) is None  # type: ignore[arg-type]
    assert any("str" in line for line in log_lines())


def test_an_empty_key_is_refused_and_logged(cache: BoundCache, log_lines: Lines) -> None:
    assert cache.set("", "v") is False
    assert cache.get("") is None
    assert any("empty" in line for line in log_lines())
    cache.raise_errors = True
    with pytest.raises(InvalidKeyError):
        cache.set("", "v")


def test_a_value_too_large_is_refused_with_its_size(
    cache: BoundCache, log_lines: Lines
) -> None:
    cache.set("k", "small")
    too_large = b"x" * (cache.backend.max_value_size + 1)
    assert cache.set("k", too_large) is False
    assert cache.get("k") == "small"
    limit = str(cache.backend.max_value_size)
    assert any(limit in line and "bytes" in line for line in log_lines())
    cache.raise_errors = True
    hint = cache.backend.too_large_hint()
    with pytest.raises(ValueTooLargeError, match=re.escape(f"can hold{hint}")) as refused:
        cache.set("k", too_large)
    if cache.backend.bounded:  # a cache2 store names the option to raise
        assert "can hold (blocksize" in str(refused.value)
    assert cache.get("k") == "small"


def slots(cache: BoundCache) -> Cache2Options:
    """The cache2 line of a store with one (tests marked ``bounded``)."""
    assert isinstance(cache.backend, Cache2Store)
    return cache.backend.options


def fill(cache: BoundCache) -> int:
    """Store one small entry per usable slot; returns how many. For tests marked
    ``bounded`` (tests/test_redis.py fills a Redis by its memory instead)."""
    assert cache.backend.bounded
    usable = slots(cache).usable_items
    for number in range(usable):
        assert cache.set(f"fill{number}", number, timeout=0), number
    return usable


@pytest.mark.bounded
def test_a_full_cache_refuses_new_keys_and_keeps_the_rest(
    cache: BoundCache, log_lines: Lines
) -> None:
    usable = fill(cache)
    if slots(cache).purge_lru:
        # purge_lru caches evict the least recently used entry instead of refusing.
        assert cache.set("newest", 1) is True
        assert cache.get("newest") == 1
        assert sum(cache.has(f"fill{n}") for n in range(usable)) == usable - 1
        return
    before = len(log_lines())
    results = [cache.set(f"extra{number}", number) for number in range(30)]
    assert results == [False] * 30
    assert cache.add("extra", 1) is False
    refusals = log_lines()[before:]
    assert 1 <= len(refusals) <= 2, refusals
    assert "full" in refusals[0]
    assert [cache.get(f"fill{n}") for n in range(usable)] == list(range(usable))
    assert cache.set("fill0", "updated") is True
    assert cache.get("fill0") == "updated"
    cache.raise_errors = True
    with pytest.raises(CacheFullError, match="items"):
        cache.set("extra", 1)


@pytest.mark.bounded
def test_expired_entries_make_room_in_a_full_cache(
    cache: BoundCache, advance: Advance
) -> None:
    usable = slots(cache).usable_items
    for number in range(usable):
        assert cache.set(f"fill{number}", number, timeout=1)
    advance(1.2)
    assert cache.set("fresh", 1) is True
    assert cache.add("fresh2", 2) is True


@pytest.mark.bounded
def test_a_full_cache_is_swept_at_most_once_a_second(
    cache: BoundCache, advance: Advance
) -> None:
    usable = slots(cache).usable_items
    if slots(cache).purge_lru:
        # purge_lru caches evict instead of refusing: no write ever waits for a sweep.
        assert all(cache.set(f"new{number}", number) for number in range(2 * usable))
        return
    for number in range(usable):
        assert cache.set(f"old{number}", number, timeout=1)
    advance(1.2)
    assert cache.set("fresh", 1) is True  # a sweep freed the dead entries
    number = 0
    while number < usable and cache.set(f"short{number}", number, timeout=0.2):
        number += 1
    advance(0.4)  # all dead, but the last sweep was less than a second ago
    assert cache.set("refused", 1) is False
    advance(0.8)
    assert cache.set("swept", 1) is True


def test_inc_and_dec_return_the_new_value(cache: BoundCache) -> None:
    assert cache.inc("n") == 1
    assert cache.inc("n", 5) == 6
    assert cache.dec("n", 2) == 4
    assert cache.get("n") == 4
    cache.set("m", 10)
    assert cache.inc("m") == 11


def test_inc_on_a_non_counter_leaves_it_unchanged(cache: BoundCache) -> None:
    cache.set("s", "hello world!")
    with pytest.raises(NotACounterError):
        cache.inc("s")
    assert cache.get("s") == "hello world!"
    cache.set("b", True)
    with pytest.raises(NotACounterError):
        cache.inc("b")


def test_inc_keeps_an_existing_expiry(cache: BoundCache, advance: Advance) -> None:
    cache.inc("n", timeout=1)
    cache.inc("n")
    advance(1.2)
    assert cache.get("n") is None
    assert cache.inc("n") == 1


def test_counters_count_in_the_signed_64_bit_range_everywhere(cache: BoundCache) -> None:
    top, bottom = 2**63 - 1, -(2**63)
    assert cache.inc("n", top) == top
    with pytest.raises(CounterOverflowError, match="64-bit"):
        cache.inc("n")
    assert cache.get("n") == top  # unchanged
    assert cache.dec("n", top) == 0
    assert cache.dec("n", top) == -top
    assert cache.dec("n") == bottom
    with pytest.raises(CounterOverflowError):
        cache.dec("n")
    assert cache.get("n") == bottom
    with pytest.raises(CounterOverflowError):
        cache.inc("m", 2**63)
    with pytest.raises(CounterOverflowError):
        cache.dec("m", 2**63 + 1)
    assert cache.get("m") is None
    cache.set("big", 2**70)  # an int, but not a counter's
    with pytest.raises(CounterOverflowError):
        cache.inc("big")
    assert cache.get("big") == 2**70
    with pytest.raises(TypeError):
        cache.inc("n", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        cache.dec("n", "1")  # type: ignore[arg-type]


def test_inc_raises_a_refused_write(cache: BoundCache) -> None:
    with pytest.raises(InvalidKeyError):
        cache.inc("")
    assert cache.raise_errors is False
    assert cache.set("", 1) is False  # the control: set() says False for the same


@pytest.mark.bounded
def test_inc_on_a_full_cache_raises_and_logs_it(
    cache: BoundCache, log_lines: Lines
) -> None:
    fill(cache)
    if slots(cache).purge_lru:
        assert cache.inc("one-more") == 1  # the control: LRU makes room
        return
    assert cache.set("one-more", 1) is False  # the control: set() says False
    # inc raises even then: it has no False to return (False == 0), and a counter
    # must not silently stop counting.
    with pytest.raises(CacheFullError):
        cache.inc("one-more")
    assert any("could not count 'one-more'" in line for line in log_lines())
    assert cache.inc("fill0") == 1  # an existing counter still counts


def test_a_tampered_counter_counts_as_missing(cache: BoundCache) -> None:
    assert cache.envelope.secret is not None  # the fixture's app signs
    storage_key = cache.storage_key("n")
    assert cache.inc("n", 5) == 5
    entry = cache.backend.get(storage_key)
    assert entry is not None
    # Written by someone without the secret: bare digits (what Redis' INCRBY would
    # take), or the entry with one bit of its MAC changed.
    flipped = entry[:-13] + bytes([entry[-13] ^ 1]) + entry[-12:]
    for forged in (b"7", flipped):
        cache.backend.set(storage_key, forged, 0)
        assert cache.get("n") is None
        assert cache.inc("n") == 1
        assert cache.inc("n") == 2  # the control: a real counter counts on
        assert cache.get("n") == 2


def test_prefixes_keep_apps_apart(cache: BoundCache) -> None:
    other = BoundCache(cache.backend, cache.envelope, key_prefix="other:")
    mine = BoundCache(cache.backend, cache.envelope, key_prefix="mine:")
    mine.set("k", "mine")
    other.set("k", "other")
    assert (mine.get("k"), other.get("k")) == ("mine", "other")
    assert mine.clear() is True
    assert mine.get("k") is None
    assert other.get("k") == "other"


def test_prefixes_that_start_alike_never_reach_each_others_entries(
    cache: BoundCache,
) -> None:
    shop = BoundCache(cache.backend, cache.envelope, key_prefix="shop:")
    admin = BoundCache(cache.backend, cache.envelope, key_prefix="shop:admin:")
    admin.set("x", "admin's")
    # Without a fence, shop's "admin:x" would be the same storage key as admin's "x".
    assert shop.get("admin:x") is None
    assert shop.set("admin:x", "shop's") is True
    assert admin.get("x") == "admin's"
    assert shop.clear() is True
    assert admin.get("x") == "admin's"
    assert admin.clear() is True
    assert admin.get("x") is None
    # the control: each still reads its own entries
    shop.set("k", 1)
    assert shop.get("k") == 1


def test_clear_without_prefix_empties_the_cache(cache: BoundCache) -> None:
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.clear() is True
    assert cache.get_many("a", "b") == [None, None]


def test_bytes_and_str_are_stored_raw(cache: BoundCache) -> None:
    cache.set("b", b"raw")
    cache.set("s", "text")
    for key, tag, payload in (("b", TAG_BYTES, b"raw"), ("s", TAG_STR, b"text")):
        storage_key = cache.storage_key(key)
        entry = cache.backend.get(storage_key)
        assert entry is not None
        opened_tag, _expires, opened = cache.envelope.open(storage_key, entry)
        assert (opened_tag, bytes(opened)) == (tag, payload)
        assert entry.startswith(payload)


def test_values_are_copies(cache: BoundCache) -> None:
    value = {"list": [1]}
    cache.set("k", value)
    value["list"].append(2)
    got = cache.get("k")
    assert got == {"list": [1]}
    got["list"].append(3)
    assert cache.get("k") == {"list": [1]}


def test_an_entry_copied_under_another_key_is_rejected(
    cache: BoundCache, log_lines: Lines
) -> None:
    cache.set("admin", {"role": "admin"})
    entry = cache.backend.get(cache.storage_key("admin"))
    assert entry is not None
    cache.backend.set(cache.storage_key("guest"), entry, 0)
    assert cache.get("guest") is None
    assert any("signature" in line for line in log_lines())


@pytest.mark.parametrize(
    "damage",
    [
        lambda entry: entry[:-1] + bytes([entry[-1] ^ 1]),
        lambda entry: entry[:5],
        lambda entry: entry[1:],
        lambda entry: b"foreign bytes",
        lambda entry: b"\x00",
    ],
    ids=["flipped bit", "truncated trailer", "payload byte dropped", "foreign", "one byte"],
)
def test_a_damaged_entry_is_a_logged_miss(
    cache: BoundCache, log_lines: Lines, damage: Callable[[bytes], bytes]
) -> None:
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}  # verified once: must not vouch for other bytes
    storage_key = cache.storage_key("k")
    entry = cache.backend.get(storage_key)
    assert entry is not None
    cache.backend.set(storage_key, damage(entry), 0)
    assert cache.get("k", "default") == "default"
    assert cache.has("k") is False
    assert len(log_lines()) == 1


def test_a_planted_pickle_is_never_loaded(cache: BoundCache, log_lines: Lines) -> None:
    assert cache.envelope.secret is not None  # the fixture's app signs
    unsigned = Envelope(get_serializer("pickle"), None, cache.clock)
    wrapped, bare = cache.storage_key("wrapped"), cache.storage_key("bare")
    # A pickle in an unsigned entry (what an app without signing writes), and a bare
    # pickle, as anything that can write to the store could plant them.
    cache.backend.set(wrapped, unsigned.encode(wrapped, Exploit(), 0), 0)
    cache.backend.set(bare, pickle.dumps(Exploit()), 0)
    for key in ("wrapped", "bare"):
        assert cache.get(key, "default") == "default"
        assert cache.get_many(key) == [None]
        assert cache.has(key) is False
        assert cache.add(key, "mine") is True  # replaced, never read
        assert cache.get(key) == "mine"
    assert PLANTED == []
    assert "unsigned entry while signing is on" in log_lines()[0]
    # The control: the same entries are loaded by an app that does not sign (the
    # pickle runs), so the test above can see a load.
    open_cache = BoundCache(cache.backend, unsigned)
    cache.backend.set(wrapped, unsigned.encode(wrapped, Exploit(), 0), 0)
    open_cache.get("wrapped")
    assert PLANTED == ["pickle payload ran"]
    PLANTED.clear()


def test_a_json_cache_never_loads_a_pickle(cache: BoundCache) -> None:
    json_envelope = Envelope(get_serializer("json"), None, cache.clock)
    json_cache = BoundCache(cache.backend, json_envelope, key_prefix="j:")
    unsigned = Envelope(get_serializer("pickle"), None, cache.clock)
    storage_key = json_cache.storage_key("k")
    cache.backend.set(storage_key, unsigned.encode(storage_key, Exploit(), 0), 0)
    assert json_cache.get("k") is None
    assert PLANTED == []
    json_cache.set("ok", {"a": [1, 2]})
    assert json_cache.get("ok") == {"a": [1, 2]}


def test_an_unserializable_value_is_refused(cache: BoundCache, log_lines: Lines) -> None:
    assert cache.set("k", lambda: None) is False
    assert any("serializer" in line for line in log_lines())


def test_get_or_set_computes_on_a_miss_only(cache: BoundCache) -> None:
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        return "computed"

    assert cache.get_or_set("k", compute) == "computed"
    assert cache.get_or_set("k", compute) == "computed"
    assert calls == [1]
    assert cache.get_or_set("plain", 5) == 5


def test_stats_describe_the_cache(
    cache: BoundCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.set("k", 1)
    assert cache.stats(entries=True)["entries"] == 1

    def listed() -> list[bytes]:
        raise AssertionError("stats() listed every key of the store")

    listed_keys = len(cache.backend.keys())
    monkeypatch.setattr(cache.backend, "keys", listed)
    stats = cache.stats()  # costs the same whatever the store holds: lists no key
    assert "entries" not in stats
    on_redis = stats["backend"] in ("redis", "tiered")
    if on_redis:
        assert stats["items_used"] is None  # Redis cannot tell a namespace's size
    else:
        assert stats["items_used"] == listed_keys >= 1
    assert stats["backend"] in ("memory", "uwsgi", "redis", "tiered")
    assert stats["signed"] is True
    assert stats["items"] == cache.backend.max_items
    assert (stats["items"] is None) == on_redis


BAD_TIMEOUTS = [
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (1e308, ValueError),
    (2**63, ValueError),
    (-1, ValueError),
    (True, TypeError),
    ("60", TypeError),
    ([1], TypeError),
]


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS, ids=repr)
def test_a_bad_timeout_is_refused_the_same_everywhere_and_nothing_is_stored(
    cache: BoundCache, timeout: Any, error: type[Exception]
) -> None:
    calls: list[Callable[[], object]] = [
        lambda: cache.set("k", 1, timeout=timeout),
        lambda: cache.add("k", 1, timeout=timeout),
        lambda: cache.set_many({"k": 1}, timeout=timeout),
        lambda: cache.inc("k", timeout=timeout),
        lambda: cache.get_or_set("k", lambda: 1, timeout=timeout),
    ]
    for call in calls:
        with pytest.raises(error, match=r"timeout is .*from 0 \(never expire\) to"):
            call()
        assert cache.get("k") is None and not cache.has("k")
    # A live entry keeps its own expiry.
    assert cache.set("k", 1, timeout=0)
    with pytest.raises(error, match="timeout"):
        cache.touch("k", timeout=timeout)
    assert cache.get("k") == 1
    # Control: the largest accepted timeout is stored.
    assert cache.set("big", 1, timeout=2**31 - 1) and cache.get("big") == 1
