"""Exceptions raised for rejected writes.

Every write the cache refuses is one of these. By default the cache API turns them into
a ``False`` return plus a rate-limited log line; with ``UWSGICACHE_RAISE_ERRORS`` they
reach the caller.
"""

from __future__ import annotations


class CacheError(Exception):
    """The cache refused a write. The message names the sizes involved and the fix."""


class InvalidKeyError(CacheError, ValueError):
    """The key cannot be stored (empty, or not a ``str``)."""


class ValueTooLargeError(CacheError):
    """The stored entry is larger than the cache can hold (block size or total size)."""


class CacheFullError(CacheError):
    """Every usable slot (or block) of the cache is taken and the cache does not evict."""


class SerializationError(CacheError, TypeError):
    """The value cannot be serialized by the configured serializer."""


class NotACounterError(CacheError, TypeError):
    """``inc``/``dec`` met a key that holds something other than an integer.

    Raised whatever ``UWSGICACHE_RAISE_ERRORS`` says: it is a programming error, and the
    stored value is left untouched.
    """


class BackendUnavailableError(CacheError):
    """The store could not be reached (Redis down): the write did not happen."""
