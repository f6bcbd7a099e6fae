"""A uWSGI ``cache2`` cache through the ``uwsgi`` module (only importable under uWSGI).

Every uWSGI cache function answers ``True`` or ``None`` (never ``False``), takes
positional arguments only, and fails silently on an oversize value, a full cache or an
unknown cache name (docs/uwsgi-cache2-facts.rst §1). This module checks what it can before
the call and turns each ``None`` into a result or an error with the sizes involved.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import uwsgi

from .. import cache2
from ..errors import CacheFullError
from .cache2store import Cache2Store

logger = logging.getLogger("flask_uwsgicache")


#: The most entries one sweep of a full cache reads (see UWSGIBackend.make_room).
SWEEP_READS = 1000


class _Cache(ctypes.Structure):
    """The head of uWSGI's ``struct uwsgi_cache`` (``uwsgi.h``), up to the fields read
    here: the same in 2.0.8 (commit 1aa6eeca, 2014) through 2.0.31 and master
    (docs/uwsgi-cache2-facts.rst §9)."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("name_len", ctypes.c_uint16),
        ("keysize", ctypes.c_uint64),
        ("blocks", ctypes.c_uint64),
        ("blocksize", ctypes.c_uint64),
        ("hash", ctypes.c_void_p),
        ("hashtable", ctypes.c_void_p),
        ("hashsize", ctypes.c_uint32),
        ("first_available_block", ctypes.c_uint64),
        ("unused_blocks_stack", ctypes.c_void_p),
        ("unused_blocks_stack_ptr", ctypes.c_uint64),
        ("use_blocks_bitmap", ctypes.c_uint8),
        ("blocks_bitmap", ctypes.c_void_p),
        ("blocks_bitmap_pos", ctypes.c_uint64),
        ("blocks_bitmap_size", ctypes.c_uint64),
        ("max_items", ctypes.c_uint64),
        ("max_item_size", ctypes.c_uint64),
        ("n_items", ctypes.c_uint64),
        ("items", ctypes.c_void_p),
        ("use_last_modified", ctypes.c_uint8),
        ("last_modified_at", ctypes.c_long),
        ("data", ctypes.c_void_p),
        ("no_expire", ctypes.c_uint8),
        ("full", ctypes.c_uint64),
        ("hits", ctypes.c_uint64),
        ("miss", ctypes.c_uint64),
        ("store", ctypes.c_char_p),
        ("filesize", ctypes.c_uint64),
        ("store_sync", ctypes.c_uint64),
        ("math_initial", ctypes.c_int64),
        ("nodes", ctypes.c_void_p),
        ("udp_node_socket", ctypes.c_int),
        ("sync_nodes", ctypes.c_void_p),
        ("udp_servers", ctypes.c_void_p),
        ("lock", ctypes.c_void_p),
        ("next", ctypes.c_void_p),
        ("ignore_full", ctypes.c_int),
        ("next_scan", ctypes.c_uint64),
        ("purge_lru", ctypes.c_int),
        ("lru_head", ctypes.c_uint64),
        ("lru_tail", ctypes.c_uint64),
        ("store_delete", ctypes.c_int),
        ("lazy_expire", ctypes.c_int),
    ]


def _structure(name: str) -> _Cache | None:
    """uWSGI's structure of cache ``name`` (``uwsgi_cache_by_name``, exported by the
    uWSGI binary; the structure is in memory shared by every process), if it can be
    found and what is read adds up; None otherwise (another layout)."""
    try:
        by_name = ctypes.CDLL(None).uwsgi_cache_by_name
    except (AttributeError, OSError):
        return None
    by_name.restype = ctypes.POINTER(_Cache)
    by_name.argtypes = [ctypes.c_char_p]
    found = by_name(name.encode())
    if not found:
        return None
    cache: _Cache = found.contents
    if (
        cache.name != name.encode()
        or cache.name_len != len(name.encode())
        or not 0 < cache.keysize < 65536
        or not 0 < cache.blocksize
        or not 0 < cache.max_items <= cache.blocks
        or cache.use_blocks_bitmap not in (0, 1)
        or cache.n_items > cache.max_items
    ):
        return None
    return cache


def running_options(name: str) -> cache2.Cache2Options | None:
    """The options cache ``name`` runs with, read from uWSGI's own cache structure;
    None if that cannot be done."""
    cache = _structure(name)
    if cache is None:
        return None
    return cache2.Cache2Options(
        name=name,
        items=cache.max_items,
        blocksize=cache.blocksize,
        blocks=cache.blocks,
        keysize=cache.keysize,
        bitmap=bool(cache.use_blocks_bitmap),
        purge_lru=bool(cache.purge_lru),
        lazy_expire=bool(cache.lazy_expire),
        no_expire=bool(cache.no_expire),
    )


def find_options(name: str) -> cache2.Cache2Options | None:
    """The cache2 options of cache ``name`` as uWSGI runs it, if they can be read.

    From uWSGI's cache structure (:func:`running_options`), or else from ``uwsgi.opt``.
    uWSGI 2.0 on Python 3 keeps only the *last* value of a repeated option in
    ``uwsgi.opt`` (unbit/uwsgi#1374, docs/uwsgi-cache2-facts.rst §9), so with several
    cache2 lines only the last one is visible there.
    """
    running = running_options(name)
    if running is not None:
        return running
    found = uwsgi.opt.get("cache2")
    lines = found if isinstance(found, list) else [found]
    for line in lines:
        if isinstance(line, bytes):
            options = cache2.parse(line.decode(errors="replace"))
            if options.name == name:
                return options
    legacy = uwsgi.opt.get("cache")
    if name == "default" and isinstance(legacy, bytes):
        # The legacy --cache N creates "default", sized by --cache-blocksize.
        blocksize = uwsgi.opt.get("cache-blocksize")
        legacy_line = f"name=default,items={legacy.decode()}"
        if isinstance(blocksize, bytes):
            legacy_line += f",blocksize={blocksize.decode()}"
        return cache2.parse(legacy_line)
    return None


class UWSGIBackend(Cache2Store):
    """One named uWSGI cache. Construct under uWSGI only; checks the cache exists."""

    name = "uwsgi"

    def __init__(self, cache_name: str, setting: str = "UWSGICACHE_NAME") -> None:
        if not cache_name or "@" in cache_name:
            # A name with "@" makes every call a network request
            # (docs/uwsgi-cache2-facts.rst §11).
            raise ValueError(
                f"{setting} {cache_name!r} is not a local cache name: set it to the "
                f"name= of a cache2 line (names with '@' are remote uWSGI caches)."
            )
        try:
            # The only call that tells a missing cache from an empty one
            # (docs/uwsgi-cache2-facts.rst §9).
            uwsgi.cache_keys(cache_name)
        except ValueError:
            raise ValueError(
                f"uWSGI has no cache named {cache_name!r} ({setting}). Add this "
                f"line to the [uwsgi] section of your ini: "
                f"{cache2.ini_hint(cache_name)} , or set {setting} to an existing "
                f"cache."
            ) from None
        self.cache_name = cache_name
        self._full_until = 0.0
        self._updates_full_until = 0.0
        options = find_options(cache_name)
        if options is None:
            logger.warning(
                "flask-uwsgicache: cannot read the cache2 options of cache %r, neither "
                "from uWSGI's cache structure (another uWSGI version?) nor from uwsgi.opt "
                "(which keeps only the last cache2 line, unbit/uwsgi#1374); assuming "
                "uWSGI's defaults (keysize=2048, blocksize=65536). Put this cache's "
                "cache2 line last.",
                cache_name,
            )
            options = cache2.parse(f"name={cache_name},items=2")
        self.use_options(options)
        self.cache_name = cache_name  # as given: every uWSGI call names it
        self._last_sweep = -math.inf
        self._no_expiry = self.options.purge_lru
        self._structure = _structure(cache_name)
        self._sweep_from = 0
        if uwsgi.numproc > 1 and uwsgi.opt.get("lock-engine") != b"ipcsem":
            # The default pthread rwlock is not robust (docs/uwsgi-cache2-facts.rst §7):
            # measured in docs/operations.rst, "Deploying", with the trade-off.
            logger.warning(
                "flask-uwsgicache: cache %r runs with uWSGI's default lock engine and %d "
                "processes: a worker killed while holding the cache's write lock "
                "(harakiri, the OOM killer) blocks every later cache call forever "
                "(unbit/uwsgi#1202). Set lock-engine = ipcsem in the [uwsgi] section.",
                cache_name,
                uwsgi.numproc,
            )
        if options.lazy_expire and uwsgi.numproc > 1:
            logger.warning(
                "flask-uwsgicache: cache %r uses lazy_expire with %d processes: uWSGI "
                "deletes expired items under a read lock, which can corrupt the cache "
                "(docs/uwsgi-cache2-facts.rst §8). Remove lazy_expire or use "
                "lock-engine = ipcsem.",
                cache_name,
                uwsgi.numproc,
            )

    def _expires(self, ttl: float) -> int:
        # With purge_lru uWSGI stores expires as an absolute epoch (1970), and with
        # lazy_expire as well it deletes the item on first read
        # (docs/uwsgi-cache2-facts.rst §5).
        if self._no_expiry or not ttl:
            return 0
        # uWSGI's expiry has 1 s resolution: one second more so it never ends first.
        return math.ceil(ttl) + 1

    def get(self, key: bytes) -> bytes | None:
        return uwsgi.cache_get(key, self.cache_name)

    def reader(self) -> tuple[Callable[[bytes, str], bytes | None], str]:
        return uwsgi.cache_get, self.cache_name

    def _known_full(self, key: bytes) -> bool:
        """True while a write like this one was refused a moment ago.

        uWSGI logs "DANGER cache ... is FULL" for every write it refuses (reference
        §1.3), a line per request under load; for a second after a refusal, writes of
        new keys are refused here without asking uWSGI. Updates of existing keys still
        go to uWSGI, unless an update was refused too: in bitmap mode uWSGI takes the
        new blocks before it frees the old ones, so updates fail when blocks run out.
        A delete (a slot or blocks free again) ends both.
        """
        now = time.monotonic()
        if now >= self._full_until and now >= self._updates_full_until:
            self._full_until = self._updates_full_until = 0.0  # the hot path again
            return False
        exists = bool(uwsgi.cache_exists(key, self.cache_name))
        return now < (self._updates_full_until if exists else self._full_until)

    def _full(self, key: bytes, entry: bytes) -> CacheFullError:
        if uwsgi.cache_exists(key, self.cache_name):
            self._updates_full_until = time.monotonic() + 1.0
        else:
            self._full_until = time.monotonic() + 1.0
        return CacheFullError(self.full_message(key, entry))

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        # cache_set is "add" in uWSGI; upsert is cache_update, and it replaces the
        # stored expiry, so the TTL is passed every time (docs/uwsgi-cache2-facts.rst §2).
        # The C speedups repeat this fast path (fast_update()); keep them in step.
        expires = 0 if self._no_expiry or not ttl else math.ceil(ttl) + 1  # _expires()
        if (
            not self._full_until
            and not self._updates_full_until
            and len(entry) <= self.max_value_size
        ):  # the hot path: no write was refused a moment ago and the entry fits
            if uwsgi.cache_update(key, entry, expires, self.cache_name):
                return
            self._update(key, entry, expires, 1)
            return
        self.check_size(key, entry)
        if self._known_full(key):
            raise CacheFullError(self.full_message(key, entry))
        self._update(key, entry, expires, 0)

    def set_refused(self, key: bytes, entry: bytes, ttl: float) -> None:
        self._update(key, entry, self._expires(ttl), 1)

    def _update(self, key: bytes, entry: bytes, expires: int, attempts: int) -> None:
        """:meth:`set`'s ``cache_update`` of ``entry`` until ``attempts`` reach the
        limit; raises ``CacheFullError`` when every one was refused."""
        # One attempt (each refusal is a "DANGER ... FULL" line and one more in uWSGI's
        # "full" count), but three with bitmap+purge_lru, which evicts an item and still
        # fails once (docs/uwsgi-cache2-facts.rst §4).
        limit = 3 if self.options.bitmap and self.options.purge_lru else 1
        while attempts < limit:
            if uwsgi.cache_update(key, entry, expires, self.cache_name):
                return
            attempts += 1
        raise self._full(key, entry)

    def fast_update(self) -> Callable[[bytes, bytes, int, str], object] | None:
        # Only for this class's set(): a subclass that changes it is written through it.
        if type(self).set is not UWSGIBackend.set:
            return None
        return uwsgi.cache_update

    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        self.check_size(key, entry)
        if time.monotonic() < self._full_until:
            if uwsgi.cache_exists(key, self.cache_name):
                return False
            raise CacheFullError(self.full_message(key, entry))
        expires = self._expires(ttl)
        for _attempt in range(3):
            if uwsgi.cache_set(key, entry, expires, self.cache_name):
                return True
            # cache_set answers None both when the key exists and when the cache is full.
            # (or the key was deleted in between: try again).
            if uwsgi.cache_exists(key, self.cache_name):
                return False
        raise self._full(key, entry)

    def make_room(self, expired: Callable[[bytes], bool]) -> bool:
        """Delete the entries ``expired`` says are dead, reading at most
        :data:`SWEEP_READS` of them, at most once a second.

        uWSGI frees expired slots only with a master and not with purge_lru or
        lazy_expire (docs/uwsgi-cache2-facts.rst §5), so a cache can be "full" of
        entries that are all dead. Each sweep reads the next window of keys (uWSGI
        lists them in slot order), so a big cache is covered over several seconds and
        no refused write pays for reading every value.
        """
        now = time.monotonic()
        if now - self._last_sweep < 1.0:
            return False
        self._last_sweep = now
        keys = self.keys()
        if not keys:
            return False
        start = self._sweep_from % len(keys)
        window = keys[start : start + SWEEP_READS]
        window += keys[: min(start, SWEEP_READS - len(window))]  # from the start again
        self._sweep_from = start + len(window)
        freed = 0
        for key in window:
            entry = self.get(key)
            if entry is not None and expired(entry) and self.delete(key):
                freed += 1
        return freed > 0

    def delete(self, key: bytes) -> bool:
        deleted = bool(uwsgi.cache_del(key, self.cache_name))
        if deleted:
            self._full_until = self._updates_full_until = 0.0  # room again
        return deleted

    def keys(self) -> list[bytes]:
        return uwsgi.cache_keys(self.cache_name)

    def clear(self) -> None:
        uwsgi.cache_clear(self.cache_name)

    def item_count(self) -> int | None:
        # uWSGI counts its items in the cache's structure, shared by every process;
        # Python has no call that reads it (docs/uwsgi-cache2-facts.rst §9).
        if self._structure is None:
            return None
        return int(self._structure.n_items)

    def lock(self) -> AbstractContextManager[None]:
        return _user_lock()


@contextlib.contextmanager
def _user_lock() -> Iterator[None]:
    # uWSGI's user lock 0 is shared by every process: a robust pthread mutex on Linux
    # ("lock engine: pthread robust mutexes" at start), or a SysV semaphore with
    # lock-engine = ipcsem; either way a worker killed holding it does not block the
    # others (unlike the cache's own rwlock, docs/uwsgi-cache2-facts.rst §7).
    uwsgi.lock()
    try:
        yield
    finally:
        uwsgi.unlock()
