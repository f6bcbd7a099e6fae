"""Read a key or compute it once: single flight across processes, stale-while-revalidate.

The logic is a generator (:func:`plan`) that yields what it needs done: ``COMPUTE`` (call
the function, send back ``(result, to_store)``) or a number of seconds to sleep. Two
small drivers run it, :func:`run` for plain functions and :func:`run_async` for
coroutines, so sync and async views share one implementation.

Single flight: the first process to miss takes a lease (an ``add`` on a key in the
internal key space, with a timeout); the others poll for the value with a growing
interval, and compute themselves when the lease is gone or ``wait`` seconds have passed.
A process that dies while computing holds the lease for at most ``wait`` seconds,
because the lease expires. When the holder's result is not stored (an error page, say),
it turns the lease into a pass for a second: every waiter computes at once instead of
queueing behind the next holder. A call that meets a lease its own thread (or task)
already holds, a cached function called inside itself, computes directly.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import enum
import os
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, Protocol

from .envelope import MISSING
from .keys import FRESH
from .logs import RateLimitedLog

COMPUTE: Final = object()
NOTHING: Final[Any] = object()
"""``to_store`` for a result that must not be stored (an uncacheable response, say)."""

_FIRST_POLL = 0.005
_MAX_POLL = 0.05
# What a lease holds once its holder computed a result that it did not store, and how
# long: long enough for every waiter to see it (they poll at least every _MAX_POLL).
PASS = "pass"
_PASS_SECONDS = 1.0
# The leases this thread or task holds, so a nested call does not wait for itself.
_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "flask_uwsgicache_leases", default=frozenset()
)


class Store(Protocol):
    """What single flight needs of a cache: the key-value calls and its key spaces
    (:class:`~flask_uwsgicache.cache.KeyValueCache` is one)."""

    default_timeout: float
    log: RateLimitedLog
    space_tag: bytes

    def get(self, key: str, default: Any = None) -> Any: ...
    def has(self, key: str) -> bool: ...
    def add(self, key: str, value: Any, timeout: float | None = None) -> bool: ...
    def set(self, key: str, value: Any, timeout: float | None = None) -> bool: ...
    def delete(self, key: str) -> bool: ...
    def space(self, tag: bytes) -> Store: ...

    @property
    def internal(self) -> Store: ...


def lease_key(cache: Store, key: str) -> str:
    """The internal key of the lease on ``key`` of ``cache`` (in its key space)."""
    return f"lease:{cache.space_tag.hex()}:{key}"


def fresh_marks(cache: Store) -> Store:
    """The space whose entry under a key says that key of ``cache`` is fresh
    (``stale_while_revalidate``): next to the entries, in the same store."""
    return cache.space(cache.space_tag + FRESH)


class Lease(enum.Enum):
    """What trying to take a lease found."""

    TAKEN = "taken"
    HELD = "held by another process"
    PASS = "its holder let everyone compute"
    REFUSED = "the cache refused it"


Step = Any
Plan = Generator[Step, Any, "Outcome"]


# slots, not frozen: built on every call, and a frozen __init__ sets each field
# through object.__setattr__.
@dataclasses.dataclass(slots=True)
class Outcome:
    """What a lookup did: its value, whether it came from the cache, whether it stored."""

    value: Any
    hit: bool
    refused: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Timed:
    """``to_store`` with a timeout of its own (seconds), instead of the options'."""

    value: Any
    timeout: float


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

    def __init__(self, cache: Store) -> None:
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


def read(cache: Store | Quiet, key: str, decode: Callable[[Any], Any]) -> Any:
    """The decoded value under ``key``, or ``MISSING`` (undecodable counts as a miss)."""
    stored = cache.get(key, MISSING)
    if stored is MISSING:
        return MISSING
    try:
        return decode(stored)
    except ValueError as error:
        cache.log.warning("BadStored", f"flask-uwsgicache: ignored {key!r}: {error}")
        return MISSING


def _take_lease(leases: Store | Quiet, lease: str, token: str, wait: float) -> Lease:
    """Try to take ``lease`` for ``wait`` seconds."""
    if leases.add(lease, token, timeout=wait):
        _held.set(_held.get() | {lease})
        return Lease.TAKEN
    holder = leases.get(lease)
    if holder is None:
        return Lease.REFUSED
    return Lease.PASS if holder == PASS else Lease.HELD


@dataclasses.dataclass(slots=True)
class _Flight:
    """One lookup's caches and keys."""

    cache: Store | Quiet
    leases: Store | Quiet
    marks: Store | Quiet
    key: str
    options: Options
    lease: str
    token: str


def _compute_and_store(flight: _Flight, lease: str | None) -> Plan:
    """Compute, store, then give ``lease`` (if held) back."""
    cache, leases, key, options = flight.cache, flight.leases, flight.key, flight.options
    token = flight.token
    # The lease is released only after the value is stored: released first, a waiter
    # polling in between would find neither and compute again (seen on Redis, where
    # the gap is a network round trip).
    try:
        try:
            result, to_store = yield COMPUTE
        except Exception:  # an abort(404) or a bug: nothing to wait for either
            _pass(leases, lease, token)
            lease = None
            raise
        if to_store is NOTHING:
            _pass(leases, lease, token)
            lease = None
            return Outcome(result, hit=False)
        if isinstance(to_store, Timed):
            options = dataclasses.replace(options, timeout=to_store.timeout)
            to_store = to_store.value
        ttl = ttl_of(cache, options)
        stored = cache.set(key, to_store, ttl)
        if not stored and lease is not None and _release(leases, lease, token):
            # In a full cache the lease may hold the last free slot: give it back.
            lease = None
            stored = cache.set(key, to_store, ttl)
        if stored and options.stale_while_revalidate and ttl:
            flight.marks.set(key, 1, ttl - options.stale_while_revalidate)
        return Outcome(result, hit=False, refused=not stored)
    finally:
        if lease is not None:
            _release(leases, lease, token)


def ttl_of(cache: Store | Quiet, options: Options) -> float:
    """How long an entry computed with ``options`` is kept (seconds, 0 for ever):
    its timeout, plus ``stale_while_revalidate``."""
    timeout = cache.default_timeout if options.timeout is None else options.timeout
    swr = options.stale_while_revalidate
    return timeout + swr if swr and timeout else timeout


def _pass(leases: Store | Quiet, lease: str | None, token: str) -> None:
    """Turn ``lease``, if this process holds it, into a pass: its waiters compute at
    once instead of queueing for it one after another."""
    if lease is not None and leases.get(lease) == token:
        leases.set(lease, PASS, _PASS_SECONDS)
    if lease is not None:
        _held.set(_held.get() - {lease})


def _release(leases: Store | Quiet, lease: str, token: str) -> bool:
    """Delete ``lease`` if this process still holds it; True if it did."""
    _held.set(_held.get() - {lease})
    return leases.get(lease) == token and leases.delete(lease)


def plan(
    cache: Store,
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
    here: Store | Quiet = cache
    leases: Store | Quiet = cache.internal
    marks: Store | Quiet = fresh_marks(cache)
    if options.quiet:
        here, leases, marks = Quiet(cache), Quiet(cache.internal), Quiet(fresh_marks(cache))
    token = f"{os.getpid()}:{time.monotonic_ns()}"
    lease = lease_key(cache, key)
    flight = _Flight(here, leases, marks, key, options, lease, token)
    if lease in _held.get():  # called inside its own computation: no one to wait for
        return (yield from _compute_and_store(flight, None))
    if not forced and not looked:
        found = read(here, key, options.decode)
        if found is not MISSING:
            if not options.stale_while_revalidate or marks.has(key):
                return Outcome(found, hit=True)
            # Stale: one process refreshes, the others serve the stale copy meanwhile.
            if _take_lease(leases, lease, token, options.wait) is Lease.TAKEN:
                return (yield from _compute_and_store(flight, lease))
            return Outcome(found, hit=True)
    if not options.single_flight:
        return (yield from _compute_and_store(flight, None))
    deadline = time.monotonic() + options.wait
    interval = _FIRST_POLL
    while True:
        taken = _take_lease(leases, lease, token, options.wait)
        if taken is not Lease.HELD and not forced:
            # Taken, or gone: the holder may have stored the value and let go since
            # this process last read (one network round trip on Redis).
            found = read(here, key, options.decode)
            if found is not MISSING:
                if taken is Lease.TAKEN:
                    _release(leases, lease, token)
                return Outcome(found, hit=True)
        if taken is Lease.TAKEN:
            return (yield from _compute_and_store(flight, lease))
        if taken is not Lease.HELD or time.monotonic() >= deadline:
            # Refused (a full cache?), a pass, or the holder is too slow: go alone.
            return (yield from _compute_and_store(flight, None))
        yield interval
        interval = min(interval * 2, _MAX_POLL)
        found = read(here, key, options.decode)
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
