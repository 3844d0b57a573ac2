"""The supervisors' dashboard and the intake API (a Flask app; see :func:`create_app`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(*args: Any, **kwargs: Any) -> Flask:
    """Build the app; see :func:`dashboard.app.create_app` for the parameters.

    Imported lazily so the CLI can use :mod:`dashboard.users` without loading the web stack.
    """
    from dashboard.app import create_app as build

    return build(*args, **kwargs)


__all__ = ["create_app"]
