"""Data subject requests: the access export, and recording an erasure request.

Access: everything held about a number (``dashboard.records``) as a JSON download,
journaled before it is produced.

Erasure is recorded (journaled, listed here) but not carried out by the dashboard: the
decision log keeps a sealed copy of the number in HMAC-chained records under one shared
encryption key, so no single number's copies can be crypto-shredded without per-number keys,
and deleting the consent, opt-out or suppression records would let the number be called
again. See ``docs/dashboard.md`` ("Erasure").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from dashboard.auth import require
from dashboard.records import gather
from dashboard.services import services
from dashboard.validation import Fields

bp = Blueprint("dsr", __name__)
KINDS = ("access", "erasure")


@bp.route("/dsr", methods=["GET", "POST"])
@require("dsr")
def index() -> Any:
    svc = services()
    fields = Fields(request.form)
    if request.method == "POST":
        number = fields.number("number", svc.settings.default_region)
        kind = fields.choice("kind", KINDS, required=True)
        reference = fields.text("reference", required=True, max_len=200)
        if not fields.errors and number is not None:
            digest = svc.vault.digest(number.e164)
            if kind == "access":
                svc.journal.record(user=current_user.name, role=current_user.role, action="access_export",
                                   number_digest=digest, reason=reference)
                data = {"number": number.e164, **gather(svc, digest, decisions=10_000).to_dict()}
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                return Response(json.dumps(data, ensure_ascii=False, indent=2), mimetype="application/json",
                                headers={"Content-Disposition": f'attachment; filename="access-{stamp}.json"'})
            svc.journal.record(user=current_user.name, role=current_user.role, action="erasure_request",
                               number_digest=digest, reason=reference)
            flash(_("Erasure request recorded in the access journal."), "info")
            return redirect(url_for("dsr.index"))
    erasures = [e for e in svc.journal.recent(200) if e.action == "erasure_request"]
    return render_template("dsr.html", errors=fields.errors, erasures=erasures,
                           journal=svc.journal.recent(50)), (400 if fields.errors else 200)
