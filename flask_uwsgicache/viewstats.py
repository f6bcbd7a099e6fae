"""Hits, misses and refused writes per cached view or memoized function, for all workers.

Each process counts in memory and writes, after every event, that view's counts to its
own slot in the shared cache: one key per (worker, view) holding three ``int64`` and the
view's name, as raw bytes (no pickle). ``stats()`` adds the slots up. The slot is named
after the uWSGI worker id (the pid elsewhere), and a respawned worker continues its
slot's counts, so totals survive ``max-requests`` recycling. Only its own process writes
a slot, so no lock is needed.
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

from .envelope import EntryRejected

if TYPE_CHECKING:
    from .cache import BoundCache

SLOT_PREFIX = "\x00viewstats:"
FIELDS = ("hits", "misses", "refused")
HIT, MISS, REFUSED = range(3)
_COUNTS = struct.Struct("<3q")


def _worker_name() -> str:
    try:
        import uwsgi

        worker = uwsgi.worker_id()
        if worker > 0:
            return f"worker{worker}"
    except ImportError:
        pass
    return f"pid{os.getpid()}"


class ViewStats:
    """The counts of one app's cache in this process."""

    def __init__(self) -> None:
        self._pid = -1
        self._worker = ""
        self._counts: dict[str, list[int]] = {}

    def record(self, cache: BoundCache, name: str, field: int) -> None:
        """Count one event (``HIT``, ``MISS`` or ``REFUSED``) for ``name``."""
        if self._pid != os.getpid():  # first event in this process, or after a fork
            self._pid, self._worker, self._counts = os.getpid(), _worker_name(), {}
        slot = f"{SLOT_PREFIX}{self._worker}:{name}"
        counts = self._counts.get(name)
        if counts is None:
            # Continue what an earlier process with this worker id counted.
            try:
                counts = list(_decode(cache.get(slot))[0])
            except (ValueError, struct.error):
                counts = [0, 0, 0]
            self._counts[name] = counts
        counts[field] += 1
        cache.set(slot, _COUNTS.pack(*counts) + name.encode(), timeout=0)

    def totals(self, cache: BoundCache) -> dict[str, dict[str, int]]:
        """``{name: {"hits": n, "misses": n, "refused": n}}`` summed over every slot."""
        prefix = cache.key_prefix.encode()
        slots = prefix + SLOT_PREFIX.encode()
        totals: dict[str, list[int]] = {}
        for storage_key in cache.backend.keys():
            if not storage_key.startswith(slots):
                continue
            # Hashed (long) keys cannot be turned back into str keys: read them raw.
            entry = cache.backend.get(storage_key)
            try:
                counts, name = _decode(cache.envelope.decode(storage_key, entry or b""))
            except (EntryRejected, ValueError, struct.error):
                continue
            total = totals.setdefault(name, [0, 0, 0])
            for index, count in enumerate(counts):
                total[index] += count
        return {
            name: dict(zip(FIELDS, counts, strict=True)) for name, counts in totals.items()
        }


def _decode(stored: object) -> tuple[tuple[int, int, int], str]:
    """``(counts, name)`` of a slot; ``ValueError`` or ``struct.error`` if it is not one."""
    if not isinstance(stored, bytes):
        raise ValueError("not a statistics slot")
    counts: tuple[int, int, int] = _COUNTS.unpack_from(stored)
    return counts, stored[_COUNTS.size :].decode(errors="replace")
