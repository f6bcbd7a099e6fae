"""One rule for every timeout: the cache's methods, the decorators and the config.

A timeout is seconds, an ``int`` or a finite ``float`` from 0 (never expire) to
:data:`MAX_TIMEOUT`; ``None`` means the default. Anything else is refused before it
reaches a backend, with the same error on every backend: ``TypeError`` for what is not
a number (``True``, ``"60"``, ``[1]``), ``ValueError`` for a number out of range
(``-1``, ``nan``, ``inf``, ``1e308``, ``2**63``), each naming the argument or setting.
Without it, the memory backend would keep ``nan`` or ``inf`` entries for ever and uWSGI
or Redis would fail deep inside (``OverflowError``) on huge ones.
"""

from __future__ import annotations

import math
from typing import Any

#: The longest timeout, about 68 years (2**31 - 1 seconds): far enough to mean "until
#: deleted" and small enough for every store (Redis counts milliseconds in 64 bits).
MAX_TIMEOUT = 2**31 - 1


def checked(timeout: Any, name: str = "timeout") -> float:
    """``timeout`` if it is a valid number of seconds; else ``TypeError`` or
    ``ValueError`` naming ``name`` and the accepted range."""
    accepted = (
        f"give a number of seconds from 0 (never expire) to {MAX_TIMEOUT}, or None for "
        f"the default"
    )
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{name} is {timeout!r}, not a number: {accepted}.")
    if math.isnan(timeout) or not 0 <= timeout <= MAX_TIMEOUT:
        raise ValueError(f"{name} is {timeout!r}: {accepted}.")
    return timeout
