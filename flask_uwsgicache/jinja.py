"""``{% cache timeout, "key" %}…{% endcache %}``: cache a fragment of a template.

As in Flask-Caching, the first argument is the timeout (seconds, ``None`` for the
default, ``"del"`` to delete the stored copy and render afresh), the second the fragment's
name (without one: the template's name and the tag's line) and the others what it varies
on; the key is :func:`make_template_fragment_key`'s, in the users' key space, so
``cache.delete(make_template_fragment_key("sidebar", [user_id]))`` forgets it. The
fragment is rendered once across processes (single flight) and stored as ``str``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from markupsafe import Markup

from .keys import short_digest

FRAGMENT_PREFIX = "_template_fragment_cache_"


def make_template_fragment_key(
    fragment_name: str, vary_on: Iterable[Any] | None = None
) -> str:
    """The cache key of ``{% cache timeout, fragment_name, *vary_on %}`` (as
    Flask-Caching's function of the same name makes it)."""
    return FRAGMENT_PREFIX + "_".join(
        str(part) for part in (fragment_name, *(vary_on or ()))
    )


class CacheExtension(Extension):
    """The ``cache`` tag; ``init_app`` adds it to the app's Jinja environment."""

    tags = {"cache"}

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        arguments = [parser.parse_expression()]
        unnamed = not parser.stream.skip_if("comma")
        if not unnamed:
            arguments.append(parser.parse_expression())
        else:  # an unnamed fragment is named by where it is, as in Flask-Caching
            arguments.append(nodes.Const(f"{parser.filename}{lineno}"))
        while parser.stream.skip_if("comma"):
            arguments.append(parser.parse_expression())
        body = parser.parse_statements(("name:endcache",), drop_needle=True)
        if unnamed and parser.filename is None:
            # Templates from strings have no file name: their unnamed fragments are
            # told apart by what they hold.
            digest = short_digest(repr(body))
            arguments[1] = nodes.Const(f"None{lineno}:{digest}")
        call = self.call_method("_render", [nodes.List(arguments)])
        return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, arguments: list[Any], caller: Callable[[], str]) -> Markup:
        timeout, name, *vary_on = arguments
        cache = current_app.extensions["uwsgicache"]
        key = make_template_fragment_key(name, vary_on)
        try:
            if timeout == "del":
                cache.delete(key)
                return Markup(caller())
            return Markup(cache.get_or_set(key, lambda: str(caller()), timeout))
        except Exception as error:  # a cache fault never breaks the page
            cache.log.warning(
                "FragmentFault", f"flask-uwsgicache: fragment uncached: {error!r}"
            )
            return Markup(caller())
