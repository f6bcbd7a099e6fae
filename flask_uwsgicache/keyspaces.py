"""Where a cache's keys go: the app's prefix, the key spaces, the store each space
lives in, and how long a key may be there.

Every storage key starts with the app's ``UWSGICACHE_KEY_PREFIX`` (fenced: no prefix's
keys start another's) and, outside the users' space, a space tag
(:mod:`flask_uwsgicache.keys`). What can be computed again (:data:`keys.RECOMPUTABLE`)
goes to the responses' store when there is one (``UWSGICACHE_RESPONSES_NAME``).
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

from .backends.base import Backend
from .keys import HASHED_TAIL, INTERNAL, RECOMPUTABLE, RESPONSES, USER, fenced
from .keys import storage_key as encode_key

_Spaces = TypeVar("_Spaces", bound="KeySpaces")
# A space marker (2), a hashed view-key stem (13) and "?" (see views' keys).
_MIN_HEAD = 16


#: How many storage keys a key space remembers (see ``KeySpaces._known_keys``).
KNOWN_KEYS = 8192


class KeySpaces:
    """The keys of one app's cache, in the users' space or, through :meth:`space`,
    another."""

    def __init__(
        self, backend: Backend, key_prefix: str, responses_backend: Backend | None
    ) -> None:
        self.backend = backend
        #: Where what can be computed again goes when not in ``backend``: responses of
        #: cached views, results of cached functions, memoized results and versions,
        #: and their freshness marks (``UWSGICACHE_RESPONSES_NAME``: a cache of their
        #: own, which may evict; :data:`keys.RECOMPUTABLE`).
        self.responses_backend = responses_backend
        self.key_prefix = key_prefix
        #: The bytes every storage key of this object starts with: the app's prefix and
        #: the key space (:mod:`flask_uwsgicache.keys`); ``space()`` gives the others.
        self._prefix_bytes = fenced(key_prefix)
        self._max_key = self._key_room(backend)
        if responses_backend is not None:
            self._key_room(responses_backend)
        self.space_tag = USER
        self._spaces: dict[bytes, Any] = {USER: self}
        self._read, self._read_name = backend.reader()
        #: The storage keys of the str keys seen lately, so that the hot paths do not
        #: encode (or hash) a key again on every call; emptied when full.
        self._known_keys: dict[str, bytes] = {}

    def _key_room(self, backend: Backend) -> int:
        """The longest key ``backend`` takes; ``ValueError`` if the prefix leaves too
        little of it."""
        room = min(backend.max_key_size, 65535)
        # Room for a space marker, a view key's shortest stem and "?" in the readable
        # head of a hashed key: delete_edge finds a path's entries by that head.
        if len(self._prefix_bytes) + _MIN_HEAD + HASHED_TAIL > room:
            raise ValueError(
                f"UWSGICACHE_KEY_PREFIX takes {len(self._prefix_bytes)} bytes of every key "
                f"(its UTF-8 and an end marker); with a hashed key it must leave "
                f"{_MIN_HEAD + HASHED_TAIL} bytes of the cache's "
                f"keysize={backend.max_key_size}. Use a shorter prefix or raise keysize "
                f"in the cache2 line."
            )
        return room

    def space(self: _Spaces, tag: bytes) -> _Spaces:
        """This cache seen through key space ``tag`` (``keys.RESPONSES``, ``RESULTS``,
        ``MEMOIZED`` or ``INTERNAL``): the same store, limits and state, with keys that
        no other space can reach."""
        found: _Spaces | None = self._spaces.get(tag)
        if found is None:
            found = copy.copy(self._spaces[USER])
            found.space_tag = tag
            found._known_keys = {}
            found._prefix_bytes = self._spaces[USER]._prefix_bytes + tag
            if tag[:2] in RECOMPUTABLE and self.responses_backend is not None:
                found.backend = self.responses_backend
                found._read, found._read_name = found.backend.reader()
                found._max_key = self._key_room(found.backend)
            found._spaced()
            self._spaces[tag] = found
        return found

    def _spaced(self) -> None:
        """Called on a key space made by :meth:`space`, once it is set up."""

    @property
    def responses(self: _Spaces) -> _Spaces:
        """The key space of whole responses of cached views."""
        return self.space(RESPONSES)

    @property
    def internal(self: _Spaces) -> _Spaces:
        """The key space of the package's own entries (leases, versions, statistics)."""
        return self.space(INTERNAL)

    @property
    def stem_budget(self) -> int:
        """How long the start of a key may be and still stay readable when the key is
        hashed (see :func:`flask_uwsgicache.keys.hashed`)."""
        return self._max_key - HASHED_TAIL - len(self._prefix_bytes) - 1

    def storage_key(self, key: str) -> bytes:
        """The backend key for ``key``: prefix + UTF-8, hashed when too long (see
        :mod:`flask_uwsgicache.keys`); ``InvalidKeyError`` for an empty or odd key."""
        if type(key) is not str:
            return encode_key(self._prefix_bytes, key, self._max_key)
        found = self._known_keys.get(key)
        if found is None:
            found = encode_key(self._prefix_bytes, key, self._max_key)
            if len(self._known_keys) >= KNOWN_KEYS:
                self._known_keys.clear()
            self._known_keys[key] = found
        return found

    def own_keys(self, start: bytes = b"") -> list[bytes]:
        """Storage keys under this app's prefix and space (of the users' space: every
        space), followed by ``start``; expired ones included."""
        prefix = self._prefix_bytes + start
        return [key for key in self.backend.keys() if key.startswith(prefix)]
