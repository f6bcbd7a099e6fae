"""A shared cache for Flask apps served by uWSGI: one cache for every worker process."""

from __future__ import annotations

from .cache import BoundCache
from .errors import (
    BackendUnavailableError,
    CacheError,
    CacheFullError,
    InvalidKeyError,
    NotACounterError,
    SerializationError,
    ValueTooLargeError,
)
from .extension import UWSGICache

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "BoundCache",
    "CacheError",
    "CacheFullError",
    "InvalidKeyError",
    "NotACounterError",
    "SerializationError",
    "UWSGICache",
    "ValueTooLargeError",
]
