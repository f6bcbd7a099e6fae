"""``flask uwsgicache config``: the app's resolved cache configuration and backend."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from ..backends.base import shown_url
from ..config import DEFAULTS, EXTENSION_KEY


def _shown(key: str, value: Any) -> str:
    if key == "UWSGICACHE_REDIS_URL" and isinstance(value, str):
        value = shown_url(value)  # no passwords on screen
    return json.dumps(value, default=repr)


def config_report(app: Flask) -> str:
    """Every ``UWSGICACHE_*`` setting as the app resolved it, then what was built."""
    lines = [f"app {app.name!r}"]
    cache = app.extensions.get(EXTENSION_KEY)
    settings = cache.settings if cache is not None else app.config
    keys = sorted({*DEFAULTS, *(key for key in settings if key.startswith("UWSGICACHE_"))})
    width = max(map(len, keys))
    for key in keys:
        lines.append(f"  {key:<{width}} {_shown(key, settings.get(key))}")
    if cache is None:
        lines.append("no UWSGICache on this app: call init_app(app)")
        return "\n".join(lines) + "\n"
    described = cache.describe()
    lines.append("built")
    lines += [f"  {key:<{width}} {json.dumps(value)}" for key, value in described.items()]
    if described["backend"] == "unavailable":
        lines.append(
            "  (the uwsgi backend exists only inside uWSGI; this command runs outside it)"
        )
    return "\n".join(lines) + "\n"
