"""Counters: ``inc`` and ``dec`` of the key-value cache, exact across processes.

Where the store has atomic counters (Redis: :attr:`Backend.native_counters`), one
scripted call adds and signs (:mod:`flask_uwsgicache.envelope`'s counter entries);
elsewhere the read and the write happen under the backend's shared lock, because
uWSGI's own ``cache_inc`` does not accumulate in ``bitmap`` caches and cannot return the
new value (docs/uwsgi-cache2-facts.rst §6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .backends.base import Backend
from .envelope import COUNTER_MAX, COUNTER_MIN, MISSING, EntryRejected, Envelope, expiry_of
from .errors import CacheError, CounterOverflowError, InvalidKeyError, NotACounterError
from .logs import RateLimitedLog


class Counted(Protocol):
    """What counting needs of the cache (:class:`~flask_uwsgicache.cache.KeyValueCache`)."""

    backend: Backend
    envelope: Envelope
    log: RateLimitedLog

    @property
    def clock(self) -> Callable[[], float]: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def storage_key(self, key: str) -> bytes: ...
    def _expiry(self, timeout: float | None) -> tuple[float, float]: ...
    def _find(self, key: str) -> tuple[bytes, bytes] | None: ...
    def _rejected(self, key: bytes, error: EntryRejected) -> None: ...
    def _write(self, *write_key_entry_ttl: Any) -> Any: ...


def count(cache: Counted, key: str, delta: int, timeout: float | None) -> int:
    """Add ``delta`` to the counter under ``key``; the new value (see
    :meth:`~flask_uwsgicache.cache.KeyValueCache.inc`)."""
    if type(delta) is not int:
        raise TypeError(f"delta must be an int, not {type(delta).__name__}")
    try:
        if not COUNTER_MIN <= delta <= COUNTER_MAX:
            raise CounterOverflowError(
                f"delta {delta} is outside the signed 64-bit range of counters"
            )
        storage_key = cache.storage_key(key)
        if cache.backend.native_counters:  # one atomic call (Redis' INCRBY)
            return _native_inc(cache, key, storage_key, delta, timeout)
        with cache.backend.lock():
            current, expires_at = _read_counter(cache, key, storage_key)
            if expires_at is None:
                expires_at, ttl = cache._expiry(timeout)
            else:
                # Keep the counter's expiry (a hair ahead: 0 would mean never).
                ttl = max(expires_at - cache.clock(), 0.001) if expires_at else 0
            value = current + delta
            if not COUNTER_MIN <= value <= COUNTER_MAX:
                raise CounterOverflowError(
                    f"{current} + {delta} is outside the signed 64-bit range of counters"
                )
            entry = cache.envelope.encode(storage_key, value, expires_at)
            cache._write(cache.backend.set, storage_key, entry, ttl)
    except (NotACounterError, CounterOverflowError, InvalidKeyError):
        raise
    except CacheError as error:
        cache.log.warning(
            f"inc {type(error).__name__}",
            f"flask-uwsgicache could not count {key!r}: {error}",
        )
        raise
    return value


def _native_inc(
    cache: Counted, key: str, storage_key: bytes, delta: int, timeout: float | None
) -> int:
    """inc by the store's atomic counter. What the store's script cannot tell apart
    is settled here, as on the other backends: a live value that is not an int
    raises, an int too big to be a counter is an overflow, and an entry that is
    no valid one (tampered, a forged counter) counts as missing."""
    ttl = cache._expiry(timeout)[1]
    mac_key = cache.envelope.counter_key
    replacing = b""
    for _ in range(5):
        try:
            return cache.backend.incr(storage_key, delta, ttl, mac_key, replacing)
        except NotACounterError:
            found = cache._find(key)
            if found is not None and cache.envelope.is_live(*found):
                value = cache.get(key)
                if type(value) is int and COUNTER_MIN <= value <= COUNTER_MAX:
                    replacing = b""  # a counter by now (another process's inc)
                    continue
                if type(value) is int:
                    raise CounterOverflowError(
                        f"the int under {key!r} is outside the signed 64-bit range "
                        f"of counters"
                    ) from None
                raise NotACounterError(
                    f"cannot inc/dec key {key!r}: it holds something other than "
                    f"an int. It was left unchanged; delete it or use another key."
                ) from None
            # Invalid or expired: replaced by the script only if it is still what
            # was seen here, so that no concurrent inc is lost.
            replacing = found[1] if found is not None else b""
            cache._rejected(storage_key, EntryRejected("not a counter; counted from 0"))
    raise NotACounterError(f"key {key!r} kept changing under inc; try again")


def _read_counter(cache: Counted, key: str, storage_key: bytes) -> tuple[int, float | None]:
    """``(value, expires_at)`` of a live counter, ``(0, None)`` if there is none."""
    entry = cache.backend.get(storage_key)
    if entry is None:
        return 0, None
    try:
        value = cache.envelope.decode(storage_key, entry)
        expires_at = expiry_of(entry)
    except EntryRejected as error:
        cache._rejected(storage_key, error)
        return 0, None
    if value is MISSING:
        return 0, None
    if type(value) is not int:
        raise NotACounterError(
            f"cannot inc/dec key {key!r}: it holds a {type(value).__name__}, not an "
            f"int. It was left unchanged; delete it or use another key."
        )
    return value, expires_at
