"""The Flask extensions, created once and bound to each app in :func:`dashboard.app.create_app`."""

from __future__ import annotations

from flask import current_app, request
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
babel = Babel()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


def login_limit_per_address() -> str:
    return str(current_app.config["CALLSCREEN_LOGIN_LIMIT_PER_ADDRESS"])


def login_limit_per_user() -> str:
    return str(current_app.config["CALLSCREEN_LOGIN_LIMIT_PER_USER"])


def login_user_key() -> str:
    """Rate-limit key for a login attempt: the account name tried (so spreading the
    guesses over many addresses does not help)."""
    name = request.form.get("username", "")
    return "login-user:" + name.strip().lower()[:64]


def api_limit() -> str:
    return str(current_app.config["CALLSCREEN_API_LIMIT"])
