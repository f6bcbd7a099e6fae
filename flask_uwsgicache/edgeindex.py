"""Which edge entries belong to a path, so ``delete_edge`` finds them without listing
an edge cache's keys.

Next to its entries, an edge cache holds up to :data:`VARIANTS` *records* per path (as
the app sees it: ``request.path``), each naming one entry of that path (a host and query
string). Their keys start with NUL, which no route's key does (a route's key starts
with its scheme inputs and ``|``: :func:`flask_uwsgicache.edgeroutes.edge_key`), so no
request is ever answered with a record. A record outlives its entry by
:data:`OUTLIVES` seconds, so a path's entries are all found until they are gone.

A record holds a token of the store that wrote it and the entry's key. Storing takes a
record (``cache_set`` adds atomically; the entry's own record from an earlier store is
taken over) before it writes the entry, and checks afterwards that the record still
holds its token: a delete, or a later store of the same entry, that ran in between
took the record, and the entry is deleted again. A delete removes the record before
its entry. So no entry outlives a delete that began after it was stored. When all the
records of a path name other entries, a store deletes one of them, at random, and
takes its record; in a full edge cache a response is not put at the edge (the normal
cache keeps it, and a log line says so).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final
from urllib.parse import unquote

#: Edge entries one path may have in one edge cache (hosts times query strings).
VARIANTS: Final = 16
#: Bytes of a store's token, before the entry's key, in a record.
TOKEN: Final = 8
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


def put(name: str, path: str, key: bytes, body: bytes, expires: int) -> str | None:
    """Write ``body`` under ``key`` in edge cache ``name`` for ``expires`` seconds (0:
    never), with a record of ``path``; None, or why it is not there."""
    import uwsgi

    taken = take(name, path, key, expires)
    if taken is None:
        return f"edge cache {name!r} is full"
    record, value = taken
    # uWSGI counts expiry in whole seconds; cache_update answers None, never False,
    # when it refuses (docs/uwsgi-cache2-facts.rst §1, §2).
    if uwsgi.cache_update(key, body, expires, name) is None:
        # An older copy may be there, named by the record this store took over:
        # deleted with it, or no delete could find it again.
        uwsgi.cache_del(key, name)
        release(name, record, value)
        return (
            f"edge cache {name!r} refused {len(body)} bytes: larger than blocksize, key "
            f"longer than keysize, or the cache is full"
        )
    if not keep(name, record, value, expires):
        uwsgi.cache_del(key, name)
        return "a delete_edge, or a later store of the same page, ran meanwhile"
    return None


def take(name: str, path: str, key: bytes, expires: int) -> tuple[bytes, bytes] | None:
    """A record of ``path`` in edge cache ``name`` naming ``key`` for this store, kept
    ``expires`` seconds (0: never) plus :data:`OUTLIVES`: ``(record, value)``, or None
    if the cache is full. When every record of the path names another entry, one of
    them, at random, is deleted for this one: no client can keep a path off the edge by
    filling its records with hosts and query strings of its own."""
    import uwsgi

    # A token of this store's own: a store of the same entry that starts later takes
    # the record over, and this one then finds it is not its own any more.
    value = secrets.token_bytes(TOKEN) + key
    kept = expires + OUTLIVES if expires else 0
    keys = records(path)
    for record in keys:
        if uwsgi.cache_set(record, value, kept, name):
            return record, value
        held = uwsgi.cache_get(record, name)
        if held is not None and held[TOKEN:] == key:  # this entry's, from a store before
            uwsgi.cache_update(record, value, kept, name)
            return record, value
        if held is None and not uwsgi.cache_exists(record, name):
            # cache_set answers None both for a taken key and for a full cache
            # (docs/uwsgi-cache2-facts.rst §1, §2): free and refused means full.
            return None
    record = keys[secrets.randbelow(VARIANTS)]
    held = uwsgi.cache_get(record, name)
    if held is not None:
        uwsgi.cache_del(held[TOKEN:], name)  # the entry before its record
    if uwsgi.cache_update(record, value, kept, name) is None:
        return None
    return record, value


def keep(name: str, record: bytes, value: bytes, expires: int) -> bool:
    """After the entry is written: True if ``record`` is still this store's (no
    delete, no later store took it), and then kept from now on (so it outlives the
    entry however long the write took)."""
    import uwsgi

    if uwsgi.cache_get(record, name) != value:
        return False
    uwsgi.cache_update(record, value, expires + OUTLIVES if expires else 0, name)
    return True


def release(name: str, record: bytes, value: bytes) -> None:
    """Give back ``record`` when its entry could not be written (if still this store's)."""
    import uwsgi

    if uwsgi.cache_get(record, name) == value:
        uwsgi.cache_del(record, name)


def forget(name: str, path: str) -> int:
    """Delete the entries of ``path`` in edge cache ``name``, and their records; how
    many entries went."""
    import uwsgi

    deleted = 0
    for record in records(path):
        held = uwsgi.cache_get(record, name)
        if held is None:
            continue
        uwsgi.cache_del(record, name)  # first: a store that comes now sees it gone
        if uwsgi.cache_del(held[TOKEN:], name):
            deleted += 1
    return deleted
