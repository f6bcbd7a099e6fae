"""The byte-level contract every backend implements.

Backends store opaque entries (bytes made by :mod:`flask_uwsgicache.envelope`) under
storage keys (non-empty bytes of at most :attr:`Backend.max_key_size`). They know nothing
of serializers, prefixes or exact expiry: the ``ttl`` they get (seconds, a float; 0 for
never) is when the entry's own expiry passes, a backstop that lets the store reclaim
space. A store may keep an entry longer (uWSGI counts whole seconds), never shorter.

Refused writes raise a :class:`~flask_uwsgicache.errors.CacheError` subclass whose
message names the sizes involved; the cache layer turns it into ``False`` plus a log line
unless ``UWSGICACHE_RAISE_ERRORS`` is set. Nothing here returns ``None`` for failure.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from ..errors import ValueTooLargeError


class Backend(abc.ABC):
    """A shared store of entries. All methods are safe across threads and processes."""

    #: The ``UWSGICACHE_BACKEND`` name that selects this backend.
    name: ClassVar[str]
    #: The store's name: a cache2 line's ``name=``, a Redis namespace's cache name.
    cache_name: str
    #: Longest storage key in bytes; longer keys are hashed by the cache layer.
    max_key_size: int
    #: Largest entry in bytes (value and header) the store can ever hold.
    max_value_size: int
    #: Most entries the store holds; None when only its memory bounds it (Redis).
    max_items: int | None
    #: True if :meth:`incr` is atomic in the store; the envelope then stores ints bare.
    native_counters: ClassVar[bool] = False
    #: True if other processes (or machines) can write to the store: its entries must
    #: be signed unless the app says otherwise (``UWSGICACHE_SIGN = False``).
    shared: ClassVar[bool] = True

    @abc.abstractmethod
    def get(self, key: bytes) -> bytes | None:
        """The entry under ``key``, or ``None`` if there is none."""

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        """The entries under ``keys``, in order (one round trip where the store can)."""
        return [self.get(key) for key in keys]

    def reader(self) -> tuple[Callable[[bytes, str], bytes | None], str]:
        """``(read, name)`` with ``read(key, name)`` equal to :meth:`get`: the hot path's
        form, so the uwsgi backend can hand out ``uwsgi.cache_get`` itself (no Python
        frame in between)."""
        return (lambda key, _name: self.get(key)), ""

    @abc.abstractmethod
    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        """Store ``entry`` under ``key``, replacing any entry (upsert).

        ``ttl`` is seconds for the store's own expiry, 0 for none. Raises
        ``ValueTooLargeError`` or ``CacheFullError``; a refused write leaves the old
        entry, and every other entry, as they were.
        """

    def set_refused(self, key: bytes, entry: bytes, ttl: float) -> None:
        """:meth:`set`, after the store refused a first attempt at this write (made by
        the C speedups' copy of the fast path, :meth:`fast_update`): what ``set`` would
        do next. Raises like :meth:`set`."""
        self.set(key, entry, ttl)

    def fast_update(self) -> Callable[[bytes, bytes, int, str], object] | None:
        """The store's own write call (uWSGI's ``cache_update``), for the C speedups
        to make :meth:`set`'s common write without a Python frame; None where they
        call :meth:`set` (every store but uWSGI)."""
        return None

    @property
    def bounded(self) -> bool:
        """True if the store holds at most :attr:`max_items` entries."""
        return self.max_items is not None

    @abc.abstractmethod
    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        """Store ``entry`` only if ``key`` holds nothing, atomically.

        Returns False if an entry (live or not) is already there. Raises like :meth:`set`.
        """

    def add(
        self,
        key: bytes,
        entry: bytes,
        ttl: float,
        replaceable: Callable[[bytes], bool] | None = None,
    ) -> bool:
        """Store ``entry`` only if ``key`` holds nothing, or an entry ``replaceable``
        says may go (expired, or not a valid entry), atomically with other adds.

        Returns False if an entry ``replaceable`` keeps is there. Raises like
        :meth:`set`. A store that keeps expired entries until it sweeps (uWSGI without
        a master keeps them for ever, and cache_set fails on them:
        docs/uwsgi-cache2-facts.rst §2, §5) needs the check.
        """
        if self.insert(key, entry, ttl):
            return True
        if replaceable is None:
            return False
        with self.lock():
            current = self.get(key)
            if current is not None and not replaceable(current):
                return False
            if current is not None:
                self.delete(key)
            return self.insert(key, entry, ttl)

    def make_room(self, expired: Callable[[bytes], bool]) -> bool:
        """Free the room of entries ``expired`` says are dead, after a write was
        refused because the store is full; True if any went. Only stores that keep
        expired entries do anything here, at most once a second."""
        return False

    def incr(
        self,
        key: bytes,
        delta: int,
        ttl: float,
        mac_key: bytes = b"",
        replacing: bytes = b"",
    ) -> int:
        """Add ``delta`` to the counter entry under ``key`` atomically; the new value.

        A counter entry is :mod:`flask_uwsgicache.envelope`'s: digits, signed with
        ``mac_key`` when it is not empty. A missing key counts as 0 and gets ``ttl``;
        so does one that holds digits without a valid MAC, or exactly ``replacing``
        (an entry the caller found invalid); an existing counter keeps its expiry.
        Only where :attr:`native_counters`; raises ``NotACounterError`` for a key that
        holds something else and ``CounterOverflowError`` past the signed 64-bit range,
        leaving the entry as it was.
        """
        raise NotImplementedError(f"the {self.name} backend has no native counters")

    def expire(self, key: bytes, ttl: float) -> bool:
        """Give the entry under ``key`` the store's expiry ``ttl`` (0: none), leaving
        its value alone; False if there is none. Only where :attr:`native_counters`
        (a counter entry has no expiry field of its own)."""
        raise NotImplementedError(f"the {self.name} backend has no native counters")

    @abc.abstractmethod
    def delete(self, key: bytes) -> bool:
        """Remove ``key``; True if there was an entry."""

    @abc.abstractmethod
    def keys(self) -> list[bytes]:
        """Every storage key in the store (whatever wrote it).

        Raises :class:`~flask_uwsgicache.errors.BackendUnavailableError` when the store
        cannot be listed: an empty list means an empty store, never "unknown".
        """

    @abc.abstractmethod
    def clear(self) -> None:
        """Remove every entry of the store."""

    def item_count(self) -> int | None:
        """How many items the whole store holds (expired ones the store has not dropped
        yet included), when it can tell without walking its keys; None otherwise."""
        return None

    @abc.abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """A lock shared by every process using this store, for read-modify-write.

        Not reentrant. Held only around a few store calls, never around user code.
        """

    @property
    def secret_scope(self) -> str:
        """What the key that signs entries is derived for, with :attr:`cache_name`:
        stores that hold the same entries name the same scope."""
        return self.name

    def close(self) -> None:
        """Let go of the connections and threads this backend holds (a test's or a
        script's end). Shared memory and the in-process store hold none: their entries
        stay."""
        return None

    def describe(self) -> dict[str, Any]:
        """The limits of this store, for ``stats()`` and error messages."""
        return {
            "backend": self.name,
            "name": self.cache_name,
            "items": self.max_items,
            "keysize": self.max_key_size,
            "max_value_size": self.max_value_size,
        }

    def too_large_hint(self) -> str:
        """The end of the message for an entry too large: what bounds the size of an
        entry here, and how to raise it."""
        return ". Store smaller values."

    def check_size(self, key: bytes, entry: bytes) -> None:
        """Raise ``ValueTooLargeError`` if ``entry`` can never fit this store."""
        if len(entry) > self.max_value_size:
            raise ValueTooLargeError(
                f"the entry for key {key[:80]!r} (value and header) is {len(entry)} "
                f"bytes, more than the {self.max_value_size} bytes cache "
                f"{self.cache_name!r} can hold{self.too_large_hint()}"
            )


# The user's part of a URL's authority runs to its last "@" (a password may hold one).
_PASSWORD = re.compile(r"(//[^:/@]*):[^/]*@")
# Passwords in the query string (redis+sentinel://...?sentinel_password=...).
_QUERY_PASSWORD = re.compile(r"([?&][^=&]*password=)[^&]*", re.IGNORECASE)


def shown_url(url: str) -> str:
    """``url`` without its passwords, for logs, ``stats()`` and ``flask uwsgicache``."""
    return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1:***@", url))
