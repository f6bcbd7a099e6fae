"""An in-process stand-in for a uWSGI cache2, with the same limits.

Configured by a cache2 option string (``UWSGICACHE_MEMORY``), it refuses what that cache
would refuse: more than ``items - 1`` entries, keys longer than ``keysize``, values larger
than a block (or than all blocks with ``bitmap``), and new keys when full unless
``purge_lru`` is set, in which case the least recently used entry is evicted. It differs
from uWSGI where uWSGI is loose: its own expiry is exact (a perfect sweeper), and it does
not model bitmap fragmentation. Shared by the threads of one process only.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager

from .. import cache2
from ..errors import CacheFullError
from .cache2store import Cache2Store


class MemoryBackend(Cache2Store):
    """Entries in an ordered dict (least recently used first), guarded by a lock."""

    name = "memory"
    shared = False

    def __init__(
        self, options: str = "items=1000", clock: Callable[[], float] = time.time
    ) -> None:
        self.use_options(cache2.parse(options, strict=True))
        self.clock = clock
        # key -> (entry, expires_at or 0.0)
        self._entries: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()
        self._blocks_used = 0
        self._last_sweep = -math.inf
        self._mutex = threading.Lock()
        self._rmw_lock = threading.Lock()

    def _blocks(self, entry: bytes) -> int:
        return -(-len(entry) // self.options.blocksize) if self.options.bitmap else 1

    def _drop(self, key: bytes) -> None:
        entry, _expires_at = self._entries.pop(key)
        self._blocks_used -= self._blocks(entry)

    def _live(self, key: bytes, now: float) -> bool:
        found = self._entries.get(key)
        if found is None:
            return False
        if found[1] and found[1] <= now:
            self._drop(key)
            return False
        return True

    def _sweep(self, now: float) -> None:
        expired = [key for key, (_, at) in self._entries.items() if at and at <= now]
        for key in expired:
            self._drop(key)

    def _make_room(self, key: bytes, entry: bytes) -> None:
        """Free a slot and blocks for ``entry``, or raise ``CacheFullError``."""
        options = self.options
        needed = self._blocks(entry)

        def fits() -> bool:
            slot_ok = key in self._entries or len(self._entries) < options.usable_items
            # In bitmap mode uWSGI finds the new blocks before freeing the old ones.
            blocks_ok = not options.bitmap or self._blocks_used + needed <= options.blocks
            return slot_ok and blocks_ok

        if fits():
            return
        now = self.clock()
        if now - self._last_sweep >= 1.0:  # as uWSGI's sweeper: at most once a second
            self._last_sweep = now
            self._sweep(now)
        while not fits():
            victim = next((other for other in self._entries if other != key), None)
            if not options.purge_lru or victim is None:
                raise CacheFullError(self.full_message(key, entry))
            self._drop(victim)

    def _store(self, key: bytes, entry: bytes, ttl: float) -> None:
        # uWSGI ignores expires with purge_lru (docs/uwsgi-cache2-facts.rst §5); so does the
        # stand-in.
        expires_at = self.clock() + ttl if ttl and not self.options.purge_lru else 0.0
        old = self._entries.pop(key, None)
        if old is not None:
            self._blocks_used -= self._blocks(old[0])
        self._entries[key] = (entry, expires_at)
        self._blocks_used += self._blocks(entry)

    def get(self, key: bytes) -> bytes | None:
        with self._mutex:
            if not self._live(key, self.clock()):
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        self.check_size(key, entry)
        with self._mutex:
            self._live(key, self.clock())
            self._make_room(key, entry)
            self._store(key, entry, ttl)

    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        self.check_size(key, entry)
        with self._mutex:
            if self._live(key, self.clock()):
                return False
            self._make_room(key, entry)
            self._store(key, entry, ttl)
            return True

    def delete(self, key: bytes) -> bool:
        with self._mutex:
            if not self._live(key, self.clock()):
                return False
            self._drop(key)
            return True

    def keys(self) -> list[bytes]:
        with self._mutex:
            self._sweep(self.clock())
            return list(self._entries)

    def item_count(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._mutex:
            self._entries.clear()
            self._blocks_used = 0

    def lock(self) -> AbstractContextManager[None]:
        return self._rmw_lock  # type: ignore[return-value]
