"""Hits, misses and refused writes per cached view or memoized function, for all workers.

Each process keeps its own counts and writes them, after every event, to its own slot in
the shared cache (one key per uWSGI worker id, or per pid elsewhere); ``stats()`` adds
the slots up. A respawned worker picks up its slot's counts, so totals survive
``max-requests`` recycling. Only its own process writes a slot, so no lock is needed.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cache import BoundCache

SLOT_PREFIX = "\x00viewstats:"
FIELDS = ("hits", "misses", "refused")
HIT, MISS, REFUSED = range(3)


def _slot_name() -> str:
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
        self._slot = ""
        self._counts: dict[str, list[int]] = {}

    def record(self, cache: BoundCache, name: str, field: int) -> None:
        """Count one event (``HIT``, ``MISS`` or ``REFUSED``) for ``name``."""
        if self._pid != os.getpid():
            # First event in this process (or after a fork): continue the slot's counts.
            self._pid, self._slot = os.getpid(), SLOT_PREFIX + _slot_name()
            stored = cache.get(self._slot)
            self._counts = stored if isinstance(stored, dict) else {}
        counts = self._counts.setdefault(name, [0, 0, 0])
        counts[field] += 1
        cache.set(self._slot, self._counts, timeout=0)

    def totals(self, cache: BoundCache) -> dict[str, dict[str, int]]:
        """``{name: {"hits": n, "misses": n, "refused": n}}`` summed over every slot."""
        prefix = (cache.key_prefix + SLOT_PREFIX).encode()
        totals: dict[str, list[int]] = {}
        for storage_key in cache.backend.keys():
            if not storage_key.startswith(prefix):
                continue
            key = storage_key[len(cache.key_prefix.encode()) :].decode()
            slot: Any = cache.get(key)
            if not isinstance(slot, dict):
                continue
            for name, counts in slot.items():
                total = totals.setdefault(name, [0, 0, 0])
                for index, count in enumerate(counts[:3]):
                    total[index] += int(count)
        return {
            name: dict(zip(FIELDS, counts, strict=True)) for name, counts in totals.items()
        }
