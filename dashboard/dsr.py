"""Data subject requests: the access export, and erasure requests tracked to their deadline.

Access: everything held about a number (``callscreen.records``) as a JSON download, journaled
before it is produced.

Erasure: the request is recorded with its reference and a 30-day deadline (journaled); the page
lists open requests soonest deadline first, overdue ones marked. Carrying one out (a second,
confirmed step, after the requester's identity is checked) runs :class:`callscreen.erasure.Eraser`:
the number's personal data becomes unreadable everywhere, a keyed suppression keeps it from ever
being called again, and the request is closed with the erasure's id.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from callscreen.dsr import RequestBook
from callscreen.erasure import Eraser, ErasureError
from callscreen.records import gather
from dashboard.auth import require
from dashboard.services import services
from dashboard.validation import Fields

bp = Blueprint("dsr", __name__)
KINDS = ("access", "erasure")


def _page(errors: dict[str, str] | None = None, status: int = 200) -> Any:
    svc = services()
    book = RequestBook(svc.client)
    return render_template("dsr.html", errors=errors or {}, requests=book.open_requests(),
                           closed=[r for r in book.recent(50) if not r.open], now=datetime.now(UTC),
                           journal=svc.journal.recent(50)), status


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
                held = gather(svc.store, svc.complaints, svc.log, digest, decisions=10_000)
                data = {"number": number.e164, **held.to_dict()}
                stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
                return Response(json.dumps(data, ensure_ascii=False, indent=2), mimetype="application/json",
                                headers={"Content-Disposition": f'attachment; filename="access-{stamp}.json"'})
            svc.journal.record(user=current_user.name, role=current_user.role, action="erasure_request",
                               number_digest=digest, reason=reference)
            received = RequestBook(svc.client).receive(digest, reference, current_user.name)
            flash(_("Erasure request recorded; due by %(day)s.", day=received.due_at.date().isoformat()), "info")
            return redirect(url_for("dsr.index"))
    return _page(fields.errors, 400 if fields.errors else 200)


@bp.route("/dsr/<request_id>/erase", methods=["POST"])
@require("dsr")
def erase(request_id: str) -> Any:
    """Carry out an erasure request (the form must confirm it)."""
    svc = services()
    book = RequestBook(svc.client)
    subject_request = book.get(request_id)
    if subject_request is None or not subject_request.open:
        abort(404)
    if request.form.get("confirm") != "yes":
        return _page({"confirm": _("Tick the box to confirm the erasure.")}, 400)
    eraser = Eraser(svc.store, svc.log, svc.journal, svc.complaints)
    try:
        report = eraser.erase_digest(subject_request.number_digest, reason=subject_request.reference,
                                     by=current_user.name, role=current_user.role, request_id=request_id)
    except ErasureError as exc:
        return _page({"confirm": str(exc)}, 409)
    flash(_("Erased (%(id)s). The number will never be called again.", id=report.erasure_id), "success")
    return redirect(url_for("dsr.index"))
