"""A backend that stores nothing: Flask-Caching's ``NullCache`` (``CACHE_TYPE = "null"``).

Every read is a miss and every write succeeds without being kept, so an app runs as if
its decorators were not there: for tests, or to switch caching off by configuration.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from .base import Backend


class NullBackend(Backend):
    """Accepts every write and keeps none of them."""

    name = "null"
    shared = False

    def __init__(self, cache_name: str) -> None:
        self.cache_name = cache_name
        self.max_key_size = 2048  # cache2's default keysize: keys look as there
        self.max_value_size = 65536
        self.max_items = None

    def get(self, key: bytes) -> bytes | None:
        return None

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        """Keeps nothing."""

    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        return True

    def delete(self, key: bytes) -> bool:
        return False

    def keys(self) -> list[bytes]:
        return []

    def clear(self) -> None:
        """There is nothing to clear."""

    def item_count(self) -> int:
        return 0

    def lock(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
