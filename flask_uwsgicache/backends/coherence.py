"""How the tiered backend's local copies stay coherent with Redis.

One **listener** per uWSGI instance (a thread in one of its worker processes) holds a
connection to Redis with client-side caching in broadcast mode (``CLIENT TRACKING on
REDIRECT <itself> BCAST PREFIX <the cache's namespace>``, RESP2: the notices come as
messages on ``__redis__:invalidate``). Redis sends it the name of every key of the
namespace that changes, whoever changed it: writes from any machine, deletes, expiry,
eviction, ``FLUSHDB`` (no name: everything). For each, the listener drops the local
copy. ``benchmarks/invalidation.py`` measured this against pub/sub (a ``PUBLISH`` sent
with each write): as fast, with no command beyond the write (docs/tiered.rst).

The listener sends a ``PING`` every :data:`PING_EVERY` seconds. Redis answers on the same
connection, after every notice of a write it made before the ``PING``; so when the
answer arrives, every write made before the ``PING`` was sent has been applied here.
The time it was sent is the instance's *heartbeat*, and a local copy is served only
while the heartbeat is younger than :data:`MAX_AGE`: a copy served is never older than
that (the staleness bound, :data:`BOUND`). A listener that loses Redis, stalls or dies
stops the heartbeat, and reads go to Redis until a listener is back: that one first
subscribes, then starts a new *epoch*, which kills every local copy made before (they
may have missed notices), then beats.

Filling a local copy races with notices: a worker reads Redis, a write and its notice
come and go, and the worker then stores what it read. So each key hashes to a cell of a
shared table that the listener (and a local writer) changes before it drops a copy,
and a reconnecting listener changes the table's epoch; a worker notes both before it
reads Redis and stores them in the copy, and a copy is served only while both still
hold what it noted (a copy stored after its notice is never served, however long its
filler took).

The table lives where the instance's processes share memory
(:mod:`~flask_uwsgicache.sharedtables`); where they cannot, there are no local copies.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any, Final

import redis

from ..logs import RateLimitedLog

logger = logging.getLogger("flask_uwsgicache")

#: Seconds between the listener's PINGs.
PING_EVERY: Final = 0.02
#: A local copy is served only while the last answered PING was sent this recently.
MAX_AGE: Final = 0.075
MAX_AGE_NS: Final = int(MAX_AGE * 1e9)
#: The staleness bound the docs state: a local copy is at most this old (seconds),
#: MAX_AGE and the time the listener takes to apply a notice.
BOUND: Final = 0.1
#: A PING unanswered for this long: the connection counts as lost (seconds).
LOST_AFTER: Final = 0.5
#: A listener that has not shown it is alive for this long is replaced (seconds).
REPLACE_AFTER: Final = 1.0
#: How often a listener behind Sentinel asks it which server is the master (seconds).
CHECK_MASTER_EVERY: Final = 1.0
#: Cells of key hashes.
SLOTS: Final = 65536
#: The cells of the table's head (the key cells start at FIRST). SERVE_UNTIL: the
#: monotonic time (ns) until which copies may be served, 0 when no listener is in sync.
SERVE_UNTIL, EPOCH, OWNER, ALIVE = 0, 1, 2, 3
FIRST: Final = 8
#: The table's size in bytes.
SIZE: Final = (FIRST + SLOTS) * 8
CHANNEL: Final = b"__redis__:invalidate"


def _changed() -> int:
    # A new random value, not the old one plus one: two processes changing a cell at
    # once (a read-modify-write is not atomic across processes) cannot write back a
    # value a filler noted before. From the system (secrets), not the random module:
    # uWSGI forks its workers without Python's fork hooks (docs/uwsgi-cache2-facts.rst
    # §14), so each would draw the same sequence as the others.
    return secrets.randbits(62) + 1


class Coherence:
    """The shared table of one tiered cache: heartbeat, epoch, listener, key cells."""

    def __init__(self, table: Any) -> None:
        self.cells = memoryview(table).cast("q")

    def serving(self) -> bool:
        """True if local copies may be served now (the heartbeat is young enough)."""
        return time.monotonic_ns() < self.cells[SERVE_UNTIL]

    def cell_of(self, key: bytes) -> int:
        return FIRST + zlib.crc32(key) % SLOTS

    def mark(self, cell: int) -> tuple[int, int]:
        """What a filler notes before it reads Redis."""
        return self.cells[EPOCH], self.cells[cell]

    def touched(self, cell: int) -> None:
        """A copy under this cell is about to be dropped: fillers must not keep theirs."""
        self.cells[cell] = _changed()

    def beat(self, sent: int) -> None:
        """A PING sent at ``sent`` (monotonic ns) was answered: copies may be served
        until MAX_AGE after it."""
        self.cells[SERVE_UNTIL] = sent + MAX_AGE_NS

    def down(self) -> None:
        """This process's listener is not in sync: no local copy is served until one
        is (a listener that another process replaced leaves the new one alone)."""
        if self.cells[OWNER] == os.getpid():
            self.cells[SERVE_UNTIL] = 0

    def new_epoch(self) -> None:
        self.cells[EPOCH] = _changed()

    # -- who listens --------------------------------------------------------------

    def claim(self) -> bool:
        """Make this process the listener's if no live one is; True if it is now (the
        caller starts the thread)."""
        alive = self.cells[ALIVE]
        if alive and time.monotonic_ns() - alive < REPLACE_AFTER * 1e9:
            # A live one, maybe of this process (another backend over the same
            # table): one listener per table.
            return False
        # Two processes may claim at once: the last one written owns it, and the
        # other's thread sees that at its next turn and stops.
        self.cells[OWNER] = os.getpid()
        self.cells[ALIVE] = time.monotonic_ns()
        return True

    def still_mine(self) -> bool:
        """True (and the listener shown alive) while this process owns the listener."""
        if self.cells[OWNER] != os.getpid():
            return False
        self.cells[ALIVE] = time.monotonic_ns()
        return True

    def listener_pid(self) -> int | None:
        """The pid of the process whose listener showed it was alive lately."""
        alive = self.cells[ALIVE]
        if alive and time.monotonic_ns() - alive < REPLACE_AFTER * 1e9:
            return self.cells[OWNER]
        return None

    def release(self) -> None:
        if self.cells[OWNER] == os.getpid():
            self.cells[ALIVE] = 0
            self.down()


class Listener(threading.Thread):
    """The thread that applies Redis' notices to the local copies of one cache."""

    def __init__(
        self,
        coherence: Coherence,
        connect: Callable[[], Any],
        prefix: bytes,
        drop: Callable[[bytes], None],
        where: str,
        moved: Callable[[Any], bool] = lambda _connection: False,
    ) -> None:
        super().__init__(name="flask-uwsgicache tiered listener", daemon=True)
        self.coherence = coherence
        self.connect = connect
        self.prefix = prefix
        self.drop = drop
        self.where = where
        #: True if the server the connection is to is no longer the master (Sentinel
        #: failed over while this connection stayed up).
        self.moved = moved
        self.stopping = threading.Event()
        self.log = RateLimitedLog()
        #: Times this listener subscribed (for stats and tests).
        self.connects = 0
        #: The process that started it (a thread does not outlive a fork).
        self.pid = os.getpid()

    def run(self) -> None:
        pause = 0.05
        try:
            while not self.stopping.is_set() and self.coherence.still_mine():
                try:
                    self._listen()
                    pause = 0.05
                except redis.ResponseError as error:
                    self.coherence.down()
                    self.log.warning(
                        "TieredListener",
                        f"flask-uwsgicache: Redis at {self.where} refused the tiered "
                        f"cache's listener ({error}; client tracking needs Redis 6 or "
                        f"later): local copies are not served, reads go to Redis",
                    )
                except (redis.RedisError, OSError, ValueError, IndexError) as error:
                    self.coherence.down()
                    self.log.warning(
                        "TieredListener",
                        f"flask-uwsgicache: the tiered cache's listener lost Redis at "
                        f"{self.where} ({error}); local copies are not served until "
                        f"it is back, reads go to Redis",
                    )
                self.coherence.down()
                self.stopping.wait(pause)
                pause = min(pause * 2, 1.0)
        finally:
            self.coherence.release()

    def _listen(self) -> None:
        connection = self.connect()
        try:
            connection.send_command("CLIENT", "ID")
            client_id = connection.read_response()
            connection.send_command(
                "CLIENT", "TRACKING", "on", "REDIRECT", client_id, "BCAST",
                "PREFIX", self.prefix,
            )  # fmt: skip
            connection.read_response()
            connection.send_command("SUBSCRIBE", CHANNEL)
            connection.read_response()
            # Subscribed: from now on every change is told. What was stored before
            # may have missed its notice: a new epoch, and every copy of an earlier
            # one is dead (fillers under way store copies of the old one).
            self.coherence.new_epoch()
            self.connects += 1
            self._apply(connection)
        finally:
            connection.disconnect()

    def _apply(self, connection: Any) -> None:
        sent = 0
        next_ping = 0.0
        next_check = time.monotonic() + CHECK_MASTER_EVERY
        while not self.stopping.is_set() and self.coherence.still_mine():
            now = time.monotonic()
            if now >= next_check:
                # A demoted master the Sentinels cannot reach, but this machine can,
                # would answer PINGs and tell of no write made on the new one.
                if self.moved(connection):
                    raise redis.ConnectionError("the Sentinels name another master")
                next_check = time.monotonic() + CHECK_MASTER_EVERY
            if not sent and now >= next_ping:
                sent = time.monotonic_ns()
                connection.send_command("PING")
            elif sent and time.monotonic_ns() - sent > LOST_AFTER * 1e9:
                raise redis.ConnectionError(f"no answer to PING for {LOST_AFTER} s")
            if not connection.can_read(timeout=PING_EVERY):
                continue
            message = connection.read_response()
            if message[0] == b"message" and message[1] == CHANNEL:
                keys = message[2]
                if keys is None:  # FLUSHDB, FLUSHALL: everything changed
                    self.coherence.new_epoch()
                else:
                    for key in keys:
                        self.drop(key)
            elif message[0] == b"pong":
                self.coherence.beat(sent)
                sent = 0
                next_ping = now + PING_EVERY

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=2)
