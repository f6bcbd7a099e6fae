"""Storage keys: an app's key prefix and key as UTF-8, hashed to fit the store's keysize.

uWSGI rejects keys longer than ``keysize`` without an error and silently truncates keys
of 64 KiB or more (reference/uwsgi-cache2.md §0.5), so no key longer than the store
takes is ever passed to it. Keys that fit stay readable, for uWSGI's own tools.
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


def storage_key(prefix: str, key: str, max_size: int) -> bytes:
    """The store's key for ``key`` under ``prefix``: UTF-8, at most ``max_size`` bytes.

    Raises :class:`InvalidKeyError` for an empty or non-``str`` key.
    """
    try:
        encoded = (prefix + key).encode()
    except TypeError:
        raise InvalidKeyError(
            f"cache keys are str, not {type(key).__name__}: {key!r:.80}"
        ) from None
    except UnicodeEncodeError:  # lone surrogates: still one distinct key each
        encoded = (prefix + key).encode("utf-8", "surrogatepass")
    if not key:
        raise InvalidKeyError("the empty string is not a cache key")
    if len(encoded) <= max_size:
        return encoded
    digest = hashlib.blake2b(encoded, digest_size=16).digest()
    tail = HASH_MARK + base64.urlsafe_b64encode(digest)[:DIGEST_CHARS]
    return encoded[: max_size - len(tail)] + tail
