"""Generations of stored responses: how ``delete_edge`` forgets a path in O(1).

Every response a cached view stores is stamped with the *generation* of its key's stem
(the part before the first ``?``: the view's key prefix with the path, see
:mod:`flask_uwsgicache.viewkeys`), and a stored response is served only while its stamp
is the stem's current generation. ``delete_edge`` ends a stem's generation: every
variant of the path (query strings, hosts, ``Vary``) becomes a miss at once, without a
list of the store's keys, and is replaced at the next store. Generation 0 is "nothing
stored since the last delete": the first store after it draws a new random one, so a
delete can tell whether anything was stored, and a stamp of an older generation never
comes back.

Where generations live:

* uWSGI's cache: a table in memory shared by the instance's processes
  (:mod:`~flask_uwsgicache.sharedtables`), :data:`SLOTS` ``int64`` cells, one per hash
  of a stem. Stems that share a cell share their generation: deleting one costs the
  other a miss, never a stale answer. Reading it costs no call to the store. Where no
  process can share one (lazy-apps without a master), there are no generations
  (:func:`for_store` says None) and ``delete_edge`` lists the store's keys; a process
  that could not open the table the others share serves no stored response (it could
  not see their deletes) and deletes by listing the keys.
* the memory stand-in: the same table in the process's memory (its store is the
  process's own too).
* Redis: a key per stem in the versions' space, read with the response in one
  round trip (``MGET``), so every machine sees a delete at once. It lasts twice the
  timeout of the response that started it. A generation key that expires or that Redis
  evicts is a generation ended: misses, never stale answers.

A response computed before a delete and stored after it carries the new generation:
like every cache, the store cannot tell when the data it was computed from changed.
"""

from __future__ import annotations

import secrets
import struct
import zlib
from typing import TYPE_CHECKING, Any, Final

from . import sharedtables, timeouts
from .errors import InvalidKeyError
from .keys import VERSIONS
from .keyspaces import KNOWN_KEYS

if TYPE_CHECKING:
    from .cache import KeyValueCache

#: Cells of a generations table (8 bytes each: 512 KiB, touched as stems are used).
SLOTS: Final = 65536
#: Where a stored response holds its stamp (:mod:`flask_uwsgicache.responses`).
STAMP_AT: Final = 4
_STAMP: Final = struct.Struct("<q")
_NONE: Final = bytes(_STAMP.size)


def stem_of(key: str) -> str:
    """The stem of a view key (what comes before the first ``?``)."""
    return key.partition("?")[0]


def _new_generation() -> int:
    # Random, not the old one plus one: two processes starting a generation at once
    # cannot draw the same one, nor one that brings an older stamp back.
    # 1 .. 2**62: never 0 ("nothing stored"), always within an int64 cell.
    return secrets.randbits(62) + 1


class TableGenerations:
    """Generations in a table of ``int64`` cells (shared memory, or the process's)."""

    def __init__(self, table: Any) -> None:
        self._cells = memoryview(table).cast("q")
        #: The cells of the keys seen lately (a hit computes none): emptied when full.
        self._known: dict[str, int] = {}

    def _cell(self, key: str) -> int:
        cell = self._known.get(key)
        if cell is None:
            stem = stem_of(key).encode("utf-8", "surrogatepass")
            cell = zlib.crc32(stem) & (SLOTS - 1)
            if len(self._known) >= KNOWN_KEYS:
                self._known.clear()
            self._known[key] = cell
        return cell

    def current(self, space: KeyValueCache, key: str) -> tuple[Any, bytes]:
        """``(what space holds under key, the stamp it must carry)``; the stamp is
        zeros when nothing may be served (nothing is read then)."""
        generation = self._cells[self._cell(key)]
        if not generation:
            return None, _NONE
        return space.get(key), _STAMP.pack(generation)

    def for_write(self, space: KeyValueCache, key: str, timeout: float | None) -> bytes:
        """The stamp of a response stored under ``key`` now for ``timeout``."""
        cell = self._cell(key)
        generation = self._cells[cell]
        if not generation:
            generation = self._cells[cell] = _new_generation()
        return _STAMP.pack(generation)

    def end(self, space: KeyValueCache, stem: str) -> bool:
        """End ``stem``'s generation; True if something may have been stored in it."""
        cell = self._cell(stem)
        ended = self._cells[cell] != 0
        self._cells[cell] = 0
        return ended


class StoreGenerations:
    """Generations under keys of the versions' space (which lives where the responses
    do: :data:`~flask_uwsgicache.keys.RECOMPUTABLE`), read with the responses."""

    @staticmethod
    def _key(key: str) -> str:
        return "generation:" + stem_of(key)  # memoize's versions are "memver:..."

    def current(self, space: KeyValueCache, key: str) -> tuple[Any, bytes]:
        versions = space.space(VERSIONS)
        try:
            storage_key = space.storage_key(key)
            generation_key = versions.storage_key(self._key(key))
        except InvalidKeyError:
            return None, _NONE
        # One round trip (MGET): both spaces are in the responses' store.
        entry, generation_entry = space.backend.get_many([storage_key, generation_key])
        if entry is None or generation_entry is None:
            return None, _NONE
        generation = versions._value(generation_key, generation_entry, None)
        if type(generation) is not bytes or len(generation) != _STAMP.size:
            return None, _NONE
        return space._value(storage_key, entry, None), generation

    def for_write(self, space: KeyValueCache, key: str, timeout: float | None) -> bytes:
        versions = space.space(VERSIONS)
        generation_key = self._key(key)
        generation = versions.get(generation_key)
        if type(generation) is not bytes or len(generation) != _STAMP.size:
            # Twice as long as the response that starts it (a key per path ever
            # cached would pile up in Redis), and never made longer: a write that
            # lengthened it could bring back one that a delete_edge just removed.
            # A response stored later that outlives it becomes a miss then.
            seconds = space.default_timeout if timeout is None else timeout
            lasts = min(2 * seconds, timeouts.MAX_TIMEOUT)
            new = _STAMP.pack(_new_generation())
            if versions.add(generation_key, new, lasts):
                generation = new
            else:  # another process started it first, or the write was refused
                generation = versions.get(generation_key)
        if type(generation) is not bytes or len(generation) != _STAMP.size:
            return _NONE  # refused or gone at once: what is stored is never served
        return generation

    def end(self, space: KeyValueCache, stem: str) -> bool:
        versions = space.space(VERSIONS)
        # The backend's own delete: an unreachable store raises, and delete_edge says so.
        return versions.backend.delete(versions.storage_key(self._key(stem)))


class UnsharedGenerations:
    """A process that could not open the table its instance's other processes share
    (lazy-apps, a file it could not open): it serves no stored response, since it
    cannot see their deletes, and deletes by listing the store's keys."""

    def current(self, space: KeyValueCache, key: str) -> tuple[Any, bytes]:
        return None, _NONE

    def for_write(self, space: KeyValueCache, key: str, timeout: float | None) -> bytes:
        return _NONE

    def end(self, space: KeyValueCache, stem: str) -> bool:
        deleted = False
        for found in space.own_keys(stem.encode("utf-8", "surrogatepass")):
            deleted = space.backend.delete(found) or deleted
        return deleted


Generations = TableGenerations | StoreGenerations | UnsharedGenerations

# The shared tables of this process, by identity (cache and prefix): two apps on one
# cache and prefix must end each other's generations.
_TABLES: dict[str, TableGenerations] = {}


def for_store(kind: str, identity: str) -> Generations | None:
    """The generations of responses in a store of this ``kind`` (a backend's
    ``name``) for ``identity``, or None where no process of the instance can keep
    them (lazy-apps without a master: delete_edge then lists the store's keys)."""
    if kind == "memory":
        return TableGenerations(bytearray(SLOTS * _STAMP.size))
    if kind != "uwsgi":
        return StoreGenerations()
    found = _TABLES.get(identity)
    if found is None:
        table = sharedtables.map_table(
            "v1.generations",
            identity,
            SLOTS * _STAMP.size,
            "delete_edge() lists every key of the cache",
        )
        if table is None:
            import uwsgi

            # With a master, the other processes may have the table this one could
            # not open: serving stored responses here could outlive their deletes.
            return UnsharedGenerations() if uwsgi.masterpid() else None
        found = _TABLES[identity] = TableGenerations(table)
    return found


class ResponseSpace:
    """The responses' key space of a cache whose stored responses carry stamps: what
    it holds is served only under its stem's current generation, and what goes in is
    stamped. Everything else is the space's own (``__getattr__``)."""

    def __init__(self, space: KeyValueCache, generations: Generations) -> None:
        self._space = space
        self.generations = generations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._space, name)

    def get(self, key: str, default: Any = None) -> Any:
        """The stored response (or marker) under ``key`` if it carries the current
        stamp of its stem, else ``default``."""
        stored, stamp = self.generations.current(self._space, key)
        if (
            type(stored) is bytes
            and stamp != _NONE
            and stored[STAMP_AT : STAMP_AT + _STAMP.size] == stamp
        ):
            return stored
        return default

    def set(self, key: str, value: Any, timeout: float | None = None) -> bool:
        """Store ``value`` (bytes of :mod:`~flask_uwsgicache.responses`) stamped with
        its stem's current generation."""
        if type(value) is bytes and len(value) >= STAMP_AT + _STAMP.size:
            stamp = self.generations.for_write(self._space, key, timeout)
            value = value[:STAMP_AT] + stamp + value[STAMP_AT + _STAMP.size :]
        return self._space.set(key, value, timeout)

    def end(self, stem: str) -> bool:
        """End ``stem``'s generation (see the module docstring)."""
        return self.generations.end(self._space, stem)
