"""Blocked attempts: filter by campaign, reason and time range; newest first; paginated by cursor.

Without a start date the page covers the last :data:`DEFAULT_DAYS` days.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from flask import Blueprint, current_app, render_template, request

from callscreen.models import Reason
from dashboard.auth import require
from dashboard.formatting import local_zone
from dashboard.services import services
from dashboard.validation import Fields

bp = Blueprint("blocked", __name__)
DEFAULT_DAYS = 30
BLOCK_REASONS = tuple(r.value for r in Reason if r.value not in
                      ("consent", "existing_relationship", "legitimate_interest"))


def _day(fields: Fields, name: str) -> date | None:
    text = fields.text(name, max_len=10)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fields.fail(name, "not a date (YYYY-MM-DD)")
        return None


@bp.route("/blocked")
@require("view")
def index() -> Any:
    svc = services()
    fields = Fields(request.args)
    campaign = fields.token("campaign")
    reason = fields.choice("reason", BLOCK_REASONS)
    first, last = _day(fields, "from"), _day(fields, "to")
    cursor = fields.text("cursor", max_len=40)
    if cursor and not all(c.isdigit() or c == "-" for c in cursor):
        fields.fail("cursor", "not a page cursor")
        cursor = ""
    zone = local_zone()
    if first is None:  # bound the scan: rare reasons would otherwise walk the whole log
        first = datetime.now(zone).date() - timedelta(days=DEFAULT_DAYS - 1)
    start = datetime.combine(first, time(0), zone) if first else None
    end = datetime.combine(last + timedelta(days=1), time(0), zone) - timedelta(milliseconds=1) if last else None
    records, next_cursor = svc.log.query(
        start=start, end=end, campaign=campaign or None, result="BLOCK", reason=reason or None,
        limit=int(current_app.config["CALLSCREEN_PAGE_SIZE"]), cursor=cursor or None,
    )
    filters = {k: v for k, v in (("campaign", campaign), ("reason", reason),
                                 ("from", first.isoformat() if first else ""),
                                 ("to", last.isoformat() if last else "")) if v}
    return render_template(
        "blocked.html", records=records, next_cursor=next_cursor, filters=filters, errors=fields.errors,
        campaigns=svc.store.list_campaigns(), reasons=BLOCK_REASONS, first_page=not cursor,
    ), (400 if fields.errors else 200)
