"""Storage keys: an app's key prefix, a key space and the key as UTF-8, hashed to fit.

uWSGI rejects keys longer than ``keysize`` without an error and silently truncates keys
of 64 KiB or more (docs/uwsgi-cache2-facts.rst §1), so no key longer than the store
takes is ever passed to it. Keys that fit stay readable, for uWSGI's own tools.

A namespace (an app's ``UWSGICACHE_KEY_PREFIX``, a Redis cache's name) is written
followed by the byte 0xFD, which never occurs in UTF-8 either (:func:`fenced`): the
namespaces of two non-empty strings never contain one another, whatever the strings
(``shop:`` and ``shop:admin:`` are as far apart as ``a`` and ``b``), and no key of one
app can name an entry of another.

Key spaces keep what different parts of the package store apart: the values of
``get``/``set`` (no marker), whole responses of cached views, results of plain functions
under ``cached``, memoized results, and internal entries (leases, versions, statistics).
Every space but the users' starts with the byte 0xFE, which never occurs in UTF-8: no
``str`` key can name an entry of another space, and a response is only ever read from
the responses' space.
"""

from __future__ import annotations

import base64
import hashlib

from .errors import InvalidKeyError

# A hashed key is its readable head, this byte, and a digest. 0xFF never occurs in UTF-8,
# so a hashed key can never equal the plain key of another str.
HASH_MARK = b"\xff"
DIGEST_CHARS = 22
HASHED_TAIL = len(HASH_MARK) + DIGEST_CHARS

# Ends every namespace (see the module docstring); never in UTF-8.
FENCE = b"\xfd"

#: The key spaces (see the module docstring): the bytes between an app's prefix and a key.
USER = b""
RESPONSES = b"\xfeR"
RESULTS = b"\xfeC"
MEMOIZED = b"\xfeM"
INTERNAL = b"\xfeI"
#: Versions of memoized functions and instances (``delete_memoized`` bumps them).
VERSIONS = b"\xfeV"
#: Appended to a space's tag: the space of its "still fresh" marks
#: (``stale_while_revalidate``), next to the entries they are about.
FRESH = b"\xfeF"
#: Spaces whose entries can be computed again: with ``UWSGICACHE_RESPONSES_NAME`` they
#: live in that cache (which may evict), apart from the app's data and counters.
RECOMPUTABLE = (RESPONSES, RESULTS, MEMOIZED, VERSIONS)


def fenced(namespace: str) -> bytes:
    """``namespace`` as the start of storage keys: UTF-8 and :data:`FENCE`, so that no
    other namespace's keys start with it; ``b""`` for ``""`` (the whole store)."""
    if not namespace:
        return b""
    return namespace.encode("utf-8", "surrogatepass") + FENCE


def storage_key(prefix: bytes, key: str, max_size: int) -> bytes:
    """The store's key for ``key`` under ``prefix`` (the app's prefix and a key space):
    UTF-8, at most ``max_size`` bytes.

    Raises :class:`InvalidKeyError` for an empty or non-``str`` key.
    """
    if type(key) is not str and not isinstance(key, str):
        raise InvalidKeyError(f"cache keys are str, not {type(key).__name__}: {key!r:.80}")
    if not key:
        raise InvalidKeyError("the empty string is not a cache key")
    try:
        encoded = prefix + key.encode()
    except UnicodeEncodeError:  # lone surrogates: still one distinct key each
        encoded = prefix + key.encode("utf-8", "surrogatepass")
    if len(encoded) <= max_size:
        return encoded
    return hashed(encoded, max_size)


def hashed(encoded: bytes, max_size: int) -> bytes:
    """``encoded`` cut to its head and a digest of the whole, ``max_size`` bytes long."""
    digest = hashlib.blake2b(encoded, digest_size=16).digest()
    tail = HASH_MARK + base64.urlsafe_b64encode(digest)[:DIGEST_CHARS]
    return encoded[: max_size - len(tail)] + tail


def short_digest(text: str) -> str:
    """A 12-character digest of ``text`` (72 bits), for parts of keys kept short."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=9)
    return base64.urlsafe_b64encode(digest.digest()).decode()
