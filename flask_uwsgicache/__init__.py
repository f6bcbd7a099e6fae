"""A shared cache for Flask apps served by uWSGI: one cache for every worker process."""

from __future__ import annotations

from .appcache import BoundCache
from .errors import (
    BackendUnavailableError,
    CacheError,
    CacheFullError,
    CounterOverflowError,
    InvalidKeyError,
    NotACounterError,
    SerializationError,
    ValueTooLargeError,
)
from .extension import UWSGICache
from .jinja import make_template_fragment_key
from .responses import CachedResponse

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError",
    "BoundCache",
    "CacheError",
    "CachedResponse",
    "CacheFullError",
    "CounterOverflowError",
    "InvalidKeyError",
    "NotACounterError",
    "SerializationError",
    "UWSGICache",
    "ValueTooLargeError",
    "make_template_fragment_key",
]
