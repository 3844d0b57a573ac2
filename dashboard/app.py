"""The dashboard's app factory.

Invariants: the app refuses to start without a session secret (outside testing) or
without the keys that protect phone numbers; session cookies are HttpOnly, SameSite=Lax
and Secure unless explicitly turned off for plain-http local use; every state-changing
form carries a CSRF token; every page that shows personal data is sent ``no-store``.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from argon2 import PasswordHasher
from flask import Flask, g, jsonify, render_template, request, session
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from callscreen.config import ConfigError, Settings, load_settings
from callscreen.numbers import mask
from dashboard import explain, formatting, login_guard
from dashboard.extensions import babel, csrf, limiter, login_manager
from dashboard.services import EXTENSION, build_services, services
from dashboard.sessions import SESSION_LIFETIME
from dashboard.users import LOCALES

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 1024 * 1024
SECURE_COOKIES_ENV = "CALLSCREEN_DASHBOARD_SECURE_COOKIES"
PROXIES_ENV = "CALLSCREEN_DASHBOARD_PROXIES"


def select_locale() -> str:
    """The user's saved language, else the one picked this session, else the browser's."""
    user = current_user
    if getattr(user, "is_authenticated", False) and getattr(user, "locale", ""):
        return str(user.locale)
    chosen = session.get("locale")
    if chosen in LOCALES:
        return str(chosen)
    return request.accept_languages.best_match(LOCALES) or "en"


def _proxies_default() -> int:
    text = os.environ.get(PROXIES_ENV, "0").strip() or "0"
    if not text.isdigit():
        raise ConfigError(f"{PROXIES_ENV}: expected a number of proxies, got {text!r}")
    return int(text)


def _secure_cookies_default() -> bool:
    return os.environ.get(SECURE_COOKIES_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def create_app(
    settings: Settings | None = None,
    *,
    client: redis.Redis | None = None,
    decision_log: Any = None,
    screener: Any = None,
    registry_status: Callable[[], list[Any]] | None = None,
    secure_cookies: bool | None = None,
    testing: bool = False,
    config: dict[str, Any] | None = None,
    password_hasher: PasswordHasher | None = None,
    proxies: int | None = None,
) -> Flask:
    """Build the dashboard and intake API around one store.

    ``registry_status`` returns the do-not-call registries' freshness for the overview (the
    default asks :mod:`blocklists.registry` if it is installed and configured).
    ``password_hasher`` defaults to argon2id with argon2-cffi's recommended parameters.
    ``proxies`` is the number of reverse proxies in front of the app whose ``X-Forwarded-*``
    headers are trusted (default ``$CALLSCREEN_DASHBOARD_PROXIES`` or 0): the per-address login
    limit must see the client's address, not the proxy's.
    """
    settings = settings or load_settings()
    settings.require_secrets()
    secret = settings.dashboard_secret
    if len(secret) < 32:
        if not testing:
            raise ConfigError(
                "dashboard_secret: need at least 32 bytes of key material in "
                "CALLSCREEN_DASHBOARD_SECRET or CALLSCREEN_DASHBOARD_SECRET_FILE (hex or base64)"
            )
        secret = secrets.token_bytes(32)

    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.update(
        SECRET_KEY=secret,
        TESTING=testing,
        SESSION_COOKIE_NAME="callscreen_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=_secure_cookies_default() if secure_cookies is None else secure_cookies,
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,  # the cookie's; the session record's is absolute
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session (8 h at most)
        WTF_CSRF_SSL_STRICT=True,
        BABEL_TRANSLATION_DIRECTORIES=str(HERE / "translations"),
        BABEL_DEFAULT_LOCALE="en",
        BABEL_DEFAULT_TIMEZONE="UTC",
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX="cs:ratelimit",
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_ENABLED=True,
        CALLSCREEN_LOGIN_BACKOFF_PER_ADDRESS=login_guard.PER_ADDRESS,
        CALLSCREEN_LOGIN_BACKOFF_PER_ACCOUNT=login_guard.PER_ACCOUNT,
        CALLSCREEN_LOGIN_BACKOFF_PER_ACCOUNT_AND_ADDRESS=login_guard.PER_ACCOUNT_AND_ADDRESS,
        CALLSCREEN_API_LIMIT="600 per minute",
        CALLSCREEN_PAGE_SIZE=50,
        JSON_SORT_KEYS=False,
    )
    app.config.update(config or {})

    if registry_status is None:
        registry_status = _default_registry_status(settings, client)
    app.extensions[EXTENSION] = build_services(
        settings, client, decision_log=decision_log, screener=screener, registry_status=registry_status,
        password_hasher=password_hasher,
    )

    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(session_id: str) -> Any:
        return services().sessions.resume(session_id)

    trusted = _proxies_default() if proxies is None else proxies
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted)  # type: ignore[method-assign]

    _register_blueprints(app)
    _register_template_helpers(app)
    _register_errors(app)

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    return app


def wsgi_settings() -> Settings:
    """Production: settings as configured. Development: the data folder's embedded store and
    the development keys kept beside it (only for that store, never for a configured one)."""
    settings = load_settings()
    from callscreen.cli.context import ensure_dev_secrets, running_embedded_url

    embedded = running_embedded_url(settings)
    if settings.redis_url and settings.redis_url != embedded:
        return settings
    if embedded is None:
        raise RuntimeError(
            "no store: set CALLSCREEN_REDIS_URL, or start the embedded one with `callscreen run`"
        )
    return dataclasses.replace(ensure_dev_secrets(settings), redis_url=embedded)


def _default_registry_status(settings: Settings, client: redis.Redis | None) -> Callable[[], list[Any]] | None:
    """Registry freshness from :mod:`blocklists` against the policy packs' age limits; None
    (the overview then says no registries are loaded) when that package is absent."""
    try:
        from blocklists.registry import RegistryManager
    except ImportError:
        return None

    def read() -> list[Any]:
        svc = services()
        book = svc.screener.policies
        packs = [book.get(j) for j in book.jurisdictions()]
        return list(RegistryManager(svc.client).status([p for p in packs if p is not None]))

    return read


def _register_blueprints(app: Flask) -> None:
    from dashboard import admin, api, auth, blocked, complaints, consents, dsr, health, lookup, overview

    for module in (auth, overview, blocked, lookup, complaints, consents, dsr, admin, health):
        app.register_blueprint(module.bp)
    csrf.exempt(api.bp)  # bearer tokens, no cookies: CSRF does not apply
    app.register_blueprint(api.bp)

    @app.before_request
    def login_by_default() -> Any:
        """Deny by default: every dashboard page needs a login, even one whose view lacks its
        ``require`` (the role check stays each view's own). The API checks its bearer token."""
        endpoint = request.endpoint
        if (endpoint is None or endpoint in auth.PUBLIC_ENDPOINTS or endpoint in health.PUBLIC_ENDPOINTS
                or endpoint.startswith("api.")):
            return None
        if current_user.is_authenticated:
            return None
        return login_manager.unauthorized()


def _register_template_helpers(app: Flask) -> None:
    app.jinja_env.globals.update(
        mask=mask,
        can=lambda permission: bool(getattr(current_user, "is_authenticated", False))
        and current_user.can(permission),
        current_locale=lambda: str(g.get("_locale_name") or select_locale()),
        reason_label=formatting.reason_label,
        status_label=formatting.status_label,
        channel_label=formatting.channel_label,
        regulator_label=formatting.regulator_label,
        role_label=formatting.role_label,
        registry_state=formatting.registry_state,
        field_error=formatting.field_error,
        masked_number=formatting.masked_number,
        masked_digest=formatting.masked_digest,
        basis_label=formatting.basis_label,
        source_label=formatting.source_label,
        purpose_label=formatting.purpose_label,
        purposes_label=formatting.purposes_label,
        origin_label=formatting.origin_label,
        relationship_label=formatting.relationship_label,
        scope_label=formatting.scope_label,
        zone_name=formatting.zone_name,
        check_name=explain.check_name,
        check_detail=explain.check_detail,
    )
    app.jinja_env.filters.update(
        when=formatting.when,
        day=formatting.day,
        percent=formatting.percent,
    )
    app.jinja_env.autoescape = True


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _register_errors(app: Flask) -> None:
    from flask_babel import gettext as _

    messages = {
        400: _l("The request could not be understood."),
        403: _l("Your role does not allow this."),
        404: _l("Not found."),
        405: _l("This method is not allowed here."),
        413: _l("The request is too large."),
        429: _l("Too many attempts. Wait a little and try again."),
    }

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        return render_template("error.html", code=400,
                               message=_("The form expired or was not sent from this site. "
                                         "Reload the page and try again.")), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        code = error.code or 500
        if _wants_json():
            body = {"error": (error.name or "error").lower().replace(" ", "_"),
                    "message": error.description or error.name}
            response = jsonify(body)
            response.status_code = code
            if code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
                response.headers["Allow"] = ", ".join(error.valid_methods)
            return response
        message = messages.get(code, error.name)
        return render_template("error.html", code=code, message=message), code
