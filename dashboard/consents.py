"""Consents: look one up (by number or by consent id) with its proof, and withdraw it.

Withdrawing keeps the record, marked with when and how, as evidence; the next screening
for that purpose blocks with ``consent_withdrawn``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from callscreen.records import DIGEST
from dashboard.auth import require
from dashboard.lookup import digest_of_form
from dashboard.services import services
from dashboard.validation import Fields

bp = Blueprint("consents", __name__)


@bp.route("/consents", methods=["GET", "POST"])
@require("view")
def index() -> Any:
    fields = Fields(request.form)
    if request.method == "POST":
        consent_id = fields.token("consent_id")
        if consent_id:
            if services().store.get_consent(consent_id) is None:
                fields.fail("consent_id", _("No consent with this id."))
            else:
                return redirect(url_for("consents.show", consent_id=consent_id))
        elif request.form.get("number"):
            digest = digest_of_form(fields)
            if digest is not None:
                return redirect(url_for("consents.for_number", digest=digest))
        else:
            fields.fail("number", _("Enter a number or a consent id."))
    return render_template("consents.html", errors=fields.errors), (400 if fields.errors else 200)


@bp.route("/consents/number/<digest>")
@require("view")
def for_number(digest: str) -> Any:
    if not DIGEST.match(digest):
        abort(404)
    return render_template("consent_list.html", digest=digest,
                           consents=services().store.consents_for(digest))


@bp.route("/consents/<consent_id>")
@require("view")
def show(consent_id: str) -> Any:
    consent = services().store.get_consent(consent_id) if len(consent_id) <= 64 else None
    if consent is None:
        abort(404)
    return render_template("consent.html", consent=consent, errors={})


@bp.route("/consents/<consent_id>/withdraw", methods=["POST"])
@require("complaints")
def withdraw(consent_id: str) -> Any:
    store = services().store
    consent = store.get_consent(consent_id) if len(consent_id) <= 64 else None
    if consent is None:
        abort(404)
    fields = Fields(request.form)
    how = fields.text("how", required=True, max_len=200)
    if fields.errors:
        return render_template("consent.html", consent=consent, errors=fields.errors), 400
    store.withdraw_consent(consent_id, f"{how} (by {current_user.name})")
    flash(_("Consent withdrawn."), "success")
    return redirect(url_for("consents.show", consent_id=consent_id))
