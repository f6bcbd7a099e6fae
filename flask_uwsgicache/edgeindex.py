"""Which edge entries belong to a path, so ``delete_edge`` finds them without listing
an edge cache's keys.

Next to its entries, an edge cache holds up to :data:`VARIANTS` *records* per path (as
the app sees it: ``request.path``), each naming one entry of that path (a host and query
string). Their keys start with NUL, which no route's key does (a route's key starts
with its scheme inputs and ``|``: :func:`flask_uwsgicache.edgeroutes.edge_key`), so no
request is ever answered with a record. A record outlives its entry by
:data:`OUTLIVES` seconds, so a path's entries are all found until they are gone.

Storing takes a free record (``cache_set`` adds atomically) before it writes the entry,
and checks afterwards that the record is still there: a delete that ran in between
took the record, and the entry it could not see yet is deleted again. A delete removes
the record before its entry. So no entry outlives a delete that began after it was
stored. A path with more variants than records, or a full edge cache, gets no more
entries at the edge: the normal cache keeps those responses.
"""

from __future__ import annotations

import hashlib
from typing import Final
from urllib.parse import unquote

#: Edge entries one path may have in one edge cache (hosts times query strings).
VARIANTS: Final = 16
#: Seconds a record outlives its entry: uWSGI's sweeper may remove the record first
#: in the same pass (docs/uwsgi-cache2-facts.rst §5).
OUTLIVES: Final = 2


def app_path(environ_path: str) -> str:
    """A path as ``request.path`` has it (one leading ``/``)."""
    return "/" + environ_path.lstrip("/")


def request_path(environ: dict[str, object] | object) -> str:
    """The app's path of a request (``PATH_INFO``, else the URI's path decoded), as
    ``request.path`` says it."""
    assert isinstance(environ, dict)
    path = environ.get("PATH_INFO")
    if not isinstance(path, str):
        uri = str(environ.get("REQUEST_URI", ""))
        path = unquote(uri.partition("?")[0], "latin-1")
    # WSGI strings are latin-1 decoded bytes; the app sees UTF-8.
    return app_path(path.encode("latin-1", "replace").decode("utf-8", "replace"))


def records(path: str) -> list[bytes]:
    """The keys of the records of ``path`` (as the app sees it)."""
    digest = hashlib.blake2b(
        app_path(path).encode("utf-8", "surrogatepass"), digest_size=12
    ).hexdigest()
    return [f"\0{digest}/{number}".encode() for number in range(VARIANTS)]


def take(name: str, path: str, key: bytes, expires: int) -> bytes | None:
    """A record of ``path`` in edge cache ``name`` naming ``key``, kept ``expires``
    seconds (0: never) plus :data:`OUTLIVES`: its key, or None if every record is
    taken by other entries or the cache is full."""
    import uwsgi

    kept = expires + OUTLIVES if expires else 0
    for record in records(path):
        if uwsgi.cache_set(record, key, kept, name):
            return record
        held = uwsgi.cache_get(record, name)
        if held == key:  # this entry's, from an earlier store: kept as long again
            uwsgi.cache_update(record, key, kept, name)
            return record
        if held is None and not uwsgi.cache_exists(record, name):
            return None  # cache_set refused a free record: the cache is full
    return None


def holds(name: str, record: bytes, key: bytes) -> bool:
    """True if ``record`` still names ``key`` (no delete took it)."""
    import uwsgi

    return uwsgi.cache_get(record, name) == key


def forget(name: str, path: str) -> int:
    """Delete the entries of ``path`` in edge cache ``name``, and their records; how
    many entries went."""
    import uwsgi

    deleted = 0
    for record in records(path):
        key = uwsgi.cache_get(record, name)
        if key is None:
            continue
        uwsgi.cache_del(record, name)  # first: a store that comes now sees it gone
        if uwsgi.cache_del(key, name):
            deleted += 1
    return deleted
