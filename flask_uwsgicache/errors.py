"""Exceptions raised for rejected writes.

Every write the cache refuses is one of these. By default the cache API turns them into
a ``False`` return plus a rate-limited log line; with ``UWSGICACHE_RAISE_ERRORS`` they
reach the caller. ``inc`` and ``dec`` always raise them (after the log line): they have
no ``False`` to return (``False == 0``), and a count that silently stops is what a
login-lockout or rate-limit counter must never do.
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


class CounterOverflowError(CacheError, OverflowError):
    """``inc``/``dec`` would take a counter (or ``delta``) outside the signed 64-bit range
    every backend counts in, ``-2**63`` to ``2**63 - 1``; the counter is unchanged."""


class BackendUnavailableError(CacheError):
    """The store could not be reached (Redis down): the write did not happen."""
