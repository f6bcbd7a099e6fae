"""uWSGI's cache in front of Redis: ``UWSGICACHE_BACKEND = "tiered"``.

Redis (``UWSGICACHE_REDIS_URL``) holds every entry, as the redis backend does, and is
the one every machine writes to; each uWSGI instance keeps **local copies** of what it
read in its own ``cache2`` (``UWSGICACHE_NAME``; the memory stand-in outside uWSGI), so
a repeated read costs shared memory, not a round trip.

* **Reads**: a local copy if there is one and it may be served (below); otherwise one
  round trip to Redis for the entry and its remaining time, and the copy is stored.
* **Writes** (``set``, ``add``, ``delete``, ``touch``, ``clear``, counters, leases) go
  to Redis only, where they are decided: ``inc`` and ``add`` stay exact across
  machines. The writer drops its own instance's copy at once; the others drop theirs
  when Redis tells them (:mod:`~flask_uwsgicache.backends.coherence`).
* **Staleness**: a copy is served only while this instance's listener is in sync with
  Redis, so another instance stops serving an old value at most
  :data:`~flask_uwsgicache.backends.coherence.BOUND` seconds after a write or delete.
  A copy carries the entry's Redis expiry (to the millisecond) and is never served
  past it. Without a listener in sync (starting, Redis lost, the listener's process
  gone) every read goes to Redis.

A local copy is the Redis entry after 32 bytes: its Redis expiry (a double of seconds
since the epoch, 0: none), the epoch of the coherence table, the key's cell and the
value it held, as they were before Redis was read. A copy is served only while both are
unchanged: a notice for the key (or a key of the same cell) makes it a miss at once,
whenever the filler stores it, and a new epoch (a listener that reconnects, ``clear``,
``FLUSHDB``) makes every older copy dead at once, without a walk of the local store
(which may hold other entries too). Keys
longer than the local cache's ``keysize`` are hashed for it alone: the entries in Redis
are the same whatever line each machine runs.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final, TypeVar

from .. import sharedtables
from ..errors import CacheError
from ..keys import hashed
from ..logs import RateLimitedLog
from .base import Backend
from .coherence import EPOCH, SERVE_UNTIL, SIZE, Coherence, Listener
from .redis import RedisBackend

logger = logging.getLogger("flask_uwsgicache")

# A copy's head: its Redis expiry (seconds since the epoch, 0: none) and the epoch of
# the coherence table it was made in.
_COPY: Final = struct.Struct("<dqqq")
_HEAD: Final = _COPY.size
_unpack_head = _COPY.unpack_from
_monotonic_ns = time.monotonic_ns
_time = time.time
T = TypeVar("T")
#: How often a process that finds no listener in sync tries to become it (seconds).
CLAIM_EVERY: Final = 0.5


class TieredBackend(Backend):
    """Redis, with local copies in this instance's store."""

    name = "tiered"
    native_counters = True

    def __init__(self, remote: RedisBackend, local: Backend, table: Any | None) -> None:
        self.remote = remote
        self.local = local
        self.cache_name = remote.cache_name
        self.max_key_size = remote.max_key_size
        self.max_value_size = remote.max_value_size
        self.max_items = None
        self.coherence = Coherence(table) if table is not None else None
        self._cells = self.coherence.cells if self.coherence is not None else None
        self._local_key_size = local.max_key_size
        self._local_value_size = local.max_value_size - _HEAD
        self._read, self._read_name = local.reader()
        self._listener: Listener | None = None
        self._next_claim = 0.0
        self._claiming = threading.Lock()

    # -- local copies ---------------------------------------------------------------

    def _local_key(self, key: bytes) -> bytes:
        if len(key) <= self._local_key_size:
            return key
        return hashed(key, self._local_key_size)

    def _serving(self) -> bool:
        coherence = self.coherence
        if coherence is None:
            return False
        if coherence.serving():
            return True
        self._claim()
        return False

    def _copy_of(self, key: bytes) -> bytes | None:
        """The local copy's entry, if it may be served: made in this epoch, with its
        key's cell unchanged since, within its Redis expiry."""
        local_key = self._local_key(key)
        copy = self.local.get(local_key)
        if copy is None or self._dead(copy):
            return None
        assert self.coherence is not None
        _expires, _epoch, cell, noted = _COPY.unpack_from(copy)
        if cell != self.coherence.cell_of(local_key) or noted != self.coherence.cells[cell]:
            return None
        return copy[_HEAD:]

    def _dead(self, copy: bytes) -> bool:
        """True for a copy past its Redis expiry or of an earlier epoch (and for bytes
        that are no copy): what may make room in a full local store."""
        if len(copy) < _HEAD or self.coherence is None:
            return True
        expires, epoch, _cell, _noted = _COPY.unpack_from(copy)
        if epoch != self.coherence.cells[EPOCH]:
            return True
        return bool(expires) and expires <= time.time()

    def _keep(
        self,
        key: bytes,
        entry: bytes,
        ttl: float | None,
        cell: int,
        mark: tuple[int, int],
        asked: float,
    ) -> None:
        """Store a copy of what Redis answered (``ttl`` seconds left when it was asked,
        at ``asked``), marked with what the table held before: a change meanwhile, or
        after, makes it a miss."""
        if len(entry) > self._local_value_size or (ttl is not None and ttl <= 0):
            return  # too large here, or expiring now (a copy must not outlive it)
        assert self.coherence is not None
        expires = asked + ttl if ttl is not None else 0.0
        ttl = ttl or 0.0  # the local store's: 0 for none
        local_key = self._local_key(key)
        epoch, noted = mark
        copy = _COPY.pack(expires, epoch, cell, noted) + entry
        try:
            self.local.set(local_key, copy, ttl)
        except CacheError:
            # Full: dead copies make room (uWSGI keeps expired items until its sweeper
            # runs; docs/uwsgi-cache2-facts.rst §5), else this key is read from Redis
            # until there is room.
            if not self.local.make_room(self._dead):
                return
            try:
                self.local.set(local_key, copy, ttl)
            except CacheError:
                return
        if self.coherence.mark(cell) != mark:
            self.local.delete(local_key)  # dead already (read checks the mark): room

    def _drop(self, key: bytes) -> None:
        """Drop this instance's copy of a storage key (a write here, or a notice)."""
        if self.coherence is None:
            return
        local_key = self._local_key(key)
        self.coherence.touched(self.coherence.cell_of(local_key))
        self.local.delete(local_key)

    # -- the listener -------------------------------------------------------------------

    def _claim(self) -> None:
        """Start this instance's listener here if none is in sync and it can run."""
        now = time.monotonic()
        if now < self._next_claim or not self._claiming.acquire(blocking=False):
            return
        try:
            self._next_claim = now + CLAIM_EVERY
            listener = self._listener
            if listener is not None and listener.is_alive() and listener.pid == os.getpid():
                return
            assert self.coherence is not None
            if not can_listen() or not self.coherence.claim():
                return
            namespace = self.remote.namespace
            listener = Listener(
                self.coherence,
                self.remote.listening_connection,
                namespace,
                lambda name: self._drop(name[len(namespace) :]),
                self.remote.url,
                self.remote.master_moved,
            )
            listener.start()
            self._listener = listener
        finally:
            self._claiming.release()

    # -- the contract ---------------------------------------------------------------

    def reader(self) -> tuple[Callable[[bytes, str], bytes | None], str]:
        return self.get, ""

    def get(self, key: bytes, _name: str = "") -> bytes | None:
        # _serving() and _copy_of() written out: this is the local hit, the path the
        # backend exists for. (``_name``: the hot path's form, reader().)
        cells = self._cells
        if cells is not None:
            if _monotonic_ns() < cells[SERVE_UNTIL]:
                local_key = key
                if len(key) > self._local_key_size:
                    local_key = self._local_key(key)
                copy = self._read(local_key, self._read_name)
                if copy is not None:
                    try:
                        expires, epoch, cell, noted = _unpack_head(copy)
                    except struct.error:  # shorter than a head: no copy of ours
                        return self._fill([key])[0]
                    # The epoch and the key's cell as they were before the copy's
                    # read of Redis: a notice since (or a reconnect) changed them. (The
                    # epoch first: a copy of this epoch was made here, with its cell.)
                    if (
                        epoch == cells[EPOCH]
                        and noted == cells[cell]
                        and (not expires or expires > _time())
                    ):
                        return copy[_HEAD:]
                return self._fill([key])[0]
            self._claim()
        return self.remote.get(key)

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys or not self._serving():
            return self.remote.get_many(keys)
        found = [self._copy_of(key) for key in keys]
        missing = [key for key, entry in zip(keys, found, strict=True) if entry is None]
        if missing:
            filled = iter(self._fill(missing))
            found = [entry if entry is not None else next(filled) for entry in found]
        return found

    def _fill(self, keys: list[bytes]) -> list[bytes | None]:
        """Read ``keys`` from Redis (one round trip) and keep local copies."""
        assert self.coherence is not None
        coherence = self.coherence
        cells = [coherence.cell_of(self._local_key(key)) for key in keys]
        marks = [coherence.mark(cell) for cell in cells]
        asked = time.time()  # the copies expire no later than their Redis entries
        answers = self.remote.get_with_ttl(keys)
        for key, (entry, ttl), cell, mark in zip(keys, answers, cells, marks, strict=True):
            if entry is not None:
                self._keep(key, entry, ttl, cell, mark, asked)
        return [entry for entry, _ttl in answers]

    # Writes: made in Redis alone (add, counters and leases are decided there, never
    # on a copy), then this instance's copy goes, even when the write failed.

    def _written(self, key: bytes, write: Callable[[], T]) -> T:
        try:
            return write()
        finally:
            self._drop(key)

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        self._written(key, lambda: self.remote.set(key, entry, ttl))

    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        return self._written(key, lambda: self.remote.insert(key, entry, ttl))

    def add(
        self,
        key: bytes,
        entry: bytes,
        ttl: float,
        replaceable: Callable[[bytes], bool] | None = None,
    ) -> bool:
        return self._written(key, lambda: self.remote.add(key, entry, ttl, replaceable))

    def incr(
        self,
        key: bytes,
        delta: int,
        ttl: float,
        mac_key: bytes = b"",
        replacing: bytes = b"",
    ) -> int:
        return self._written(
            key, lambda: self.remote.incr(key, delta, ttl, mac_key, replacing)
        )

    def expire(self, key: bytes, ttl: float) -> bool:
        return self._written(key, lambda: self.remote.expire(key, ttl))

    def delete(self, key: bytes) -> bool:
        return self._written(key, lambda: self.remote.delete(key))

    def keys(self) -> list[bytes]:
        return self.remote.keys()

    def clear(self) -> None:
        try:
            self.remote.clear()
        finally:
            if self.coherence is not None:
                self.coherence.new_epoch()  # every copy here is of an earlier one

    def lock(self) -> AbstractContextManager[None]:
        return self.remote.lock()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self.remote.close()
        self.local.close()

    def describe(self) -> dict[str, Any]:
        listener = self._listener
        return {
            **super().describe(),
            "url": self.remote.url,
            "namespace": self.remote.namespace.decode(errors="replace"),
            "local": self.local.describe(),
            # Served now: a listener of this instance is in sync with Redis.
            "local_copies": self.coherence is not None and self.coherence.serving(),
            "listener_pid": self.coherence and self.coherence.listener_pid(),
            "listener_here": listener is not None and listener.is_alive(),
        }

    def too_large_hint(self) -> str:
        return self.remote.too_large_hint()

    @property
    def secret_scope(self) -> str:
        # Entries in Redis are the redis backend's: machines may run either.
        return self.remote.name


def can_listen() -> bool:
    """True if a listener thread can run in this process: outside uWSGI, or in a uWSGI
    process after the fork (a thread started before it would stay in the master) with
    Python threads on (without them a worker holds the GIL while it waits for a
    request, and the thread would not run; one log line then)."""
    try:
        import uwsgi
    except ImportError:
        return True
    # Worker id 0 in the process that forks the workers, before the fork
    # (docs/uwsgi-cache2-facts.rst §14).
    if uwsgi.worker_id() == 0 and uwsgi.masterpid() in (0, os.getpid()):
        return False
    # Without Python threads uWSGI keeps the GIL while a worker waits (§15).
    if not getattr(uwsgi, "has_threads", 1):
        _NO_THREADS.warning(
            "NoThreads",
            "flask-uwsgicache: the tiered cache reads every entry from Redis: Python "
            "threads are off in this uWSGI, so its listener cannot run. Add "
            "enable-threads = true to the ini.",
        )
        return False
    return True


def local_table(identity: str) -> Any | None:
    """The coherence table this instance's processes share, or None (no local copies,
    one log line) where they cannot meet."""
    try:
        import uwsgi  # noqa: F401
    except ImportError:
        return bytearray(SIZE)  # one process: the memory stand-in is its own
    found = _TABLES.get(identity)
    if found is None:
        found = sharedtables.map_table(
            "v1.tiered", identity, SIZE, "the tiered cache reads every entry from Redis"
        )
        if found is not None:
            _TABLES[identity] = found
    return found


_TABLES: dict[str, Any] = {}
_NO_THREADS = RateLimitedLog()
