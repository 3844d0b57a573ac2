"""Administration: dashboard accounts, campaigns and intake-API tokens (role ``admin``), and the
access journal (admins and compliance officers)."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from callscreen.journal import ACTIONS
from callscreen.models import Campaign
from dashboard.auth import require
from dashboard.services import services
from dashboard.tokens import TokenError
from dashboard.users import LOCALES, ROLES, UserError
from dashboard.validation import Fields

bp = Blueprint("admin", __name__, url_prefix="/admin")
_PURPOSE = re.compile(r"^[a-z0-9_]{1,64}$")


def _users_page(errors: dict[str, str] | None = None, new_token: str = "", status: int = 200) -> Any:
    svc = services()
    return render_template("admin_users.html", users=svc.users.all(), roles=ROLES, locales=LOCALES,
                           tokens=svc.tokens.list(), errors=errors or {}, new_token=new_token), status


@bp.route("/users")
@require("users")
def users() -> Any:
    return _users_page()


@bp.route("/users", methods=["POST"])
@require("users")
def add_user() -> Any:
    fields = Fields(request.form)
    name = fields.text("name", required=True, max_len=64).lower()
    role = fields.choice("role", ROLES, required=True)
    password = request.form.get("password", "")
    if not fields.errors:
        try:
            services().users.add(name, password, role)
        except UserError as exc:
            fields.fail("name", str(exc))
    if fields.errors:
        return _users_page(fields.errors, status=400)
    flash(_("User %(name)s added.", name=name), "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<name>", methods=["POST"])
@require("users")
def change_user(name: str) -> Any:
    """Change role, disable/enable or set a new password for one account."""
    store = services().users
    fields = Fields(request.form)
    action = fields.choice("action", ("role", "disable", "enable", "password"), required=True)
    try:
        if fields.errors:
            pass
        elif action == "role":
            store.set_role(name, fields.choice("role", ROLES, required=True))
        elif action in ("disable", "enable"):
            if name == current_user.name and action == "disable":
                raise UserError(_("You cannot disable your own account."))
            store.set_disabled(name, action == "disable")
        else:
            store.set_password(name, request.form.get("password", ""))
    except UserError as exc:
        fields.fail("user", str(exc))
    if fields.errors:
        return _users_page(fields.errors, status=400)
    flash(_("Account %(name)s updated.", name=name), "success")
    return redirect(url_for("admin.users"))


@bp.route("/tokens", methods=["POST"])
@require("users")
def add_token() -> Any:
    fields = Fields(request.form)
    client = fields.token("client", required=True)
    if not fields.errors:
        try:
            _record, secret = services().tokens.add(client)
        except TokenError as exc:
            fields.fail("client", str(exc))
        else:
            return _users_page(new_token=secret)
    return _users_page(fields.errors, status=400)


@bp.route("/tokens/<token_id>/revoke", methods=["POST"])
@require("users")
def revoke_token(token_id: str) -> Any:
    try:
        services().tokens.revoke(token_id)
    except TokenError as exc:
        return _users_page({"token": str(exc)}, status=404)
    flash(_("Token revoked."), "success")
    return redirect(url_for("admin.users"))


@bp.route("/journal")
@require("journal")
def journal() -> Any:
    """The access journal, newest first, with the result of checking its HMAC chain."""
    svc = services()
    fields = Fields(request.args)
    action = fields.choice("action", ACTIONS)
    return render_template("admin_journal.html", entries=svc.journal.recent(500, action=action or None),
                           actions=ACTIONS, action=action, report=svc.journal.verify(),
                           total=svc.journal.count())


@bp.route("/campaigns", methods=["GET", "POST"])
@require("campaigns")
def campaigns() -> Any:
    svc = services()
    jurisdictions = svc.screener.policies.jurisdictions()
    fields = Fields(request.form)
    if request.method == "POST":
        campaign_id = fields.token("id", required=True)
        purpose = fields.text("purpose", required=True, max_len=64)
        if purpose and not _PURPOSE.match(purpose):
            fields.fail("purpose", _("lower-case letters, digits and '_' only"))
        jurisdiction = fields.choice("jurisdiction", jurisdictions, required=True)
        region = fields.text("default_region", required=True, max_len=2).upper()
        if region and not re.match(r"^[A-Z]{2}$", region):
            fields.fail("default_region", _("a two-letter country code"))
        zone = fields.text("timezone", required=True, max_len=64)
        try:
            if zone:
                ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            fields.fail("timezone", _("not a time zone name (e.g. Europe/Moscow)"))
        name = fields.text("name", max_len=200)
        if not fields.errors:
            existing = svc.store.get_campaign(campaign_id)
            svc.store.put_campaign(Campaign(
                id=campaign_id, purpose=purpose, jurisdiction=jurisdiction, default_region=region,
                timezone=zone, advertising=fields.boolean("advertising"),
                automatic_dialing=fields.boolean("automatic_dialing"), name=name,
                created_at=existing.created_at if existing else None,
            ))
            flash(_("Campaign %(id)s saved.", id=campaign_id), "success")
            return redirect(url_for("admin.campaigns"))
    return render_template("admin_campaigns.html", campaigns=svc.store.list_campaigns(),
                           jurisdictions=jurisdictions, errors=fields.errors,
                           values=request.form), (400 if fields.errors else 200)
