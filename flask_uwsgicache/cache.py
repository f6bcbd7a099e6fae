"""The key-value cache: keys, envelopes and results on top of a byte-level backend.

It knows no views: :class:`~flask_uwsgicache.appcache.BoundCache`, the object stored
in ``app.extensions["uwsgicache"]``, adds what the view layer keeps. Timeouts are seconds
(``int`` or ``float``); ``None`` means ``UWSGICACHE_DEFAULT_TIMEOUT`` and ``0`` means the
entry never expires. Writes return ``False`` when the cache refused them (and log why),
or raise a :class:`~flask_uwsgicache.errors.CacheError` with ``UWSGICACHE_RAISE_ERRORS``.
Reads never raise for what is stored: a corrupt, foreign or badly signed entry is a miss
plus a log line.

Where the C speedups are built, each cache's ``get`` and ``set`` are theirs
(:mod:`flask_uwsgicache.speedups`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import counters, flight, speedups, timeouts
from .backends.base import Backend
from .envelope import (
    MISSING,
    EntryRejected,
    Envelope,
    expiry_of,
)
from .errors import (
    BackendUnavailableError,
    CacheError,
    CacheFullError,
    InvalidKeyError,
)
from .keys import (
    MEMOIZED,
    RESPONSES,
    RESULTS,
    USER,
)
from .keyspaces import KeySpaces
from .logs import RateLimitedLog

_Cache = TypeVar("_Cache", bound="KeyValueCache")


class KeyValueCache(KeySpaces):
    """The cache API (see the module docstring for the shared semantics)."""

    def __init__(
        self,
        backend: Backend,
        envelope: Envelope,
        *,
        key_prefix: str = "",
        default_timeout: float = 300,
        raise_errors: bool = False,
        log: RateLimitedLog | None = None,
        responses_backend: Backend | None = None,
    ) -> None:
        super().__init__(backend, key_prefix, responses_backend)
        self.envelope = envelope
        self.default_timeout = default_timeout
        self.raise_errors = raise_errors
        self.log = log or RateLimitedLog()
        self._decode = envelope.decode
        self._encode = envelope.encode
        #: The settings this cache was built from (:func:`flask_uwsgicache.config.resolve`).
        self.settings: dict[str, Any] = {}
        self._speed_up()

    def _speed_up(self) -> None:
        """Make the C ``get`` and ``set`` this cache's where they do what this class's
        methods do (:func:`flask_uwsgicache.speedups.install`). They hold the
        storage-key memo, the reader, the envelope and the backend of the moment:
        whatever replaces one of these calls this again (:meth:`_spaced`)."""
        self._speedups = speedups.install(self, KeyValueCache.get, KeyValueCache.set)

    def _spaced(self) -> None:
        self._speed_up()  # the key space's own memo, and maybe another backend

    def __copy__(self: _Cache) -> _Cache:
        # space() makes its key spaces by copying: their get and set must be their own,
        # not the copied ones, which act on this cache.
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone._speed_up()
        return clone

    @property
    def clock(self) -> Callable[[], float]:
        """The time source of entry expiry (``time.time``; tests replace it)."""
        return self.envelope.clock

    # -- keys and expiry ------------------------------------------------------------

    def _lookup_key(self, key: str) -> bytes | None:
        """``storage_key`` for reads: a key that cannot exist is a miss, logged if odd."""
        try:
            return self.storage_key(key)
        except InvalidKeyError as error:
            if key != "":
                self.log.warning("InvalidKeyError", f"flask-uwsgicache: {error}")
            return None

    def _expiry(self, timeout: float | None) -> tuple[float, float]:
        """``(expires_at, ttl)``: the entry's absolute expiry, and the seconds after which
        the backend may drop it (each backend rounds up to what its store can do)."""
        if timeout is None:
            timeout = self.default_timeout
        else:
            timeout = timeouts.checked(timeout)
        if not timeout:
            return 0.0, 0
        return self.clock() + timeout, timeout

    # -- failure handling -----------------------------------------------------------

    def _refused(self, error: CacheError) -> bool:
        if self.raise_errors:
            raise error
        self.log.warning(type(error).__name__, f"flask-uwsgicache refused a write: {error}")
        return False

    def _rejected(self, key: bytes, error: EntryRejected) -> None:
        self.log.warning(
            "EntryRejected",
            f"flask-uwsgicache ignored the entry under {key[:80]!r}: {error}",
        )

    def _expired(self, entry: bytes) -> bool:
        """True if ``entry``'s expiry field has passed (for a backend's sweep)."""
        expires_at = expiry_of(entry)  # 0.0: never
        return expires_at is not None and expires_at != 0 and expires_at <= self.clock()

    def _write(
        self,
        write: Callable[[bytes, bytes, float], Any],
        key: bytes,
        entry: bytes,
        ttl: float,
    ) -> Any:
        try:
            return write(key, entry, ttl)
        except CacheFullError:
            if not self.backend.make_room(self._expired):
                raise
            return write(key, entry, ttl)

    # -- reads ------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default`` on a miss (expired, corrupt, absent)."""
        # storage_key()'s memo read inlined: this is the hot path.
        try:
            storage_key = self._known_keys.get(key)
        except TypeError:  # unhashable: not a key
            storage_key = None
        if storage_key is None:
            storage_key = self._lookup_key(key)
            if storage_key is None:
                return default
        entry = self._read(storage_key, self._read_name)
        if entry is None:
            return default
        try:  # _value() inlined: this is the hot path
            value = self._decode(storage_key, entry)
        except EntryRejected:
            return self._value(storage_key, entry, default)  # says why
        return default if value is MISSING else value

    def _value(self, storage_key: bytes, entry: bytes, default: Any) -> Any:
        """The value in ``entry``, or ``default`` if it has expired or is rejected."""
        try:
            value = self._decode(storage_key, entry)
        except EntryRejected as error:
            self._rejected(storage_key, error)
            return default
        return default if value is MISSING else value

    def has(self, key: str) -> bool:
        """True if ``key`` holds a live, valid entry (the value is not loaded)."""
        found = self._find(key)
        return found is not None and self.envelope.is_live(*found)

    def _find(self, key: str) -> tuple[bytes, bytes] | None:
        """``(storage_key, entry)`` for ``key``, or None if nothing is stored there."""
        storage_key = self._lookup_key(key)
        if storage_key is None:
            return None
        entry = self.backend.get(storage_key)
        return None if entry is None else (storage_key, entry)

    def get_many(self, *keys: str) -> list[Any]:
        """The values of ``keys`` in order, ``None`` for each miss (one round trip to
        the store where it can: Redis' MGET)."""
        storage_keys = [self._lookup_key(key) for key in keys]
        found = [storage_key for storage_key in storage_keys if storage_key is not None]
        entries = dict(zip(found, self.backend.get_many(found), strict=True))
        values: list[Any] = []
        for storage_key in storage_keys:
            entry = entries.get(storage_key) if storage_key is not None else None
            if storage_key is None or entry is None:
                values.append(None)
            else:
                values.append(self._value(storage_key, entry, None))
        return values

    def get_dict(self, *keys: str) -> dict[str, Any]:
        """``{key: value}`` for ``keys``, ``None`` for each miss."""
        return dict(zip(keys, self.get_many(*keys), strict=True))

    # -- writes -----------------------------------------------------------------------

    def _prepare(
        self, key: str, value: Any, timeout: float | None
    ) -> tuple[bytes, bytes, float]:
        storage_key = self.storage_key(key)
        expires_at, ttl = self._expiry(timeout)
        return storage_key, self.envelope.encode(storage_key, value, expires_at), ttl

    def set(self, key: str, value: Any, timeout: float | None = None) -> bool:
        """Store ``value`` under ``key``, replacing what is there. False if refused."""
        # _prepare() inlined, with storage_key()'s memo (without the C speedups this
        # is the hot path); the write is _store()'s, which the C speedups call too.
        try:
            storage_key = self._known_keys.get(key)
        except TypeError:  # unhashable: not a key
            storage_key = None
        try:
            if storage_key is None:
                storage_key = self.storage_key(key)
            if timeout is None:
                ttl = self.default_timeout
            elif type(timeout) is int and 0 < timeout <= timeouts.MAX_TIMEOUT:
                ttl = timeout
            else:
                ttl = timeouts.checked(timeout)
            entry = self._encode(
                storage_key, value, self.envelope.clock() + ttl if ttl else 0.0
            )
        except CacheError as error:
            return self._refused(error)
        return self._store(storage_key, entry, ttl)

    def _store(
        self, storage_key: bytes, entry: bytes, ttl: float, refused: bool = False
    ) -> bool:
        """:meth:`set` from its write on (the C speedups make ``entry`` themselves):
        True, or False when the cache refused it. ``refused``: uWSGI refused their first
        attempt at this write (:meth:`Backend.set_refused` goes on from there)."""
        try:
            try:
                if refused:
                    self.backend.set_refused(storage_key, entry, ttl)
                else:
                    self.backend.set(storage_key, entry, ttl)
            except CacheFullError:
                if not self.backend.make_room(self._expired):
                    raise
                self.backend.set(storage_key, entry, ttl)
        except CacheError as error:
            return self._refused(error)
        return True

    def add(self, key: str, value: Any, timeout: float | None = None) -> bool:
        """Store ``value`` only if ``key`` holds no live value, atomically.

        False if a live value is there, or if the cache refused the write.
        """
        try:
            storage_key, entry, ttl = self._prepare(key, value, timeout)

            def replaceable(current: bytes) -> bool:  # dead, or not a valid entry
                return not self.envelope.is_live(storage_key, current)

            def add(key: bytes, entry: bytes, ttl: float) -> bool:
                return self.backend.add(key, entry, ttl, replaceable)

            return bool(self._write(add, storage_key, entry, ttl))
        except CacheError as error:
            return self._refused(error)

    def set_many(
        self, mapping: Mapping[str, Any], timeout: float | None = None
    ) -> list[str]:
        """Store every item of ``mapping``; returns the keys that were stored."""
        return [key for key, value in mapping.items() if self.set(key, value, timeout)]

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it held a live value.

        On the users' space this also forgets what ``cached`` and ``memoize`` stored
        under the same key (a ``key_prefix`` without ``%s``, a ``make_cache_key``, or
        the key a decorated function's ``make_cache_key`` gives), as Flask-Caching's
        ``delete(key)`` does; reads never see those entries.
        """
        deleted = self._delete_one(key)
        if self.space_tag == USER:
            for tag in (RESULTS, RESPONSES, MEMOIZED):
                deleted = self.space(tag)._delete_one(key) or deleted
        return deleted

    def _delete_one(self, key: str) -> bool:
        found = self._find(key)
        if found is None:
            return False
        live = self.envelope.is_live(*found)
        return self.backend.delete(found[0]) and live

    def delete_many(self, *keys: str) -> list[str]:
        """Remove ``keys``; returns those that held a live value."""
        return [key for key in keys if self.delete(key)]

    def unlink(self, *keys: str) -> list[str]:
        """:meth:`delete_many` (Flask-Caching's name for a delete that may not block)."""
        return self.delete_many(*keys)

    def clear(self) -> bool:
        """Remove every entry under this app's ``UWSGICACHE_KEY_PREFIX``.

        Prefixes never overlap (``shop:`` does not clear ``shop:admin:``'s entries:
        :mod:`flask_uwsgicache.keys`). With an empty prefix the app owns the whole
        cache and all of it is cleared, other apps' entries included.
        The responses' cache (``UWSGICACHE_RESPONSES_NAME``) is emptied too. uWSGI
        walks every slot under its write lock for this: keep it off hot paths.
        """
        try:
            stores = [self] if self.responses_backend is None else [self, self.responses]
            for store in stores:
                if not self._prefix_bytes:
                    store.backend.clear()
                    continue
                for key in store.own_keys():
                    store.backend.delete(key)
        except CacheError as error:  # the store is unreachable (Redis down)
            return self._refused(error)
        return True

    def touch(self, key: str, timeout: float | None = None) -> bool:
        """Give a live entry a new timeout; False if there is none (or it was refused)."""
        try:
            storage_key = self.storage_key(key)
            expires_at, ttl = self._expiry(timeout)
            with self.backend.lock():
                entry = self.backend.get(storage_key)
                if entry is None or not self.envelope.is_live(storage_key, entry):
                    return False
                if self.envelope.counter_value(storage_key, entry) is not None:
                    # The store's expiry only: a write here would undo concurrent incs.
                    return self.backend.expire(storage_key, ttl)
                entry = self.envelope.reseal(storage_key, entry, expires_at)
                self._write(self.backend.set, storage_key, entry, ttl)
        except CacheError as error:
            return self._refused(error)
        return True

    # -- counters (flask_uwsgicache.counters) -------------------------------------------

    def inc(self, key: str, delta: int = 1, *, timeout: float | None = None) -> int:
        """Add ``delta`` to the integer under ``key`` and return the new value.

        A missing (or expired) key counts as 0 and gets ``timeout``; an existing counter
        keeps its expiry. Exact across processes: the read and the write happen under
        the backend's shared lock (uWSGI's own ``cache_inc`` does not accumulate
        in ``bitmap`` caches, and cannot return the new value;
        docs/uwsgi-cache2-facts.rst §6), or in one atomic call where the store has
        counters (Redis).
        ``inc`` and ``dec`` serialise with each other, ``add`` and ``touch``, not with
        ``set``.

        Counters hold signed 64-bit values on every backend. Raises, leaving the key as
        it was: :class:`NotACounterError` if it holds a value that is not an ``int``,
        :class:`CounterOverflowError` if the result (or ``delta``) is outside
        ``-2**63 .. 2**63 - 1``, and the :class:`CacheError` of a refused write (a full
        cache, Redis down), whatever ``UWSGICACHE_RAISE_ERRORS`` says: there is no
        ``False`` to return, and a counter must not silently stop counting.
        """
        return counters.count(self, key, delta, timeout)

    def dec(self, key: str, delta: int = 1, *, timeout: float | None = None) -> int:
        """Subtract ``delta``; see :meth:`inc`."""
        if type(delta) is not int:
            raise TypeError(f"delta must be an int, not {type(delta).__name__}")
        return self.inc(key, -delta, timeout=timeout)

    # -- compound -------------------------------------------------------------------------

    def get_or_set(
        self,
        key: str,
        default: Any | Callable[[], Any],
        timeout: float | None = None,
        *,
        single_flight: bool = True,
        single_flight_wait: float = 10.0,
        stale_while_revalidate: float = 0,
    ) -> Any:
        """The value under ``key``; on a miss, store ``default`` (called if callable).

        With ``single_flight`` (the default) one process computes a missing value while
        the others wait for it, at most ``single_flight_wait`` seconds, then compute
        themselves. With ``stale_while_revalidate`` seconds, an entry past its timeout is
        still served for that long while one process recomputes it.
        """

        def compute() -> tuple[Any, Any]:
            value = default() if callable(default) else default
            return value, value

        if timeout is not None:  # before anything is computed
            timeouts.checked(timeout)
        options = flight.Options(
            timeout=timeout,
            single_flight=single_flight,
            wait=single_flight_wait,
            stale_while_revalidate=stale_while_revalidate,
        )
        return flight.run(flight.plan(self, key, options), compute).value

    def describe(self) -> dict[str, Any]:
        """The cache's configuration and limits (no calls to the cache)."""
        return {
            **self.backend.describe(),
            "key_prefix": self.key_prefix,
            "serializer": self.envelope.serializer.name,
            "signed": self.envelope.secret is not None,
            "speedups": self._speedups,
            "default_timeout": self.default_timeout,
            "responses_cache": (
                None
                if self.responses_backend is None
                else self.responses_backend.cache_name
            ),
        }

    def stats(self, *, entries: bool = False) -> dict[str, Any]:
        """:meth:`describe` and ``items_used``: how many items the whole store holds
        (every prefix; None where the store cannot tell without listing its keys, as on
        Redis), and ``responses_items_used`` for the responses' cache when it is
        another one. Its cost does not grow with the store.

        ``entries=True`` adds ``entries`` (and ``responses_entries``), the number under
        this prefix, which lists every key of the store (O(items): for the command line
        and tests, not for a request). When the store cannot be listed (Redis down),
        they are None and ``unavailable`` says why.
        """
        found: dict[str, Any] = {
            **self.describe(),
            "items_used": self.backend.item_count(),
        }
        if self.responses_backend is not None:
            found["responses_items_used"] = self.responses_backend.item_count()
        if entries:
            try:
                found["entries"] = len(self.own_keys())
                if self.responses_backend is not None:
                    found["responses_entries"] = len(self.responses.own_keys())
            except BackendUnavailableError as error:
                found.update(entries=None, unavailable=str(error))
                if self.responses_backend is not None:
                    found["responses_entries"] = None
        return found
