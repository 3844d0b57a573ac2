"""Number lookup by keyed hash, the decision detail page, and the journaled reveal.

The number typed in is sent by POST (never in a URL, so it stays out of access logs and
browser history) and turned into its digest; pages after that are addressed by digest.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from callscreen.crypto import SealError
from callscreen.records import DIGEST, gather, with_current_ids
from dashboard.auth import require
from dashboard.services import services
from dashboard.validation import Fields

bp = Blueprint("lookup", __name__)
MIN_REASON = 10


def digest_of_form(fields: Fields, name: str = "number") -> str | None:
    number = fields.number(name, services().settings.default_region)
    return None if number is None else services().vault.digest(number.e164)


@bp.route("/lookup", methods=["GET", "POST"])
@require("view")
def index() -> Any:
    fields = Fields(request.form)
    if request.method == "POST":
        digest = digest_of_form(fields)
        if digest is not None:
            return redirect(url_for("lookup.number", digest=digest))
    return render_template("lookup.html", errors=fields.errors), (400 if fields.errors else 200)


def _number_page(digest: str, revealed: str | None = None, errors: dict[str, str] | None = None,
                 status: int = 200) -> Any:
    if not DIGEST.match(digest):
        abort(404)
    svc = services()
    record = gather(svc.store, svc.complaints, svc.log, digest)
    return render_template("number.html", file=record, revealed=revealed, errors=errors or {},
                           journal=svc.journal.recent(20, digest) if current_user.can("reveal") else []), status


@bp.route("/numbers/<digest>")
@require("view")
def number(digest: str) -> Any:
    return _number_page(digest)


@bp.route("/numbers/<digest>/reveal", methods=["POST"])
@require("reveal")
def reveal(digest: str) -> Any:
    """Show the full number once, after journaling who asked and why."""
    if not DIGEST.match(digest):
        abort(404)
    fields = Fields(request.form)
    reason = fields.text("reason", required=True, max_len=500)
    if reason and len(reason) < MIN_REASON:
        fields.fail("reason", _("Say why, in at least %(n)d characters.", n=MIN_REASON))
    if fields.errors:
        return _number_page(digest, errors=fields.errors, status=400)
    svc = services()
    try:
        sealed_ok = svc.store.reveal(digest) is not None
    except SealError:
        sealed_ok = False
    if not sealed_ok:
        return _number_page(digest, errors={"reason": _("No sealed copy of this number is kept.")}, status=404)
    svc.journal.record(user=current_user.name, role=current_user.role, action="reveal",
                       number_digest=digest, reason=reason)
    return _number_page(digest, revealed=svc.store.reveal(digest))


@bp.route("/decisions/<decision_id>")
@require("view")
def decision(decision_id: str) -> Any:
    if len(decision_id) > 64:
        abort(404)
    svc = services()
    record = svc.log.get(decision_id)
    if record is None or record.kind != "decision":
        abort(404)
    return render_template("decision.html", record=with_current_ids(svc.store, record),
                           outcome=svc.log.outcome_of(decision_id))
