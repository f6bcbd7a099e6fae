"""``flask uwsgicache stats``: read a running uWSGI's stats server and show its caches.

uWSGI's stats server (``stats = 127.0.0.1:9191`` or a unix socket path in the ini) sends
one JSON document and closes; with ``stats-http`` it answers HTTP instead. Its
``caches`` list has, per cache, ``items``, ``max_items``, ``hits``, ``miss`` and
``full`` (the number of writes refused because the cache was full). The per-view counts
of ``cache.stats()`` live in memory only the app's processes share, so they come from a
URL where the app serves ``cache.stats()`` as JSON, if it does.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from typing import Any

_READ_LIMIT = 64 << 20


def read_stats(address: str, timeout: float = 5.0) -> dict[str, Any]:
    """The stats document of the uWSGI at ``address``.

    ``address`` is ``host:port`` or a unix socket path for ``stats``, or an
    ``http://`` URL for ``stats-http``. Raises ``OSError`` when nothing answers there,
    ``ValueError`` when what answers is not uWSGI's JSON.
    """
    if address.startswith(("http://", "https://")):
        with urllib.request.urlopen(address, timeout=timeout) as response:
            data = response.read(_READ_LIMIT)
    else:
        if ":" in address and not address.startswith(("/", ".")):
            host, _sep, port = address.rpartition(":")
            connection = socket.create_connection((host or "127.0.0.1", int(port)), timeout)
        else:
            connection = socket.socket(socket.AF_UNIX)
        chunks: list[bytes] = []
        with connection:
            if connection.family == socket.AF_UNIX:
                connection.settimeout(timeout)
                connection.connect(address)
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        data = b"".join(chunks)
    document = json.loads(data)
    if not isinstance(document, dict) or "workers" not in document:
        raise ValueError(f"{address} answered, but not with uWSGI's stats JSON")
    return document


def read_app_stats(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """``cache.stats()`` as the app serves it at ``url`` (bare, or under ``"stats"``)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        document = json.load(response)
    if isinstance(document, dict) and isinstance(document.get("stats"), dict):
        document = document["stats"]
    if not isinstance(document, dict) or "views" not in document:
        raise ValueError(f"{url} does not serve cache.stats() as JSON")
    return document


def render(stats: dict[str, Any], app_stats: dict[str, Any] | None = None) -> str:
    """A table of the caches, and of the app's views when given."""
    workers = stats.get("workers", [])
    lines = [
        f"uWSGI {stats.get('version', '?')}, pid {stats.get('pid', '?')}, "
        f"{len(workers)} worker(s), {sum(w.get('requests', 0) for w in workers)} requests",
        "",
        f"{'cache':<20} {'items':>13} {'hits':>10} {'misses':>10} {'hit %':>6} {'full':>8}",
    ]
    for cache in stats.get("caches", []):
        hits, misses = int(cache.get("hits", 0)), int(cache.get("miss", 0))
        usable = max(int(cache.get("max_items", 0)) - 1, 0)
        ratio = f"{100 * hits / (hits + misses):.0f}" if hits + misses else "-"
        used = f"{cache.get('items', 0)}/{usable}"
        lines.append(
            f"{cache.get('name', '?'):<20} {used:>13} {hits:>10} {misses:>10} "
            f"{ratio:>6} {cache.get('full', 0):>8}"
        )
    if not stats.get("caches"):
        lines.append("(no caches)")
    lines.append("full: writes uWSGI refused because the cache was full")
    if app_stats is not None:
        lines += ["", f"{'view or function':<48} {'hits':>8} {'misses':>8} {'refused':>8}"]
        views = app_stats.get("views", {})
        for name, counts in sorted(views.items()):
            lines.append(
                f"{name:<48} {counts.get('hits', 0):>8} {counts.get('misses', 0):>8} "
                f"{counts.get('refused', 0):>8}"
            )
        if not views:
            lines.append("(no cached views or functions have run yet)")
    return "\n".join(lines) + "\n"
