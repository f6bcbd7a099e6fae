"""A backend that stores nothing: Flask-Caching's ``NullCache`` (``CACHE_TYPE = "null"``).

Every read is a miss and every write succeeds without being kept, so an app runs as if
its decorators were not there: for tests, or to switch caching off by configuration.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

from .. import cache2
from .base import Backend


class NullBackend(Backend):
    """Accepts every write and keeps none of them."""

    name = "null"
    shared = False
    bounded = False

    def __init__(self, cache_name: str) -> None:
        self.options = cache2.parse(f"name={cache_name},items=2")
        self.max_key_size = self.options.keysize

    def get(self, key: bytes) -> bytes | None:
        return None

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        """Keeps nothing."""

    def add(self, key: bytes, entry: bytes, ttl: float) -> bool:
        return True

    def delete(self, key: bytes) -> bool:
        return False

    def keys(self) -> list[bytes]:
        return []

    def clear(self) -> None:
        """There is nothing to clear."""

    def lock(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()
