"""Hits, misses and refused writes per cached view or memoized function, for all workers.

Each process counts in memory and writes, after every event, all its counts to its own
slot in the shared cache: one key per worker, as raw bytes (no pickle), one record per
view: three ``int64``, the name's length and the name. Only the record that changed is
re-encoded. ``stats()`` adds the slots up. The slot is named after the uWSGI worker id
(the pid elsewhere), and a respawned worker continues its slot's counts, so totals
survive ``max-requests`` recycling. Only its own process writes a slot: no lock needed.
A slot takes one item of the cache per worker. ``clear()`` removes the slots and
leaves a new token under ``CLEARED``; a process that sees a token other than the one it
started from starts again from zero, so old totals do not come back after a clear (and
a read that fails, Redis down, resets nothing).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .envelope import EntryRejected

if TYPE_CHECKING:
    from .cache import KeyValueCache

SLOT_PREFIX = "viewstats:"
#: Under this internal key, ``clear()`` leaves a new token each time.
CLEARED = "viewstats-cleared"
FIELDS = ("hits", "misses", "refused")
HIT, MISS, REFUSED = range(3)
_RECORD = struct.Struct("<3qH")


def _worker_name() -> str:
    try:
        import uwsgi

        worker = uwsgi.worker_id()
        if worker > 0:
            return f"worker{worker}"
    except ImportError:
        pass
    return f"pid{os.getpid()}"


def _records(slot: object) -> Iterator[tuple[str, list[int]]]:
    """``(name, counts)`` of each record in a slot; nothing if it is not a slot."""
    if not isinstance(slot, bytes):
        return
    offset = 0
    while offset + _RECORD.size <= len(slot):
        hits, misses, refused, length = _RECORD.unpack_from(slot, offset)
        offset += _RECORD.size
        name = slot[offset : offset + length].decode(errors="replace")
        offset += length
        yield name, [hits, misses, refused]


class ViewCounts:
    """The counts of one app's cache in this process."""

    def __init__(self) -> None:
        self._pid = -1
        self._slot = ""
        self._cleared: object = None
        self._counts: dict[str, list[int]] = {}
        self._encoded: dict[str, bytes] = {}

    def record(self, cache: KeyValueCache, name: str, field: int) -> None:
        """Count one event (``HIT``, ``MISS`` or ``REFUSED``) for ``name``."""
        if self._pid != os.getpid():  # first event in this process, or after a fork
            self._pid, self._slot = os.getpid(), SLOT_PREFIX + _worker_name()
            # Continue what an earlier process with this worker id counted.
            self._cleared = cache.internal.get(CLEARED)
            self._counts = dict(_records(cache.internal.get(self._slot)))
            self._encoded = {key: self._encode(key) for key in self._counts}
        else:
            cleared = cache.internal.get(CLEARED)
            if cleared is not None and cleared != self._cleared:  # cleared since
                self._cleared = cleared
                self._counts, self._encoded = {}, {}
        counts = self._counts.setdefault(name, [0, 0, 0])
        counts[field] += 1
        self._encoded[name] = self._encode(name)
        cache.internal.set(self._slot, b"".join(self._encoded.values()), timeout=0)

    def _encode(self, name: str) -> bytes:
        encoded = name.encode()[:65535]
        return _RECORD.pack(*self._counts[name], len(encoded)) + encoded

    def totals(self, cache: KeyValueCache) -> dict[str, dict[str, int]]:
        """``{name: {"hits": n, "misses": n, "refused": n}}`` summed over every slot."""
        totals: dict[str, list[int]] = {}
        for storage_key in cache.internal.own_keys(SLOT_PREFIX.encode()):
            entry = cache.backend.get(storage_key)
            try:
                slot = cache.envelope.decode(storage_key, entry) if entry else None
            except EntryRejected:
                continue
            for name, counts in _records(slot):
                total = totals.setdefault(name, [0, 0, 0])
                for index, count in enumerate(counts):
                    total[index] += count
        return {
            name: dict(zip(FIELDS, counts, strict=True)) for name, counts in totals.items()
        }
