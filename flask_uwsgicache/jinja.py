"""``{% cache timeout, "key" %}…{% endcache %}``: cache a fragment of a template.

As in Flask-Caching, the first argument is the timeout (seconds, ``None`` for the
default) and the others make the key, stored as ``_template_fragment_cache_<keys>``.
The fragment is rendered once across processes (single flight) and stored as ``str``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from markupsafe import Markup

FRAGMENT_PREFIX = "_template_fragment_cache_"


def fragment_key(*keys: Any) -> str:
    """The cache key of the fragment tagged with ``keys`` (to delete it from Python)."""
    return FRAGMENT_PREFIX + "_".join(str(key) for key in keys)


class CacheExtension(Extension):
    """The ``cache`` tag; ``init_app`` adds it to the app's Jinja environment."""

    tags = {"cache"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        arguments = [parser.parse_expression()]
        while parser.stream.skip_if("comma"):
            arguments.append(parser.parse_expression())
        body = parser.parse_statements(("name:endcache",), drop_needle=True)
        call = self.call_method("_render", [nodes.List(arguments)])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, arguments: list[Any], caller: Callable[[], str]) -> Markup:
        timeout, *keys = arguments
        cache = current_app.extensions["uwsgicache"]
        try:
            return Markup(
                cache.get_or_set(fragment_key(*keys), lambda: str(caller()), timeout)
            )
        except Exception as error:  # a cache fault never breaks the page
            cache.log.warning(
                "FragmentFault", f"flask-uwsgicache: fragment uncached: {error!r}"
            )
            return Markup(caller())
