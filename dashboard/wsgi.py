"""WSGI entry point for a production server::

    gunicorn --bind 127.0.0.1:8080 --workers 2 'dashboard.wsgi:app'

Settings come from ``callscreen.toml`` / ``$CALLSCREEN_CONFIG`` and ``CALLSCREEN_*`` variables;
the app refuses to start without ``CALLSCREEN_DASHBOARD_SECRET`` and the number keys.
"""

from dashboard import create_app

app = create_app()
