"""The C speedups (``_speedups.c``): KeyValueCache.get and .set and the envelope's fast
paths. Optional: flask_uwsgicache.cache loads them if they were built."""

from collections.abc import Callable
from typing import Any, Final

TRAILER_SIZE: Final[int]
SIGNED: Final[int]
MAC_SIZE: Final[int]

def configure(
    missing: object,
    lead: bytes,
    view_from: int,
    max_timeout: int,
    dumps: Callable[[Any, int], bytes],
    /,
) -> bool:
    """Give the module envelope.py's constants and ``pickle.dumps``; False (and
    nothing changed) when another interpreter of this process gave it its own."""

def decode(envelope: Any, key: bytes, entry: bytes, /) -> Any:
    """``envelope.decode(key, entry)``, with the common case in C."""

def encode(envelope: Any, key: bytes, value: Any, expires_at: float, /) -> bytes:
    """``envelope.encode(key, value, expires_at)``, with dicts and lists in C."""

class FastPaths:
    """One cache's ``get`` and ``set`` in C; ``python_get`` and ``python_set`` (the
    cache class's methods) run every case they do not handle."""

    def __init__(
        self,
        cache: Any,
        python_get: Callable[..., Any],
        python_set: Callable[..., bool],
        uwsgi_type: type | None,
        cache_update: Callable[[bytes, bytes, int, str], object] | None,
    ) -> None: ...
    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any, timeout: float | None = None) -> bool: ...
