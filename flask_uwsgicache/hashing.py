"""How a decorator hashes its keys and, with ``source_check``, the function's source."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .appcache import BoundCache


class Hashing:
    """How a decorator hashes keys and, with ``source_check``, ``f``'s source code: as
    the decorator was given, else as the app says (the cache's ``hash_method`` and
    ``source_check``, from ``UWSGICACHE_HASH_METHOD`` and ``UWSGICACHE_SOURCE_CHECK``)."""

    def __init__(
        self,
        f: Callable[..., Any],
        hash_method: Callable[..., Any] | None,
        source_check: bool | None,
    ) -> None:
        self.f = f
        self.hash_method = hash_method
        self.source_check = source_check
        self._sources: dict[Callable[..., Any], str] = {}

    def method(self, cache: BoundCache) -> Callable[..., Any]:
        """The hash constructor for ``cache``'s app."""
        return self.hash_method or cache.hash_method

    def checks_source(self, cache: BoundCache) -> bool:
        """Whether keys carry a digest of the source."""
        return cache.source_check if self.source_check is None else self.source_check

    def source(self, cache: BoundCache) -> str:
        """A digest of ``f``'s source code if keys carry one, else ``""``."""
        if not self.checks_source(cache):
            return ""
        method = self.method(cache)
        digest = self._sources.get(method)
        if digest is None:
            try:  # the text, so a changed constant changes the digest too
                code = inspect.getsource(self.f).encode()
            except (OSError, TypeError):  # no source file (a REPL, a zipapp)
                code = self.f.__code__.co_code + repr(self.f.__code__.co_consts).encode()
            digest = self._sources[method] = method(code).hexdigest()[:16]
        return digest
