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

from ..cache2 import Cache2Options
from ..errors import ValueTooLargeError


class Backend(abc.ABC):
    """A shared store of entries. All methods are safe across threads and processes."""

    #: The ``UWSGICACHE_BACKEND`` name that selects this backend.
    name: ClassVar[str]
    #: Longest storage key in bytes; longer keys are hashed by the cache layer.
    max_key_size: int
    #: The cache2 limits this backend applies (or mirrors).
    options: Cache2Options
    #: True if :meth:`incr` is atomic in the store; the envelope then stores ints bare.
    native_counters: ClassVar[bool] = False
    #: True if other processes (or machines) can write to the store: its entries must
    #: be signed unless the app says otherwise (``UWSGICACHE_SIGN = False``).
    shared: ClassVar[bool] = True
    #: True if the store holds at most ``options.usable_items`` entries (cache2 does;
    #: Redis is bounded by its memory only).
    bounded: ClassVar[bool] = True

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

    @abc.abstractmethod
    def add(self, key: bytes, entry: bytes, ttl: float) -> bool:
        """Store ``entry`` only if ``key`` holds nothing, atomically.

        Returns False if an entry (live or not) is already there. Raises like :meth:`set`.
        """

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

    @abc.abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """A lock shared by every process using this store, for read-modify-write.

        Not reentrant. Held only around a few store calls, never around user code.
        """

    def describe(self) -> dict[str, Any]:
        """The limits of this store, for ``stats()`` and error messages."""
        options = self.options
        return {
            "backend": self.name,
            "name": options.name,
            "items": options.usable_items,
            "blocksize": options.blocksize,
            "blocks": options.blocks,
            "keysize": options.keysize,
            "max_value_size": options.max_value_size,
            "bitmap": options.bitmap,
            "purge_lru": options.purge_lru,
        }

    def check_size(self, key: bytes, entry: bytes) -> None:
        """Raise ``ValueTooLargeError`` if ``entry`` can never fit this store."""
        options = self.options
        if len(entry) > options.max_value_size:
            where = (
                f"blocksize*blocks={options.blocksize}*{options.blocks}"
                if options.bitmap
                else f"blocksize={options.blocksize} (without bitmap one value must fit "
                f"one block)"
            )
            raise ValueTooLargeError(
                f"the entry for key {key[:80]!r} (value and header) is {len(entry)} "
                f"bytes, more than the {options.max_value_size} bytes cache "
                f"{options.name!r} can hold "
                f"({where}). Store smaller values or raise blocksize in the cache2 line."
            )


def full_message(options: Cache2Options, key: bytes, entry: bytes) -> str:
    """The message for a refused write to a full cache."""
    detail = (
        f"{options.usable_items} usable items (items={options.items}, slot 0 is reserved)"
    )
    if options.bitmap:
        detail += f", {options.blocks} blocks of {options.blocksize} bytes"
    return (
        f"cache {options.name!r} is full: no room for key {key[:80]!r} "
        f"({len(entry)} bytes) in {detail}. Raise items in the cache2 line, use shorter "
        f"timeouts, or add purge_lru=1 to evict the least recently used entry."
    )


_PASSWORD = re.compile(r"(//[^:/@]*):[^@/]*@")


def shown_url(url: str) -> str:
    """``url`` without its password, for logs, ``stats()`` and ``flask uwsgicache``."""
    return _PASSWORD.sub(r"\1:***@", url)
