"""WSGI entry point for a production server::

    gunicorn --bind 127.0.0.1:8080 --workers 2 'dashboard.wsgi:app'

Settings come from ``callscreen.toml`` / ``$CALLSCREEN_CONFIG`` and ``CALLSCREEN_*`` variables.
With ``CALLSCREEN_REDIS_URL`` naming a store of its own, every key (including
``CALLSCREEN_DASHBOARD_SECRET``) must come from the environment and the app refuses to start
without them. In development (``callscreen run``: no URL, or the URL of the data folder's
running embedded server) the app uses the development keys kept under the data folder, as the
command line does.
"""

from callscreen.logs import configure_logging
from dashboard.app import create_app, wsgi_settings

settings = wsgi_settings()
configure_logging(settings)
app = create_app(settings)
