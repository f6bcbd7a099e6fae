"""Hits, misses and refused writes per cached view or memoized function.

Counting never touches the cache: a hit stays one read of the store (one round trip on
Redis) and no item of the user's cache holds counts.

Under uWSGI with several workers the counts live in a table in memory shared by the
workers of the instance (:mod:`~flask_uwsgicache.sharedtables`); where the workers
cannot meet, each worker counts for itself and one log line says why. Each worker owns
one segment of the table and is its only writer, so counting needs no lock between
processes and costs an 8-byte write; ``stats()`` adds the segments up, so every worker's
counts are seen at once. A respawned worker continues its segment: totals survive ``max-
requests`` recycling. ``clear()`` gives the table a new random generation; a segment of
another generation is not counted, and its worker starts it again from zero at its next
event, so old totals do not come back. Processes other than workers (mules, spoolers),
and apps outside uWSGI, count in their own memory.

Layout: a 64-byte header (``b"uCVC"``, the generation at offset 8), then one segment per
worker id (1 .. ``uwsgi.numproc``): a 64-byte header (its generation) and
:data:`RECORDS` records of 512 bytes: the name's length, the name (up to 486 bytes; a
longer one is cut and given a digest so names stay apart, in every deployment), three
``int64``. A record's name is written before its length, so a reader never sees half a
name. A worker's 256th name and later ones are counted together under
:data:`OVERFLOW`, with a log line.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import secrets
import struct
import threading
from typing import Final

from . import sharedtables

logger = logging.getLogger("flask_uwsgicache")

FIELDS = ("hits", "misses", "refused")
HIT, MISS, REFUSED = range(3)
MAGIC: Final = b"uCVC"
#: In the names of count files: a table of another layout is never opened as this one.
LAYOUT: Final = "v1"
HEADER: Final = 64
RECORD: Final = 512
NAME_SIZE: Final = 486
RECORDS: Final = 256
SEGMENT: Final = HEADER + RECORDS * RECORD
# Native byte order: the table never leaves the machine, and the hot path reads and
# writes its int64 cells through a memoryview cast to "q", which is native.
_GENERATION: Final = struct.Struct("=q")
_LENGTH: Final = struct.Struct("=H")
_COUNTS: Final = struct.Struct("=3q")
_COUNTS_AT: Final = 2 + NAME_SIZE  # 488: the counts are 8-byte aligned
OVERFLOW: Final = "(more views than the counts table holds)"


def _stored_name(name: str) -> bytes:
    encoded = name.encode("utf-8", "replace")
    if len(encoded) <= NAME_SIZE:
        return encoded
    digest = hashlib.blake2b(encoded, digest_size=6).hexdigest().encode()
    cut = encoded[: NAME_SIZE - len(digest) - 1].decode("utf-8", "ignore").encode()
    return cut + b"~" + digest


def shown_name(name: str) -> str:
    """``name`` as ``stats()["views"]`` shows it: itself, or cut with a digest when
    longer than :data:`NAME_SIZE` bytes (the same in every deployment)."""
    return _stored_name(name).decode(errors="replace")


def _uwsgi_workers() -> int:
    """The number of worker segments: ``uwsgi.numproc`` under uWSGI, else 0."""
    try:
        import uwsgi
    except ImportError:
        return 0
    return int(uwsgi.numproc)


def _worker_id() -> int:
    """This process's worker id under uWSGI (1 ..), 0 elsewhere (master, mule, no uWSGI)."""
    try:
        import uwsgi
    except ImportError:
        return 0
    return int(uwsgi.worker_id())


def _map_table(identity: str, workers: int) -> mmap.mmap | None:
    """The counts table shared by the workers (:mod:`~flask_uwsgicache.sharedtables`),
    or None when they cannot meet (each counts for itself)."""
    table = sharedtables.map_table(
        f"{LAYOUT}.counts",
        identity,
        HEADER + workers * SEGMENT,
        "per-view counts are each worker's own",
    )
    if table is not None:
        table[:4] = MAGIC
    return table


# The tables of this process, by identity: two apps on one cache and prefix (two
# Flask apps under a dispatcher, a factory called twice) share one writer of the
# worker's segment instead of overwriting each other's records.
_TABLES: dict[str, ViewCounts] = {}


class ViewCounts:
    """The counts of one app's cached views and memoized functions."""

    @classmethod
    def of(cls, identity: str) -> ViewCounts:
        """The counts of the apps that share ``identity`` (cache and prefix): under
        uWSGI one object per identity in a process, else a new one."""
        found = _TABLES.get(identity)
        if found is None:
            found = cls(identity)
            if found._table is not None:
                _TABLES[identity] = found
        return found

    def __init__(self, identity: str = "") -> None:
        self._lock = threading.Lock()
        self._workers = _uwsgi_workers()
        self._table = _map_table(identity, self._workers) if self._workers > 1 else None
        #: The table as int64 cells: cell 1 is its generation.
        self._cells = memoryview(self._table).cast("q") if self._table else None
        self._local: dict[str, list[int]] = {}
        # uWSGI forks in C, so os.register_at_fork hooks do not run: a change of pid
        # tells a worker from the master (docs/uwsgi-cache2-facts.rst §14).
        self._pid = -1
        self._segment = -1  # this process's segment's offset; -1: none (count locally)
        self._generation = 0
        #: name -> (record offset, counts); also by stored name (see _stored_name).
        self._index: dict[str, tuple[int, list[int]]] = {}

    def record(self, name: str, field: int) -> None:
        """Count one event (``HIT``, ``MISS`` or ``REFUSED``) for ``name``."""
        with self._lock:
            if self._pid != os.getpid():
                self._find_segment()
            cells = self._cells
            if cells is None or self._segment < 0:
                self._local.setdefault(name, [0, 0, 0])[field] += 1
                return
            if cells[1] != self._generation:
                self._restart()
            found = self._index.get(name)
            if found is None:
                found = self._add(name)
            offset, counts = found
            counts[field] += 1
            cells[(offset + _COUNTS_AT) // 8 + field] = counts[field]

    def _find_segment(self) -> None:
        """Take this process's segment (a worker's), continuing what it holds."""
        self._pid = os.getpid()
        worker = _worker_id()
        self._local, self._index = {}, {}
        if self._table is None or not 0 < worker <= self._workers:
            self._segment = -1
            return
        self._segment = HEADER + (worker - 1) * SEGMENT
        self._generation = _GENERATION.unpack_from(self._table, self._segment)[0]
        if _GENERATION.unpack_from(self._table, 8)[0] != self._generation:
            self._restart()
            return
        for name, offset, counts in self._records(self._segment):
            self._index[name] = (offset, counts)

    def _restart(self) -> None:
        """Empty this worker's segment for the table's generation (after a clear)."""
        assert self._table is not None
        start = self._segment + HEADER
        self._table[start : start + RECORDS * RECORD] = bytes(RECORDS * RECORD)
        self._generation = _GENERATION.unpack_from(self._table, 8)[0]
        _GENERATION.pack_into(self._table, self._segment, self._generation)
        self._index = {}

    def _add(self, name: str) -> tuple[int, list[int]]:
        """The record of ``name`` in this worker's segment, made if it is not there."""
        assert self._table is not None
        stored = _stored_name(name)
        found = self._index.get(stored.decode(errors="replace"))
        if found is None:
            used = len({offset for offset, _counts in self._index.values()})
            if used == RECORDS - 1 and stored != OVERFLOW.encode():
                logger.warning(
                    "flask-uwsgicache: more than %d cached views and memoized "
                    "functions; the counts of the others are added up under %r.",
                    RECORDS - 1,
                    OVERFLOW,
                )
            if used >= RECORDS - 1 and stored != OVERFLOW.encode():
                found = self._add(OVERFLOW)
            else:
                offset = self._segment + HEADER + used * RECORD
                self._table[offset + 2 : offset + 2 + len(stored)] = stored
                # The length last: a reader sees the record whole or not at all.
                _LENGTH.pack_into(self._table, offset, len(stored))
                found = (offset, [0, 0, 0])
                self._index[stored.decode(errors="replace")] = found
        self._index[name] = found
        return found

    def _records(self, segment: int) -> list[tuple[str, int, list[int]]]:
        """``(name, offset, counts)`` of each record of the segment at ``segment``."""
        assert self._table is not None
        found = []
        for offset in range(segment + HEADER, segment + SEGMENT, RECORD):
            (length,) = _LENGTH.unpack_from(self._table, offset)
            if not 0 < length <= NAME_SIZE:
                break
            name = self._table[offset + 2 : offset + 2 + length].decode(errors="replace")
            counts = list(_COUNTS.unpack_from(self._table, offset + _COUNTS_AT))
            found.append((name, offset, counts))
        return found

    def totals(self) -> dict[str, dict[str, int]]:
        """``{name: {"hits": n, "misses": n, "refused": n}}`` of every worker (under
        uWSGI) and of this process."""
        totals: dict[str, list[int]] = {}
        with self._lock:
            if self._pid != os.getpid():
                self._find_segment()
            sources = [(shown_name(name), counts) for name, counts in self._local.items()]
            table = self._table
            if table is not None:
                generation = _GENERATION.unpack_from(table, 8)[0]
                for worker in range(self._workers):
                    segment = HEADER + worker * SEGMENT
                    if _GENERATION.unpack_from(table, segment)[0] != generation:
                        continue  # not started again since the last clear: old counts
                    sources += [
                        (name, counts) for name, _, counts in self._records(segment)
                    ]
        for name, counts in sources:
            total = totals.setdefault(name, [0, 0, 0])
            for index, count in enumerate(counts):
                total[index] += count
        return {
            name: dict(zip(FIELDS, counts, strict=True)) for name, counts in totals.items()
        }

    def reset(self) -> None:
        """Start every worker's counts again from zero (``clear()``)."""
        with self._lock:
            self._local = {}
            if self._table is not None:
                # A new random generation, not the old one plus one: two clears at
                # once cannot write the same value, nor one that brings old counts back.
                _GENERATION.pack_into(self._table, 8, secrets.randbits(62) + 1)
