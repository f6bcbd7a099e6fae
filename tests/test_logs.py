"""Rate-limited logging of repeated problems."""

from __future__ import annotations

from collections.abc import Callable

from flask_uwsgicache.logs import RateLimitedLog


def test_repeated_lines_are_held_back_and_counted(
    log_lines: Callable[[], list[str]],
) -> None:
    now = [0.0]
    log = RateLimitedLog(interval=10, clock=lambda: now[0])
    assert log.warning("full", "cache full") is True
    assert [log.warning("full", "cache full") for _ in range(100)] == [False] * 100
    assert log.warning("other", "another kind") is True
    now[0] = 11
    assert log.warning("full", "cache full") is True
    assert log_lines() == [
        "cache full",
        "another kind",
        "cache full (100 similar messages held back)",
    ]
