"""Read a key or compute it once: single flight across processes, stale-while-revalidate.

The logic is a generator (:func:`plan`) that yields what it needs done: ``COMPUTE`` (call
the function, send back ``(result, to_store)``) or a number of seconds to sleep. Two
small drivers run it, :func:`run` for plain functions and :func:`run_async` for
coroutines, so sync and async views share one implementation.

Single flight: the first process to miss takes a lease (an ``add`` on a side key with a
timeout); the others poll for the value with a growing interval, and compute themselves
when the lease is gone or ``wait`` seconds have passed. A process that dies while
computing holds the lease for at most ``wait`` seconds, because the lease expires.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Final

from .envelope import MISSING

if TYPE_CHECKING:
    from .cache import BoundCache

COMPUTE: Final = object()
NOTHING: Final[Any] = object()
"""``to_store`` for a result that must not be stored (an uncacheable response, say)."""

LEASE_PREFIX = "\x00lease:"
FRESH_PREFIX = "\x00fresh:"
_FIRST_POLL = 0.005
_MAX_POLL = 0.05

Step = Any
Plan = Generator[Step, Any, "Outcome"]


# slots, not frozen: built on every call, and a frozen __init__ costs ~1 µs.
@dataclasses.dataclass(slots=True)
class Outcome:
    """What a lookup did: its value, whether it came from the cache, whether it stored."""

    value: Any
    hit: bool
    refused: bool = False


def keep(stored: Any) -> Any:
    """The default ``decode``: the stored value is the value."""
    return stored


@dataclasses.dataclass(frozen=True)
class Options:
    """How to look up and store one key (see :func:`plan`)."""

    timeout: float | None = None
    single_flight: bool = True
    wait: float = 10.0
    stale_while_revalidate: float = 0.0
    decode: Callable[[Any], Any] = keep
    #: Turn cache faults into misses and refused writes, logged (for decorators).
    quiet: bool = False


class Quiet:
    """A cache whose calls log exceptions and return a neutral result instead."""

    def __init__(self, cache: BoundCache) -> None:
        self.cache = cache
        self.default_timeout = cache.default_timeout
        self.log = cache.log

    def _call(self, method: str, fallback: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.cache, method)(*args, **kwargs)
        except Exception as error:
            self.log.warning(
                "CacheFault",
                f"flask-uwsgicache: {method} failed, going on uncached: {error!r}",
            )
            return fallback

    def get(self, key: str, default: Any = None) -> Any:
        return self._call("get", default, key, default)

    def has(self, key: str) -> bool:
        return bool(self._call("has", False, key))

    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        return bool(self._call("add", False, key, value, timeout))

    def set(self, key: str, value: Any, timeout: float | None = None) -> bool:
        return bool(self._call("set", False, key, value, timeout))

    def delete(self, key: str) -> bool:
        return bool(self._call("delete", False, key))


def read(cache: BoundCache | Quiet, key: str, decode: Callable[[Any], Any]) -> Any:
    """The decoded value under ``key``, or ``MISSING`` (undecodable counts as a miss)."""
    stored = cache.get(key, MISSING)
    if stored is MISSING:
        return MISSING
    try:
        return decode(stored)
    except ValueError as error:
        cache.log.warning("BadStored", f"flask-uwsgicache: ignored {key!r}: {error}")
        return MISSING


def _take_lease(
    cache: BoundCache | Quiet, lease: str, token: str, wait: float
) -> bool | None:
    """True if taken, False if another process holds it, None if the cache refused."""
    if cache.add(lease, token, timeout=wait):
        return True
    return False if cache.has(lease) else None


def _compute_and_store(
    cache: BoundCache | Quiet, key: str, options: Options, lease: str | None, token: str
) -> Plan:
    # The lease is released only after the value is stored: released first, a waiter
    # polling in between would find neither and compute again (seen on Redis, where
    # the gap is a network round trip).
    try:
        result, to_store = yield COMPUTE
        if to_store is NOTHING:
            return Outcome(result, hit=False)
        timeout = cache.default_timeout if options.timeout is None else options.timeout
        swr = options.stale_while_revalidate
        ttl = timeout + swr if swr and timeout else timeout
        stored = cache.set(key, to_store, ttl)
        if not stored and lease is not None and _release(cache, lease, token):
            # In a full cache the lease may hold the last free slot: give it back.
            lease = None
            stored = cache.set(key, to_store, ttl)
        if stored and swr and timeout:
            cache.set(FRESH_PREFIX + key, 1, timeout)
        return Outcome(result, hit=False, refused=not stored)
    finally:
        if lease is not None:
            _release(cache, lease, token)


def _release(cache: BoundCache | Quiet, lease: str, token: str) -> bool:
    """Delete ``lease`` if this process still holds it; True if it did."""
    return cache.get(lease) == token and cache.delete(lease)


def plan(
    cache: BoundCache | Quiet,
    key: str,
    options: Options,
    forced: bool = False,
    *,
    looked: bool = False,
) -> Plan:
    """Look ``key`` up; on a miss compute it (once across processes) and store it.

    ``forced`` computes and stores whatever is there (a forced refresh); ``looked``
    skips only the first lookup (the caller has just looked and missed).
    """
    if options.quiet and not isinstance(cache, Quiet):
        cache = Quiet(cache)
    lease = LEASE_PREFIX + key
    token = f"{os.getpid()}:{time.monotonic_ns()}"
    if not forced and not looked:
        found = read(cache, key, options.decode)
        if found is not MISSING:
            if not options.stale_while_revalidate or cache.has(FRESH_PREFIX + key):
                return Outcome(found, hit=True)
            # Stale: one process refreshes, the others serve the stale copy meanwhile.
            if _take_lease(cache, lease, token, options.wait):
                return (yield from _compute_and_store(cache, key, options, lease, token))
            return Outcome(found, hit=True)
    if not options.single_flight:
        return (yield from _compute_and_store(cache, key, options, None, token))
    deadline = time.monotonic() + options.wait
    interval = _FIRST_POLL
    while True:
        taken = _take_lease(cache, lease, token, options.wait)
        if taken is not False and not forced:
            # Taken, or gone: the holder may have stored the value and let go since
            # this process last read (one network round trip on Redis).
            found = read(cache, key, options.decode)
            if found is not MISSING:
                if taken:
                    cache.delete(lease)
                return Outcome(found, hit=True)
        if taken is None or time.monotonic() >= deadline:
            # The cache refused the lease (full?) or the holder is too slow: go alone.
            return (yield from _compute_and_store(cache, key, options, None, token))
        if taken:
            return (yield from _compute_and_store(cache, key, options, lease, token))
        yield interval
        interval = min(interval * 2, _MAX_POLL)
        found = read(cache, key, options.decode)
        if found is not MISSING:
            return Outcome(found, hit=True)


def run(steps: Plan, compute: Callable[[], tuple[Any, Any]]) -> Outcome:
    """Drive :func:`plan` for a plain function; ``compute`` returns (result, to_store)."""
    try:
        step = next(steps)
        while True:
            if step is COMPUTE:
                try:
                    computed = compute()
                except BaseException as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(computed)
            else:
                time.sleep(step)
                step = next(steps)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome


async def run_async(
    steps: Plan, compute: Callable[[], Awaitable[tuple[Any, Any]]]
) -> Outcome:
    """Drive :func:`plan` for a coroutine function; see :func:`run`."""
    try:
        step = next(steps)
        while True:
            if step is COMPUTE:
                try:
                    computed = await compute()
                except BaseException as error:
                    step = steps.throw(error)
                else:
                    step = steps.send(computed)
            else:
                await asyncio.sleep(step)
                step = next(steps)
    except StopIteration as stop:
        outcome: Outcome = stop.value
        return outcome
