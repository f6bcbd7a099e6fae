"""Flask's app and request contexts, read the way every supported Flask allows.

Two names are private to Flask, so each has a public fallback, used when a Flask
release no longer has it (``tests/test_extension.py`` runs both):

* ``flask.globals._cv_app``, the context variable behind ``current_app`` (Flask 2.2 to
  3.2): read directly on the hot path, which the ``current_app`` proxy would slow down
  (``benchmarks/``). The fallback asks ``has_app_context()`` and ``app_ctx``.
* ``flask.globals.request_ctx`` (Flask 2.2 to 3.1), where Flask keeps the session before
  it is opened and the ``after_this_request`` callbacks. Flask 3.2 merges it into
  ``app_ctx`` and warns on the old name, so the module's own attribute is read (no
  ``__getattr__``, no warning) and ``app_ctx`` taken when it is not there.
"""

from __future__ import annotations

from typing import Any

import flask.globals
from flask import has_app_context


class PublicAppContext:
    """``_cv_app`` through Flask's public names: ``get(default)`` is the current app
    context (its ``app`` is the app) or ``default``."""

    def get(self, default: Any = None) -> Any:
        if not has_app_context():
            return default
        return flask.globals.app_ctx._get_current_object()  # type: ignore[attr-defined]


# Looked up in the module's own namespace ("in", not truth: a proxy outside a context
# is false).
_names = vars(flask.globals)
#: ``app_context.get(None)``: the current app context (``.app``) or None.
app_context: Any = _names["_cv_app"] if "_cv_app" in _names else PublicAppContext()
#: The current request's context (a proxy), for the session and the callbacks.
request_context: Any = (
    _names["request_ctx"] if "request_ctx" in _names else flask.globals.app_ctx
)
