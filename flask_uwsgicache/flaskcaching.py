"""Flask-Caching's ``CACHE_*`` settings, read as the ``UWSGICACHE_*`` ones they stand for.

:func:`from_flask_caching` is what :func:`~flask_uwsgicache.config.resolve` reads when
an app leaves a ``UWSGICACHE_*`` setting unset: ``CACHE_TYPE`` (a name or an import
string of Flask-Caching's or cachelib's) becomes the backend, the Redis settings a URL
(``redis+sentinel://`` for ``RedisSentinelCache``), ``CACHE_THRESHOLD`` a memory line.
A setting this package cannot honour is a ``ValueError`` naming the one to use.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

# CACHE_TYPE, as Flask-Caching 2.x and 1.x spell each backend (a name, or an import
# string of Flask-Caching's or cachelib's class), and the UWSGICACHE_BACKEND it means.
_TYPES = {
    "memory": (
        "simple",
        "SimpleCache",
        "flask_caching.backends.SimpleCache",
        "flask_caching.backends.simple",
        "flask_caching.backends.simplecache.SimpleCache",
        "cachelib.SimpleCache",
        "cachelib.simple.SimpleCache",
    ),
    "uwsgi": (
        "uwsgi",
        "UWSGICache",
        "flask_caching.contrib.uwsgicache.UWSGICache",
        "flask_caching.contrib.UWSGICache",
        "flask_caching.backends.uwsgicache.UWSGICache",
        "cachelib.UWSGICache",
        "cachelib.uwsgi.UWSGICache",
    ),
    "redis": (
        "redis",
        "RedisCache",
        "flask_caching.backends.RedisCache",
        "flask_caching.backends.redis",
        "flask_caching.backends.rediscache.RedisCache",
        "cachelib.RedisCache",
        "cachelib.redis.RedisCache",
    ),
    # Sentinel: the URL the CACHE_REDIS_SENTINEL* settings describe (_sentinel_url).
    "redis+sentinel": (
        "redissentinel",
        "RedisSentinelCache",
        "flask_caching.backends.RedisSentinelCache",
        "flask_caching.backends.redissentinel",
        "flask_caching.backends.rediscache.RedisSentinelCache",
    ),
    "null": (
        "null",
        "NullCache",
        "flask_caching.backends.NullCache",
        "flask_caching.backends.null",
        "flask_caching.backends.nullcache.NullCache",
        "cachelib.NullCache",
        "cachelib.base.NullCache",
    ),
}
BACKEND_OF_TYPE = {
    spelling: backend for backend, names in _TYPES.items() for spelling in names
}

# Flask-Caching settings that only its other backends read: set with such a CACHE_TYPE
# they are part of the error below; with ours, Flask-Caching ignores them too.
_OTHER_BACKENDS_ONLY = (
    "CACHE_DIR",
    "CACHE_FILE_HASH_METHOD",
    "CACHE_MEMCACHED_SERVERS",
    "CACHE_MEMCACHED_USERNAME",
    "CACHE_MEMCACHED_PASSWORD",
    "CACHE_GCS_BUCKET",
    "CACHE_REDIS_CLUSTER",
)


#: Flask-Caching settings read as they are for their ``UWSGICACHE_*`` counterpart.
ALIASES = {
    "CACHE_DEFAULT_TIMEOUT": "UWSGICACHE_DEFAULT_TIMEOUT",
    "CACHE_KEY_PREFIX": "UWSGICACHE_KEY_PREFIX",
    "CACHE_SOURCE_CHECK": "UWSGICACHE_SOURCE_CHECK",
    "CACHE_HASH_METHOD": "UWSGICACHE_HASH_METHOD",
}


def from_flask_caching(
    config: Mapping[str, Any], given: Collection[str] = ()
) -> dict[str, Any]:
    """The ``UWSGICACHE_*`` settings that ``config``'s ``CACHE_*`` keys stand for, leaving
    out those in ``given`` (set by the app: they win, and their counterparts are not
    read)."""
    settings: dict[str, Any] = {}
    backend = None
    if "UWSGICACHE_BACKEND" not in given:
        if "CACHE_TYPE" in config:
            backend = _backend(config["CACHE_TYPE"], config)
            settings["UWSGICACHE_BACKEND"] = (
                "redis" if backend == "redis+sentinel" else backend
            )
        # Arguments for Flask-Caching's backend classes; ours is chosen by name.
        _refuse_unsupported(config, ("CACHE_ARGS", "CACHE_OPTIONS"))
    for old, new in ALIASES.items():
        if new not in given and config.get(old) is not None:
            settings[new] = config[old]
    derived: dict[str, Callable[[], Any]] = {
        "UWSGICACHE_SERIALIZER": lambda: _serializer(config.get("CACHE_SERIALIZER")),
        "UWSGICACHE_NAME": lambda: _uwsgi_name(config.get("CACHE_UWSGI_NAME")),
        "UWSGICACHE_REDIS_URL": lambda: (
            _sentinel_url(config)
            if backend == "redis+sentinel"
            else _redis_url(config, redis=backend == "redis")
        ),
        # 500: SimpleCache's default threshold.
        "UWSGICACHE_MEMORY": lambda: (
            _memory_line(config.get("CACHE_THRESHOLD", 500))
            if backend == "memory"
            else None
        ),
    }
    for key, derive in derived.items():
        value = None if key in given else derive()
        if value is not None:
            settings[key] = value
    _refuse_unsupported(config, ("CACHE_ENABLE_SIGNALS",))
    return settings


def _backend(cache_type: Any, config: Mapping[str, Any]) -> str:
    backend = BACKEND_OF_TYPE.get(cache_type) if isinstance(cache_type, str) else None
    if backend is not None:
        return backend
    others = [key for key in _OTHER_BACKENDS_ONLY if config.get(key)]
    raise ValueError(
        f"CACHE_TYPE is {cache_type!r}, a Flask-Caching backend flask-uwsgicache does not "
        f"have{' (with ' + ', '.join(others) + ')' if others else ''}. Set "
        f"UWSGICACHE_BACKEND to 'uwsgi' (uWSGI's shared cache), 'redis' (with "
        f"UWSGICACHE_REDIS_URL, redis+sentinel:// for Sentinel; Cluster is not "
        f"supported), 'tiered' (uWSGI's cache in front of Redis), 'memory' "
        f"(one process, like SimpleCache) or 'null' (stores nothing), and remove "
        f"CACHE_TYPE."
    )


def _serializer(serializer: Any) -> str | None:
    if serializer is None:
        return None
    name = getattr(serializer, "__name__", type(serializer).__name__).lower()
    if serializer is json or serializer == "json" or name.startswith("json"):
        return "json"
    if serializer is pickle or serializer == "pickle" or name.startswith("pickle"):
        return "pickle"
    raise ValueError(
        f"CACHE_SERIALIZER is {serializer!r}; flask-uwsgicache has its own serializers: "
        f"set UWSGICACHE_SERIALIZER to 'pickle' or 'json' and remove CACHE_SERIALIZER."
    )


def _uwsgi_name(name: Any) -> str | None:
    if not name:  # Flask-Caching's default, "": this instance's default cache
        return None
    if not isinstance(name, str):
        raise ValueError(
            f"CACHE_UWSGI_NAME is {name!r}; set it (or UWSGICACHE_NAME) to the name= of "
            f"a cache2 line, as a string."
        )
    if "@" in name:
        raise ValueError(
            f"CACHE_UWSGI_NAME is {name!r}: flask-uwsgicache uses a cache of its own uWSGI "
            f"instance only (a name with @ would make every call a network request to "
            f"another one). Set UWSGICACHE_NAME to the name= of a cache2 line of this "
            f"instance; to share a cache between machines, use UWSGICACHE_BACKEND = "
            f"'redis'."
        )
    return name


def _redis_url(config: Mapping[str, Any], redis: bool = False) -> str | None:
    """``CACHE_REDIS_URL`` (with ``CACHE_REDIS_DB`` if it names no database), or the
    URL ``CACHE_REDIS_HOST/PORT/DB/PASSWORD`` describe; as in Flask-Caching the URL
    wins, and with ``redis`` (a Redis ``CACHE_TYPE``) the host defaults to localhost."""
    database = config.get("CACHE_REDIS_DB")
    if config.get("CACHE_REDIS_URL"):
        url = str(config["CACHE_REDIS_URL"])
        # As redis-py reads it: the URL's own database first, else CACHE_REDIS_DB.
        if database and urlsplit(url).path in ("", "/") and "db=" not in url:
            url = f"{url.rstrip('/')}/{_number('CACHE_REDIS_DB', database)}"
        return url
    host = config.get("CACHE_REDIS_HOST", "localhost" if redis else None)
    if host is None:
        return None
    if not isinstance(host, str):
        raise ValueError(
            f"CACHE_REDIS_HOST is a {type(host).__name__} object, not a host name: "
            f"flask-uwsgicache makes its own connection (with short timeouts, so a dead "
            f"Redis costs requests nothing). Set UWSGICACHE_REDIS_URL, for example "
            f"redis://127.0.0.1:6379/0, and remove CACHE_REDIS_HOST."
        )
    password = config.get("CACHE_REDIS_PASSWORD")
    credentials = f":{quote(str(password), safe='')}@" if password else ""
    port = _number("CACHE_REDIS_PORT", config.get("CACHE_REDIS_PORT") or 6379)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"redis://{credentials}{host}:{port}/{_number('CACHE_REDIS_DB', database or 0)}"


def _sentinel_url(config: Mapping[str, Any]) -> str:
    """The ``redis+sentinel://`` URL Flask-Caching's ``RedisSentinelCache`` settings
    describe (with its defaults: a Sentinel on localhost:26379, the service
    ``mymaster``)."""
    sentinels = config.get("CACHE_REDIS_SENTINELS") or [("127.0.0.1", 26379)]
    hosts = []
    for sentinel in sentinels:
        if isinstance(sentinel, str):
            host, _, port = sentinel.rpartition(":")
        elif isinstance(sentinel, (list, tuple)) and len(sentinel) == 2:
            host, port = sentinel
        else:
            host = port = ""
        if not host or not str(port).isdigit():
            raise ValueError(
                f"CACHE_REDIS_SENTINELS holds {sentinel!r}; give each Sentinel as a "
                f"(host, port) pair, for example [('10.0.0.1', 26379)], or set "
                f"UWSGICACHE_REDIS_URL to redis+sentinel://10.0.0.1:26379/mymaster/0."
            )
        hosts.append(f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}")
    password = config.get("CACHE_REDIS_PASSWORD")
    credentials = f":{quote(str(password), safe='')}@" if password else ""
    master = quote(str(config.get("CACHE_REDIS_SENTINEL_MASTER") or "mymaster"), safe="")
    database = _number("CACHE_REDIS_DB", config.get("CACHE_REDIS_DB") or 0)
    url = f"redis+sentinel://{credentials}{','.join(hosts)}/{master}/{database}"
    if config.get("CACHE_REDIS_SENTINEL_PASSWORD"):
        url += "?sentinel_password=" + quote(
            str(config["CACHE_REDIS_SENTINEL_PASSWORD"]), safe=""
        )
    return url


def _number(key: str, value: Any) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{key} is {value!r}; set it to a whole number, or set UWSGICACHE_REDIS_URL "
            f"(for example redis://127.0.0.1:6379/0) instead."
        ) from None


def _memory_line(threshold: Any) -> str:
    """A memory cache that holds ``threshold`` entries and, like SimpleCache, makes
    room when full (by evicting the least recently used entry)."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
        raise ValueError(
            f"CACHE_THRESHOLD is {threshold!r}; set it to a number of entries (at least "
            f"1), or set UWSGICACHE_MEMORY instead."
        )
    return f"items={threshold + 1},purge_lru=1"


def _refuse_unsupported(config: Mapping[str, Any], keys: Iterable[str]) -> None:
    """``ValueError`` for Flask-Caching settings with a meaning this package lacks."""
    for key in keys:
        if config.get(key):
            raise ValueError(
                f"{key} is {config[key]!r}, which flask-uwsgicache cannot honour: "
                f"{_INSTEAD[key]} Remove {key}."
            )


_INSTEAD = {
    "CACHE_ARGS": "backends take no constructor arguments; set UWSGICACHE_MEMORY, "
    "UWSGICACHE_NAME or UWSGICACHE_REDIS_URL.",
    "CACHE_OPTIONS": "backends take no constructor options; set UWSGICACHE_MEMORY "
    "(cache2-style limits), UWSGICACHE_NAME or UWSGICACHE_REDIS_URL.",
    "CACHE_ENABLE_SIGNALS": "it sends no hit and miss signals; read hits and misses "
    "per view from cache.stats() or 'flask uwsgicache stats'.",
}
