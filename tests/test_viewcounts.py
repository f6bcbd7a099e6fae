"""The per-view counts' table (flask_uwsgicache/viewcounts.py), in one process.

Under uWSGI the workers share it: tests/test_e2e.py counts across 4 workers, with
lazy-apps and across recycling. Here the table is made as the master makes it, and the
worker ids are played by the test.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flask_uwsgicache import sharedtables, viewcounts
from flask_uwsgicache.viewcounts import HIT, MISS, NAME_SIZE, ViewCounts, shown_name


@pytest.fixture
def as_worker(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """Make ViewCounts see a uWSGI instance of 2 workers, as worker ``number``."""
    monkeypatch.setattr(viewcounts, "_TABLES", {})
    monkeypatch.setattr(viewcounts, "_uwsgi_workers", lambda: 2)
    size = viewcounts.HEADER + 2 * viewcounts.SEGMENT
    monkeypatch.setattr(
        viewcounts, "_map_table", lambda identity, workers: mmap.mmap(-1, size)
    )
    worker = [1]
    monkeypatch.setattr(viewcounts, "_worker_id", lambda: worker[0])

    def become(number: int) -> None:
        worker[0] = number

    return become


def test_two_apps_on_one_cache_and_prefix_share_one_writer(
    as_worker: Callable[[int], None],
) -> None:
    first, second = ViewCounts.of("default\0"), ViewCounts.of("default\0")
    assert first is second  # else each would write its records over the other's
    first.record("a", HIT)
    second.record("b", HIT)
    first.record("c", MISS)
    assert first.totals() == {
        "a": {"hits": 1, "misses": 0, "refused": 0},
        "b": {"hits": 1, "misses": 0, "refused": 0},
        "c": {"hits": 0, "misses": 1, "refused": 0},
    }
    assert ViewCounts.of("default\0shop:") is not first  # the control


def test_long_names_are_shown_alike_with_and_without_a_table(
    as_worker: Callable[[int], None],
) -> None:
    name = "app." + "x" * 600 + ".view"
    shared, local = ViewCounts.of("t\0"), ViewCounts("t\0")
    local._workers, local._table = 0, None  # what it is outside uWSGI
    for counts in (shared, local):
        counts.record(name, HIT)
        assert list(counts.totals()) == [shown_name(name)]
    assert len(shown_name(name).encode()) <= NAME_SIZE
    assert shown_name(name) != shown_name(name + "2")  # a digest keeps them apart
    assert shown_name("app.short") == "app.short"


def test_a_clear_is_never_undone(as_worker: Callable[[int], None]) -> None:
    counts = ViewCounts.of("c\0")
    counts.record("v", HIT)
    counts.reset()
    assert counts.totals() == {}
    counts.record("v", MISS)
    counts.reset()
    counts.reset()
    assert counts.totals() == {}
    counts.record("v", HIT)
    assert counts.totals() == {"v": {"hits": 1, "misses": 0, "refused": 0}}


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_files_of_masters_that_are_gone_are_removed(tmp_path: Path) -> None:
    running, started = os.getpid(), 1000
    kept = [
        tmp_path / f"{running}-{started}-v1-ours.counts",
        tmp_path / f"{os.getppid()}-1-v1-another-live-master.counts",
        tmp_path / "99999999999999999999-1-v1-no-such-pid.counts",  # no OverflowError
        tmp_path / "not-ours.counts",
    ]
    removed = [
        tmp_path / f"{running}-{started - 1}-v1-an-earlier-master-same-pid.counts",
        tmp_path / f"{dead_pid()}-1-v1-gone.counts",
    ]
    for path in kept + removed:
        path.write_bytes(b"")
    sharedtables.remove_stale(tmp_path, running, started)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_the_counts_directory_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    directory = sharedtables.private_directory()
    assert directory is not None and directory.stat().st_mode & 0o777 == 0o700
    directory.chmod(0o755)  # opened up (or made by someone else): not used
    assert sharedtables.private_directory() is None
    directory.rmdir()
    directory.symlink_to(tmp_path)
    assert sharedtables.private_directory() is None


def test_files_of_another_pid_namespace_are_left_alone(tmp_path: Path) -> None:
    """A container sharing the directory has masters whose pids mean nothing here."""
    other = tmp_path / f"{dead_pid()}-1-ns1-another-container.v1.tiered"
    ours = (
        tmp_path / f"{dead_pid()}-1-ns{os.stat('/proc/self/ns/pid').st_ino}-gone.v1.tiered"
    )
    for path in (other, ours):
        path.write_bytes(b"")
    sharedtables.remove_stale(tmp_path, os.getpid(), 1000)
    assert list(tmp_path.iterdir()) == [other]
