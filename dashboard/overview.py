"""The morning page: today's decisions, blocks by reason, 30 days of history, open complaints
and how fresh the do-not-call registries are."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template
from flask_babel import gettext as _

from dashboard import charts, stats
from dashboard.auth import require
from dashboard.services import services

bp = Blueprint("overview", __name__)


def registry_rows() -> list[Any] | None:
    """Registry freshness from the registries package; None when none is configured."""
    hook = services().registry_status
    return None if hook is None else hook()


@bp.route("/")
@require("view")
def index() -> Any:
    svc = services()
    days = stats.daily(svc.log, svc.client, svc.settings.default_timezone, days=30)
    today = days[-1]
    chart = charts.daily_bars(days, title=_("Decisions and blocks per day, last 30 days"),
                              decisions_label=_("decisions"), blocks_label=_("blocked"))
    return render_template(
        "overview.html",
        today=today,
        days=days,
        chart=chart,
        open_complaints=svc.complaints.open_complaints()[:10],
        open_count=svc.complaints.open_count(),
        registries=registry_rows(),
        now=datetime.now(UTC),
        zone=svc.settings.default_timezone,
    )
