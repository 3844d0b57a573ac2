"""Logging in and out, the language switch, and the role check every page uses.

Invariants: failed logins are throttled per address, per account and per both
(:mod:`dashboard.login_guard`); every login starts a new server-side session
(:mod:`dashboard.sessions`) and logging out ends it for every copy of the cookie; a wrong
role gets 403, never a silent redirect.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from dashboard.login_guard import LoginGuard
from dashboard.services import services
from dashboard.users import LOCALES

bp = Blueprint("auth", __name__)
PUBLIC_ENDPOINTS = frozenset({"auth.login", "auth.logout", "auth.language", "static"})  # no login needed
F = TypeVar("F", bound=Callable[..., Any])


def require(permission: str) -> Callable[[F], F]:
    """Log-in required, and the user's role must grant ``permission`` (else 403)."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.can(permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes to the overview."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("overview.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return url_for("overview.index")
    return target


def login_guard() -> LoginGuard:
    """The guard with this app's limits (``CALLSCREEN_LOGIN_BACKOFF_*``, see app.py)."""
    config = current_app.config
    return LoginGuard(services().client, per_address=config["CALLSCREEN_LOGIN_BACKOFF_PER_ADDRESS"],
                      per_account=config["CALLSCREEN_LOGIN_BACKOFF_PER_ACCOUNT"],
                      per_pair=config["CALLSCREEN_LOGIN_BACKOFF_PER_ACCOUNT_AND_ADDRESS"])


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET" and current_user.is_authenticated:
        return redirect(url_for("overview.index"))
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip().lower()[:64]
        password = request.form.get("password", "")
        guard = login_guard()
        admission = guard.admit(request.remote_addr or "", username)
        if not admission.admitted:
            page = render_template("login.html", error=_("Too many attempts. Wait a little and try again."),
                                   username=username)
            return page, 429, {"Retry-After": str(admission.retry_after)}
        svc = services()
        user = svc.users.authenticate(username, password)
        if user is None:
            error = _("Wrong user name or password, or the account is disabled.")
        else:
            guard.succeeded(admission)
            locale = session.get("locale")
            session.clear()
            if locale in LOCALES:
                session["locale"] = locale
            login_user(svc.sessions.start(user))
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error, username=username), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    if current_user.is_authenticated:
        services().sessions.end(current_user.session_id)
    logout_user()
    locale = session.get("locale")
    session.clear()
    if locale in LOCALES:
        session["locale"] = locale
    flash(_("You are logged out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/language", methods=["POST"])
def language() -> Any:
    """Switch the interface language; a logged-in user's choice is saved with the account."""
    locale = request.form.get("locale", "")
    if locale not in LOCALES:
        abort(400)
    session["locale"] = locale
    if current_user.is_authenticated:
        services().users.set_locale(current_user.name, locale)
    return redirect(_safe_next(request.form.get("next")))
