"""WSGI entry point for a production server::

    gunicorn --bind 127.0.0.1:8080 --workers 2 'dashboard.wsgi:app'

Settings come from ``callscreen.toml`` / ``$CALLSCREEN_CONFIG`` and ``CALLSCREEN_*`` variables.
With ``CALLSCREEN_REDIS_URL`` set, every key (including ``CALLSCREEN_DASHBOARD_SECRET``) must
come from the environment and the app refuses to start without them. Without it (development,
``callscreen run``) the app joins the data folder's running embedded server and uses the
development keys kept under the data folder, as the command line does.
"""

from __future__ import annotations

import dataclasses

from callscreen.config import Settings, load_settings
from dashboard import create_app


def wsgi_settings() -> Settings:
    settings = load_settings()
    if settings.redis_url:
        return settings
    from callscreen.cli.context import ensure_dev_secrets, running_embedded_url

    url = running_embedded_url(settings)
    if url is None:
        raise RuntimeError(
            "no store: set CALLSCREEN_REDIS_URL, or start the embedded one with `callscreen run`"
        )
    return dataclasses.replace(ensure_dev_secrets(settings), redis_url=url)


app = create_app(wsgi_settings())
