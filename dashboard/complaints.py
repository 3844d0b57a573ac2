"""Complaint pages: intake (suppresses the number at once), the list, the case page that
answers "where did you get my number", status changes and the dossier export."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from callscreen.complaints import CHANNELS, REGULATORS, TRANSITIONS, Complaint, ComplaintError, Status
from dashboard.auth import require
from dashboard.formatting import local_zone
from dashboard.services import services
from dashboard.validation import Fields

bp = Blueprint("complaints", __name__)
INTAKE_FIELDS = ("call_at", "number", "caller_name", "said", "channel")


def _complaint_or_404(complaint_id: str) -> Complaint:
    complaint = services().complaints.get(complaint_id) if len(complaint_id) <= 64 else None
    if complaint is None:
        abort(404)
    return complaint


@bp.route("/complaints")
@require("complaints")
def index() -> Any:
    fields = Fields(request.args)
    status = fields.choice("status", [s.value for s in Status])
    book = services().complaints
    complaints = book.recent(limit=100, status=Status(status) if status else None)
    return render_template("complaints.html", complaints=complaints, status=status,
                           statuses=[s.value for s in Status], open_count=book.open_count())


@bp.route("/complaints/new", methods=["GET", "POST"])
@require("complaints")
def new() -> Any:
    svc = services()
    fields = Fields(request.form)
    values = {"call_at": datetime.now(local_zone()).strftime("%Y-%m-%dT%H:%M"), "channel": "phone"}
    if request.method == "POST":
        values = {name: request.form.get(name, "")[:2000] for name in INTAKE_FIELDS}
        call_at = fields.when("call_at", required=True, local_zone=svc.settings.default_timezone,
                              not_future=True)
        number = fields.number("number", svc.settings.default_region)
        caller_name = fields.text("caller_name", max_len=200)
        said = fields.text("said", max_len=5000, multiline=True)
        channel = fields.choice("channel", CHANNELS, required=True)
        if not fields.errors and number is not None and call_at is not None:
            try:
                complaint = svc.complaints.file(number, call_at, channel, caller_name=caller_name, said=said,
                                                filed_by=current_user.name)
            except ComplaintError as exc:
                fields.fail("channel", str(exc))
            else:
                flash(_("Complaint filed. The number is suppressed for every campaign from now on."), "success")
                return redirect(url_for("complaints.show", complaint_id=complaint.id))
    return render_template("complaint_new.html", errors=fields.errors, values=values, channels=CHANNELS,
                           zone=svc.settings.default_timezone), (400 if fields.errors else 200)


@bp.route("/complaints/<complaint_id>")
@require("complaints")
def show(complaint_id: str) -> Any:
    complaint = _complaint_or_404(complaint_id)
    return _case_page(complaint)


def _case_page(complaint: Complaint, errors: dict[str, str] | None = None, status: int = 200) -> Any:
    book = services().complaints
    return render_template(
        "complaint.html", complaint=complaint, errors=errors or {},
        provenance=book.provenance(complaint),
        consents=services().store.consents_for(complaint.number_digest),
        suppressed=book.suppression_active(complaint),
        transitions=[s.value for s in Status if s in TRANSITIONS[complaint.status]],
        regulators=REGULATORS, zone=local_zone(),
    ), status


@bp.route("/complaints/<complaint_id>/status", methods=["POST"])
@require("complaints")
def move(complaint_id: str) -> Any:
    complaint = _complaint_or_404(complaint_id)
    fields = Fields(request.form)
    target = fields.choice("status", [s.value for s in Status], required=True)
    note = fields.text("note", max_len=2000, multiline=True)
    regulator = fields.choice("regulator", REGULATORS)
    reference = fields.text("reference", max_len=200)
    if not fields.errors:
        try:
            services().complaints.move(complaint.id, target, current_user.name, note=note,
                                       regulator=regulator, reference=reference)
        except ComplaintError as exc:
            fields.fail("status", str(exc))
    if fields.errors:
        return _case_page(complaint, fields.errors, 400)
    flash(_("Status changed."), "success")
    return redirect(url_for("complaints.show", complaint_id=complaint.id))


@bp.route("/complaints/<complaint_id>/relink", methods=["POST"])
@require("complaints")
def relink(complaint_id: str) -> Any:
    complaint = _complaint_or_404(complaint_id)
    services().complaints.relink(complaint.id)
    return redirect(url_for("complaints.show", complaint_id=complaint.id))


@bp.route("/complaints/<complaint_id>/lift", methods=["POST"])
@require("lift_suppression")
def lift(complaint_id: str) -> Any:
    complaint = _complaint_or_404(complaint_id)
    fields = Fields(request.form)
    reason = fields.text("reason", required=True, max_len=500)
    if fields.errors:
        return _case_page(complaint, {"lift_reason": fields.errors["reason"]}, 400)
    svc = services()
    svc.journal.record(user=current_user.name, role=current_user.role, action="suppression_lifted",
                       number_digest=complaint.number_digest, reason=reason, subject=complaint.id)
    svc.complaints.lift_suppression(complaint.id, current_user.name, reason)
    flash(_("Suppression lifted. The number may be called again if another basis allows it."), "warning")
    return redirect(url_for("complaints.show", complaint_id=complaint.id))


@bp.route("/complaints/<complaint_id>/dossier", methods=["POST"])
@require("export")
def dossier(complaint_id: str) -> Any:
    """The dossier as JSON (download) or a printable page; journaled before it is produced."""
    complaint = _complaint_or_404(complaint_id)
    fields = Fields(request.form)
    kind = fields.choice("format", ("json", "html"), default="html")
    svc = services()
    svc.journal.record(user=current_user.name, role=current_user.role, action="dossier_export",
                       number_digest=complaint.number_digest, reason=f"complaint dossier ({kind})",
                       subject=complaint.id)
    data = svc.complaints.dossier(complaint.id)
    if kind == "json":
        body = json.dumps(data, ensure_ascii=False, indent=2)
        return Response(body, mimetype="application/json", headers={
            "Content-Disposition": f'attachment; filename="dossier-{complaint.id}.json"'})
    return render_template("dossier.html", complaint=complaint, data=data,
                           provenance=svc.complaints.provenance(complaint),
                           consents=svc.store.consents_for(complaint.number_digest))
