"""One app's cache: the key-value cache and what the view layer keeps for the app.

:class:`BoundCache` is the object in ``app.extensions["uwsgicache"]``. The key-value API
and its semantics come from :class:`~flask_uwsgicache.cache.KeyValueCache`; this class
adds the state of the view layer (the edge caches, per-view counts, the views the fast
path may answer, which requests may share responses) and the parts of ``clear()``,
``stats()`` and ``describe()`` that concern it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any, cast

from .backends.base import Backend
from .cache import KeyValueCache
from .edge import Edge
from .envelope import Envelope
from .errors import CacheError
from .generations import ResponseSpace, for_store
from .logs import RateLimitedLog
from .viewcounts import ViewCounts


class BoundCache(KeyValueCache):
    """The cache API for one app (see :class:`~flask_uwsgicache.cache.KeyValueCache`
    for the shared semantics), with its views' state."""

    def __init__(
        self,
        backend: Backend,
        envelope: Envelope,
        *,
        key_prefix: str = "",
        default_timeout: float = 300,
        raise_errors: bool = False,
        log: RateLimitedLog | None = None,
        responses_backend: Backend | None = None,
        edge: Edge | None = None,
    ) -> None:
        # The settings written out, not **settings: type checkers and help() show them.
        super().__init__(
            backend,
            envelope,
            key_prefix=key_prefix,
            default_timeout=default_timeout,
            raise_errors=raise_errors,
            log=log,
            responses_backend=responses_backend,
        )
        #: Where ``cached(edge=True)`` views put responses for uWSGI to serve.
        self.edge = edge or Edge({}, "no edge is configured", self.log)
        #: Names of cookies that change no answer of the app (the session's, whose
        #: content is checked, and ``UWSGICACHE_SHARED_COOKIES``): requests that send
        #: only these may read and fill the cache of views.
        self.shared_cookies: frozenset[str] = frozenset(("session",))
        #: The environ keys of the headers that carry credentials
        #: (``UWSGICACHE_PERSONAL_HEADERS``): requests with one never use cached views.
        self.credentials: tuple[str, ...] = ("HTTP_AUTHORIZATION",)
        #: The decorators' defaults (``UWSGICACHE_SOURCE_CHECK`` and
        #: ``UWSGICACHE_HASH_METHOD``), read once rather than from the settings per call.
        self.source_check = False
        self.hash_method: Callable[..., Any] = hashlib.md5
        self.view_counts = ViewCounts.of(f"{backend.cache_name}\0{key_prefix}")
        # Made here, before uWSGI forks the workers, so that they share it.
        responses_store = responses_backend or backend
        self.generations = for_store(
            responses_store.name, f"{responses_store.cache_name}\0{key_prefix}"
        )
        self._view_responses: BoundCache | None = None
        #: ``(key_prefix, query_string)`` of cached views the fast path may answer.
        self.fast_prefixes: dict[tuple[str, bool], None] = {}

    def clear(self) -> bool:
        """Remove every entry under this app's ``UWSGICACHE_KEY_PREFIX``.

        Prefixes never overlap (``shop:`` does not clear ``shop:admin:``'s entries:
        :mod:`flask_uwsgicache.keys`). With an empty prefix the app owns the whole
        cache and all of it is cleared, other apps' entries included.
        The edge caches and the responses' cache (``UWSGICACHE_RESPONSES_NAME``) are
        emptied too, and the per-view counts start again from zero. uWSGI walks every
        slot under its write lock for this: keep it off hot paths.
        """
        self.edge.clear()
        if not super().clear():
            return False
        self.view_counts.reset()
        return True

    @property
    def view_responses(self) -> BoundCache:
        """The responses' key space as cached views read and write it: what is stored
        there is served only in its path's current generation
        (:mod:`~flask_uwsgicache.generations`)."""
        found = self._view_responses
        if found is None:
            found = self.responses
            if self.generations is not None:
                # It answers every call of the space; get and set check and stamp.
                found = cast(BoundCache, ResponseSpace(found, self.generations))
            self._view_responses = found
        return found

    def delete_edge(self, path: str, stems: Iterable[str] = ()) -> bool:
        """Forget the responses cached for ``path`` (any query string, host or
        variant) under these view-key ``stems`` (see :func:`viewkeys.path_stem`): at
        the edge and in this cache, so the next request runs the view. True if
        anything may have been stored for it since it was last forgotten (stems that
        share a generation cell answer for each other). O(1): the stems' generations
        end (:mod:`~flask_uwsgicache.generations`); where the store keeps none, the
        store lists every key instead."""
        deleted = self.edge.delete(path)
        responses = self.responses
        try:
            for stem in stems:
                if self.generations is not None:
                    deleted += self.generations.end(responses, stem + "?")
                    continue
                for found in responses.own_keys((stem + "?").encode()):
                    deleted += responses.backend.delete(found)
        except CacheError as error:  # the store is unreachable (Redis down)
            return self._refused(error)
        return deleted > 0

    def describe(self) -> dict[str, Any]:
        """The cache's configuration and limits (no calls to the cache)."""
        return {**super().describe(), "edge": self.edge.describe()}

    def stats(self, *, entries: bool = False) -> dict[str, Any]:
        """What :meth:`KeyValueCache.stats` returns, and ``views``: the per-view counts
        of every worker (:mod:`~flask_uwsgicache.viewcounts`), which need no call to the
        store."""
        return {**super().stats(entries=entries), "views": self.view_counts.totals()}
