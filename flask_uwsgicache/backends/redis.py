"""Redis through redis-py (the ``redis`` extra), for apps that outgrow one machine.

Every entry of one cache lives under ``uwsgicache:<UWSGICACHE_NAME>`` and the byte 0xFD
(:func:`~flask_uwsgicache.keys.fenced`: no cache name's namespace holds another's) in
the database of ``UWSGICACHE_REDIS_URL``; ``keys`` and ``clear`` walk that namespace
with SCAN and never touch other keys (no FLUSHDB). ``set`` is SET with PX (Redis expiry
is exact to the millisecond), ``add`` SET NX PX, ``get_many`` one MGET. Counters are
native: ``incr`` runs INCRBY in a script that checks and signs the counter entry, so
``inc`` is one atomic round trip (the envelope stores ints as counter entries for this;
see :mod:`flask_uwsgicache.envelope`).

When Redis cannot be reached, reads are misses and writes raise
:class:`~flask_uwsgicache.errors.BackendUnavailableError` (so ``set`` returns False), a
line is logged at most every 10 s, and for one second after a failure no call is tried,
so a dead server costs requests nothing. redis-py reconnects on its own afterwards.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from ..errors import (
    BackendUnavailableError,
    CacheFullError,
    CounterOverflowError,
    NotACounterError,
)
from ..keys import fenced
from ..logs import RateLimitedLog
from .base import Backend, shown_url

# inc on a counter entry (flask_uwsgicache.envelope): check the entry (its MAC when
# ARGV[4], the MAC key, is set), INCRBY on its digits (Redis' exact 64-bit arithmetic and
# overflow error; the entry is put back as it was on an error), sign the new digits, and
# give a counter this call created its expiry (an existing one keeps its own). Returns
# the new value as digits: a Lua number is a double, exact only to 2**53.
# A counter entry nobody with the key wrote (digits without a valid MAC while entries are
# signed), and an entry the caller found invalid (ARGV[5], the bytes it saw), count as
# missing: replaced here, in the same atomic step, so no concurrent inc is lost.
# ARGV: delta, ttl in ms (0: none), the storage key (what the MAC covers), MAC key, the
# entry to replace ("" for none).
_INCR = """
local raw = redis.call('GET', KEYS[1])
local key = ARGV[4]
local function mac(digits)
    return redis.sha1hex(key .. redis.sha1hex(key .. ARGV[3] .. ':' .. digits))
end
if raw then
    local digits, tag = string.match(raw, '^(%-?%d+):(%x+)$')
    local bare = string.match(raw, '^%-?%d+$')
    local forged = false
    if ARGV[5] ~= '' and raw == ARGV[5] then
        forged = true
    elseif key == '' then
        digits = bare
    elseif bare or (digits and tag ~= mac(digits)) then
        forged = true
    end
    if forged then
        redis.call('DEL', KEYS[1])
        raw = nil
    elseif not digits then
        return redis.error_reply('NOTCOUNTER the key holds something other than a counter')
    else
        redis.call('SET', KEYS[1], digits, 'KEEPTTL')
    end
end
local done = redis.pcall('INCRBY', KEYS[1], ARGV[1])
if type(done) == 'table' and done.err then
    if raw then
        redis.call('SET', KEYS[1], raw, 'KEEPTTL')
    end
    return done
end
local digits = redis.call('GET', KEYS[1])
if key ~= '' then
    redis.call('SET', KEYS[1], digits .. ':' .. mac(digits), 'KEEPTTL')
end
if not raw and tonumber(ARGV[2]) > 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return digits
"""
# Redis strings hold up to 512 MiB (proto-max-bulk-len).
MAX_VALUE = 512 << 20
KEYSIZE = 1024
_GLOB = re.compile(rb"([*?\[\]\\])")
T = TypeVar("T")


SENTINEL_SCHEME = "redis+sentinel://"
#: Seconds a Sentinel has to answer.
SENTINEL_TIMEOUT = 0.25


def sentinel_client(url: str, settings: dict[str, Any]) -> redis.Redis:
    """A client of the master that the Sentinels of ``url`` name:
    ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``, with
    ``?sentinel_password=...`` when the Sentinels have one of their own. The password is
    the master's. Each connection asks the Sentinels where the master is, so after a
    failover the clients reconnect to the new one."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    path = [unquote(part) for part in parts.path.split("/") if part]
    # As written, percent-decoded ("+" is a plus: this is no form).
    options = {
        name: unquote(value)
        for name, _, value in (part.partition("=") for part in parts.query.split("&"))
        if name
    }
    unknown = set(options) - {"sentinel_password"}
    if not hosts or len(path) not in (1, 2) or unknown:
        raise ValueError(
            f"UWSGICACHE_REDIS_URL is {shown_url(url)!r}; a Sentinel URL names the "
            f"Sentinels and the master's service name, and optionally the database: "
            f"redis+sentinel://127.0.0.1:26379,10.0.0.2:26379/mymaster/0"
            + (f" (unknown options: {', '.join(sorted(unknown))})" if unknown else "")
            + "."
        )
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not (port.isascii() and port.isdigit()):
            raise ValueError(
                f"UWSGICACHE_REDIS_URL is {shown_url(url)!r}: give each Sentinel as "
                f"host:port, for example 127.0.0.1:26379."
            )
        sentinels.append((name.strip("[]"), int(port)))
    database = path[1] if len(path) == 2 else "0"
    if not (database.isascii() and database.isdigit()):
        raise ValueError(
            f"UWSGICACHE_REDIS_URL names the database {database!r}: use its number."
        )
    # Short, without retries: every new connection asks them (so does the tiered
    # listener, every second), and a Sentinel that hangs must not hold either.
    sentinel_settings: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
    }
    if "sentinel_password" in options:
        sentinel_settings["password"] = options["sentinel_password"]
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinels, sentinel_kwargs=sentinel_settings
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        path[0],
        db=int(database),
        username=unquote(username) or None,
        password=unquote(password) or None,
        **settings,
    )
    return client


class RedisBackend(Backend):
    """One namespace of a Redis database."""

    name = "redis"
    native_counters = True

    def __init__(self, url: str | None, cache_name: str, chosen: str = "redis") -> None:
        if not url:
            raise ValueError(
                f"UWSGICACHE_BACKEND is {chosen!r} but UWSGICACHE_REDIS_URL is not set: "
                f"set it to the server, for example redis://127.0.0.1:6379/0."
            )
        self.url = shown_url(url)
        # Fail fast, no retries: a miss now is better than a request that waits.
        settings: dict[str, Any] = {
            "socket_timeout": 1.0,
            "socket_connect_timeout": 1.0,
            "retry": Retry(NoBackoff(), 0),
        }
        if url.lower().startswith(SENTINEL_SCHEME):
            self.client = sentinel_client(url, settings)
        else:
            self.client = redis.Redis.from_url(url, **settings)
        # Fenced: the cache "site" cannot reach the entries of "site:staging".
        self.namespace = fenced(f"uwsgicache:{cache_name}")
        self.cache_name = cache_name
        self.max_key_size = KEYSIZE
        self.max_value_size = MAX_VALUE
        self.max_items = None
        self.log = RateLimitedLog()
        self._incr = self.client.register_script(_INCR)
        self._down_until = 0.0

    # -- failures -------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, with Redis' errors turned into this package's."""
        if time.monotonic() < self._down_until:
            raise BackendUnavailableError(
                f"Redis at {self.url} failed less than a second ago; not trying {what}"
            )
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._down_until = time.monotonic() + 1.0
            message = f"Redis at {self.url} is unreachable ({what}): {error}"
            self.log.warning("RedisDown", f"flask-uwsgicache: {message}")
            raise BackendUnavailableError(message) from None
        except redis.ResponseError as error:
            text = str(error)
            # redis-py 5+ raises OutOfMemoryError for Redis' "OOM ..." reply.
            if isinstance(error, redis.exceptions.OutOfMemoryError) or "maxmemory" in text:
                raise CacheFullError(
                    f"Redis at {self.url} is full (maxmemory, no eviction): {text}. Raise "
                    f"maxmemory or set an eviction policy such as volatile-lru."
                ) from None
            if text.startswith("NOTCOUNTER") or "not an integer" in text:
                raise NotACounterError(
                    "the key holds something other than a counter"
                ) from None
            if "overflow" in text:
                raise CounterOverflowError(
                    "the counter would leave the signed 64-bit range"
                ) from None
            raise

    def _read(self, what: str, call: Callable[[], T], missing: T) -> T:
        """Like :meth:`_call`, but an unreachable server is a miss."""
        try:
            return self._call(what, call)
        except BackendUnavailableError:
            return missing

    @staticmethod
    def _ms(ttl: float) -> int | None:
        return math.ceil(ttl * 1000) if ttl else None

    # -- the contract ---------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        found = self._read("GET", lambda: self.client.get(self.namespace + key), None)
        return found  # type: ignore[return-value]  # bytes: decode_responses is off

    def get_many(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self.namespace + key for key in keys]
        missing: list[bytes | None] = [None] * len(keys)
        found: list[bytes | None] = self._read(
            "MGET",
            lambda: self.client.mget(names),  # type: ignore[arg-type,return-value]
            missing,
        )
        return found

    def get_with_ttl(self, keys: list[bytes]) -> list[tuple[bytes | None, float | None]]:
        """The entries under ``keys`` with the seconds each has left in Redis (None: no
        expiry; 0: it expires now), in one round trip; misses when Redis cannot be
        reached."""

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.mget([self.namespace + key for key in keys])
            for key in keys:
                pipe.pttl(self.namespace + key)
            return pipe.execute()

        answers = self._read("GET", read, None)
        if answers is None:
            return [(None, None)] * len(keys)
        # PTTL: -1 no expiry, -2 gone since the MGET (a miss then, as for the next read),
        # 0 less than a millisecond left.
        return [
            (entry if left != -2 else None, None if left == -1 else max(left, 0) / 1000)
            for entry, left in zip(answers[0], answers[1:], strict=True)
        ]

    def listening_connection(self) -> Any:
        """A new connection to this server (RESP2), outside the client's pool, for a
        listener: tracking and subscriptions belong to one connection."""
        pool = self.client.connection_pool
        settings = {
            name: value
            for name, value in pool.connection_kwargs.items()
            # redis-py 6+: its handler of maintenance notices needs RESP3.
            if not name.startswith("maint_notifications")
        }
        settings.update(protocol=2, socket_timeout=1.0)
        connection = pool.connection_class(**settings)
        connection.connect()
        return connection

    def master_moved(self, connection: Any) -> bool:
        """True if the Sentinels now name another master than the one ``connection``
        is to (a Sentinel URL; never otherwise, nor when no Sentinel answers: the
        connection's own health decides then)."""
        pool = self.client.connection_pool
        if not isinstance(pool, SentinelConnectionPool):
            return False
        try:
            host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return False
        return (host, int(port)) != (connection.host, int(connection.port))

    def set(self, key: bytes, entry: bytes, ttl: float) -> None:
        self.check_size(key, entry)
        self._call(
            "SET", lambda: self.client.set(self.namespace + key, entry, px=self._ms(ttl))
        )

    def insert(self, key: bytes, entry: bytes, ttl: float) -> bool:
        self.check_size(key, entry)
        return bool(
            self._call(
                "SET NX",
                lambda: self.client.set(
                    self.namespace + key, entry, nx=True, px=self._ms(ttl)
                ),
            )
        )

    def incr(
        self,
        key: bytes,
        delta: int,
        ttl: float,
        mac_key: bytes = b"",
        replacing: bytes = b"",
    ) -> int:
        args: list[int | bytes] = [delta, self._ms(ttl) or 0, key, mac_key, replacing]
        return int(
            self._call("INCRBY", lambda: self._incr(keys=[self.namespace + key], args=args))
        )

    def delete(self, key: bytes) -> bool:
        return bool(self._call("DEL", lambda: self.client.delete(self.namespace + key)))

    def expire(self, key: bytes, ttl: float) -> bool:
        name = self.namespace + key
        if ttl:
            return bool(
                self._call("PEXPIRE", lambda: self.client.pexpire(name, self._ms(ttl) or 1))
            )
        return bool(self._call("PERSIST", lambda: self.client.persist(name)))

    def _scan(self) -> list[bytes]:
        pattern = _GLOB.sub(rb"\\\1", self.namespace) + b"*"
        return list(self.client.scan_iter(match=pattern, count=1000))

    def keys(self) -> list[bytes]:
        start = len(self.namespace)
        return [name[start:] for name in self._call("SCAN", self._scan)]

    def clear(self) -> None:
        names = self._call("SCAN", self._scan)
        for first in range(0, len(names), 500):
            batch = names[first : first + 500]
            self._call("UNLINK", lambda batch=batch: self.client.unlink(*batch))  # type: ignore[misc]

    def lock(self) -> AbstractContextManager[None]:
        return self._locked()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A lease in Redis (SET NX PX, released only by its holder): shared by every
        # process on every machine, and freed by expiry if its holder dies.
        name = self.namespace.decode(errors="replace") + "\x00lock"
        lock = self.client.lock(name, timeout=10, sleep=0.005, blocking_timeout=10)
        if not self._call("LOCK", lambda: lock.acquire()):
            raise BackendUnavailableError(f"the Redis lock was busy for 10 s ({self.url})")
        try:
            yield
        finally:
            with contextlib.suppress(redis.RedisError):
                lock.release()

    def close(self) -> None:
        self.client.connection_pool.disconnect()

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "url": self.url,
            "namespace": self.namespace.decode(errors="replace"),
        }

    def too_large_hint(self) -> str:
        return ". Redis strings hold at most 512 MiB (proto-max-bulk-len)."
