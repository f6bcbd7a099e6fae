"""The optional C implementation of the key-value cache's ``get`` and ``set``.

``flask_uwsgicache/_speedups.c`` is built when the package is installed with a compiler
at hand. When it is there, each cache's ``get`` and ``set`` are its (instance attributes
over the class's methods): they do the common case in C and call the Python methods for
every other, so what they answer is the Python methods' answer. Setting
``UWSGICACHE_NO_SPEEDUPS=1`` in the environment keeps the Python ones;
``describe()["speedups"]`` says which run (docs/operations.rst, "The C speedups").
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from types import BuiltinMethodType, ModuleType
from typing import Any

from . import timeouts
from .envelope import LEAD, MAC_SIZE, MISSING, SIGNED, TRAILER_SIZE, VIEW_FROM, Envelope


def load() -> ModuleType | None:
    """The C speedups, configured; None when they are not built or the environment
    sets ``UWSGICACHE_NO_SPEEDUPS`` (to anything but ``""`` or ``0``)."""
    if os.environ.get("UWSGICACHE_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    # The C code writes the trailer itself: a change to envelope.py's format must
    # reach it (tests/test_envelope.py compares their entries byte for byte too).
    if (_speedups.TRAILER_SIZE, _speedups.SIGNED, _speedups.MAC_SIZE) != (
        TRAILER_SIZE,
        SIGNED,
        MAC_SIZE,
    ):
        return None
    # The C module's state is the process's: the first interpreter to configure it has
    # it, and the others (apps uWSGI mounts in sub-interpreters) run the Python methods.
    if not _speedups.configure(
        MISSING, LEAD, VIEW_FROM, timeouts.MAX_TIMEOUT, pickle.dumps
    ):
        return None
    return _speedups


#: The C speedups every cache built from now on uses (:func:`load`), or None for the
#: Python methods only.
built: ModuleType | None = load()


def install(
    cache: Any,  # a flask_uwsgicache.cache.KeyValueCache (which imports this module)
    python_get: Callable[..., Any],
    python_set: Callable[..., Any],
) -> bool:
    """Make :data:`built`'s C ``get`` and ``set`` those of ``cache`` where they do what
    ``python_get`` and ``python_set`` (the class's methods) do: neither method
    overridden, the envelope an :class:`~flask_uwsgicache.envelope.Envelope`. True if
    they are installed.

    They hold the storage-key memo, the reader, the envelope and the backend of the
    moment; the rest (the default timeout, the envelope's clock and memo, the backend's
    state) they read on every call."""
    # Instance attributes are set and deleted as attributes, never through __dict__
    # (which turns the inline attribute values of CPython 3.11+ into a dict, and slows
    # every attribute read of the Python methods), and deleted only where there is one
    # (deleting adds the name to the class's shared keys, and CPython then no longer
    # specializes the lookup of the method for any instance).
    paths = None
    if built is not None and type(cache.envelope) is Envelope:
        paths = built.FastPaths(
            cache,
            python_get,
            python_set,
            cache._known_keys,
            cache._read,
            cache._read_name,
            cache.envelope,
            cache.backend,
            cache.backend.fast_update(),
        )
    installed = False
    for name, python in (("get", python_get), ("set", python_set)):
        if paths is not None and getattr(type(cache), name) is python:
            object.__setattr__(cache, name, getattr(paths, name))
            installed = True
        elif isinstance(getattr(cache, name), BuiltinMethodType):  # a copy's
            object.__delattr__(cache, name)
    return installed
