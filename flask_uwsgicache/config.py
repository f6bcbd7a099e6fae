"""The extension's settings: defaults, validation, and where they come from.

:func:`resolve` turns an app's config (and the ``config=`` given to the extension, as in
Flask-Caching) into one dict with every ``UWSGICACHE_*`` key set. A ``UWSGICACHE_*`` key
wins; when it is not set, its Flask-Caching counterpart is read, so an app configured
for Flask-Caching switches by its import. A Flask-Caching setting this package cannot
honour is a ``ValueError`` naming the ``UWSGICACHE_*`` setting to use instead: nothing
is silently ignored, except what Flask-Caching itself ignores for the chosen backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import timeouts
from .flaskcaching import ALIASES, from_flask_caching

#: The key of an app's :class:`~flask_uwsgicache.BoundCache` in ``app.extensions``.
EXTENSION_KEY = "uwsgicache"
#: ``UWSGICACHE_EDGE``'s default: HTML responses go to the cache2 named ``edge``.
DEFAULT_EDGE = {"text/html; charset=utf-8": "edge"}

DEFAULTS: dict[str, Any] = {
    "UWSGICACHE_BACKEND": "auto",
    "UWSGICACHE_NAME": "default",
    "UWSGICACHE_RESPONSES_NAME": None,
    "UWSGICACHE_DEFAULT_TIMEOUT": 300,
    "UWSGICACHE_KEY_PREFIX": "",
    "UWSGICACHE_SERIALIZER": "pickle",
    "UWSGICACHE_SIGN": None,
    "UWSGICACHE_RAISE_ERRORS": False,
    "UWSGICACHE_MEMORY": "items=1000",
    "UWSGICACHE_REDIS_URL": None,
    "UWSGICACHE_EDGE": DEFAULT_EDGE,
    "UWSGICACHE_EDGE_SKIPS_MIDDLEWARE": False,
    "UWSGICACHE_SHARED_COOKIES": (),
    "UWSGICACHE_PERSONAL_HEADERS": (),
    "UWSGICACHE_SOURCE_CHECK": False,
    "UWSGICACHE_HASH_METHOD": None,
}

#: Keys outside the ``UWSGICACHE_*`` family that building a cache reads.
FLASK_KEYS = ("SECRET_KEY", "SESSION_COOKIE_NAME")


def resolve(
    app_config: Mapping[str, Any], *overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Every ``UWSGICACHE_*`` setting (and :data:`FLASK_KEYS`) for one app.

    ``overrides`` (``UWSGICache(config=...)``, then ``init_app(app, config=...)``) update
    the app's config in that order, as in Flask-Caching. ``ValueError`` for a setting
    that cannot be honoured.
    """
    merged = dict(app_config)
    for override in overrides:
        if override is not None and not isinstance(override, Mapping):
            raise ValueError(
                f"config is {override!r}; pass a dict of settings, or leave it out."
            )
        merged.update(override or {})
    settings = {
        key: value
        for key, value in merged.items()
        if key.startswith("UWSGICACHE_") or key in FLASK_KEYS
    }
    aliased = from_flask_caching(merged, given=set(settings))
    for key, value in aliased.items():
        settings.setdefault(key, value)
    for key, value in DEFAULTS.items():
        settings.setdefault(key, value)
    try:
        validate(settings)
    except ValueError as error:
        old = next((old for old, new in ALIASES.items() if str(error).startswith(new)), "")
        if old and str(error).split(" ")[0] in aliased:  # say what the app wrote
            raise ValueError(f"{old} (read as {error})") from None
        raise
    return settings


def validate(settings: Mapping[str, Any]) -> None:
    """``ValueError`` for settings that are wrong whatever the backend."""
    try:
        timeouts.checked(
            settings["UWSGICACHE_DEFAULT_TIMEOUT"], "UWSGICACHE_DEFAULT_TIMEOUT"
        )
    except TypeError as error:  # a setting: always ValueError
        raise ValueError(str(error)) from None
    source_check = settings["UWSGICACHE_SOURCE_CHECK"]
    if not isinstance(source_check, bool):
        raise ValueError(
            f"UWSGICACHE_SOURCE_CHECK is {source_check!r}; set it to True or False."
        )
    responses = settings["UWSGICACHE_RESPONSES_NAME"]
    if responses is not None and (not isinstance(responses, str) or not responses):
        raise ValueError(
            f"UWSGICACHE_RESPONSES_NAME is {responses!r}; set it to the name= of the "
            f"cache2 line for cached views' responses, or leave it out (they then share "
            f"UWSGICACHE_NAME's cache)."
        )
    hash_method = settings["UWSGICACHE_HASH_METHOD"]
    if hash_method is not None and not callable(hash_method):
        raise ValueError(
            f"UWSGICACHE_HASH_METHOD is {hash_method!r}; set it to a hash constructor "
            f"such as hashlib.sha256, or leave it out (md5 for keys)."
        )


def shared_cookies(config: Mapping[str, Any]) -> frozenset[str]:
    """``UWSGICACHE_SHARED_COOKIES`` and the session cookie's name."""
    names = config.get("UWSGICACHE_SHARED_COOKIES", ())
    if isinstance(names, str) or not all(isinstance(name, str) for name in names):
        raise ValueError(
            f"UWSGICACHE_SHARED_COOKIES is {names!r}; set it to a list of the names of "
            f"cookies that change no answer of the app, for example ['_ga', '_gid']."
        )
    return frozenset((*names, str(config.get("SESSION_COOKIE_NAME") or "session")))


def signing(config: Mapping[str, Any], shared: bool, backend: str) -> bool:
    """Whether entries are signed: ``UWSGICACHE_SIGN``, or by default whenever there is
    a ``SECRET_KEY``. A shared store (uWSGI's cache, Redis) can be written by others
    (the uwsgi protocol, ``udp=``, anyone with the Redis password), and an unsigned
    pickle from it would run code: it needs a key, or ``UWSGICACHE_SIGN = False`` said
    on purpose."""
    sign = config["UWSGICACHE_SIGN"]
    secret_key = config.get("SECRET_KEY")
    if sign is not None and not isinstance(sign, bool):
        raise ValueError(f"UWSGICACHE_SIGN is {sign!r}; set it to True or False.")
    if sign and not secret_key:
        raise ValueError(
            "UWSGICACHE_SIGN is on but SECRET_KEY is not set: set SECRET_KEY (entries are "
            "signed with a key derived from it) or turn UWSGICACHE_SIGN off."
        )
    if sign is None and not secret_key and shared:
        raise ValueError(
            f"SECRET_KEY is not set, so entries in the shared {backend} cache would "
            f"be unsigned, and anything that can write to it could make the app unpickle "
            f"what it wants. Set SECRET_KEY before init_app (entries are signed with a "
            f"key derived from it), or set UWSGICACHE_SIGN = False to store them "
            f"unsigned on purpose."
        )
    return bool(secret_key) if sign is None else sign
