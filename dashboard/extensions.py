"""The Flask extensions, created once and bound to each app in :func:`dashboard.app.create_app`."""

from __future__ import annotations

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def api_limit() -> str:
    return str(current_app.config["CALLSCREEN_API_LIMIT"])
