"""The package logger, with rate limiting for lines that a busy app could repeat.

A full cache refuses every write until something expires; logging each refusal would
write a line per request. :class:`RateLimitedLog` writes the first line of each kind at
once, then at most one line per ``interval`` seconds, saying how many it held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("flask_uwsgicache")


class RateLimitedLog:
    """Writes warnings on :data:`logger`, at most one per kind per ``interval`` seconds."""

    def __init__(
        self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held_back: dict[str, int] = {}

    def warning(self, kind: str, message: str) -> bool:
        """Log ``message`` unless a line of ``kind`` was logged recently.

        Returns True if the line was written.
        """
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._held_back[kind] = self._held_back.get(kind, 0) + 1
                return False
            self._last[kind] = now
            held_back = self._held_back.pop(kind, 0)
        if held_back:
            message += f" ({held_back} similar messages held back)"
        logger.warning(message)
        return True
