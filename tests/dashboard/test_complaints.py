from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from callscreen.complaints import ComplaintError, Status, near_call
from callscreen.numbers import normalize
from tests.dashboard.conftest import NUMBER, calling_time, post_form
from tests_support import all_keys

pytestmark = pytest.mark.also_cluster

MASKED = "+7 999 ***-**-67"
MOSCOW = ZoneInfo("Europe/Moscow")


def file(svc, call_at=None, **kwargs):
    return svc.complaints.file(normalize(NUMBER), call_at or calling_time(), kwargs.pop("channel", "phone"),
                               filed_by="supervisor", **kwargs)


def test_filing_suppresses_the_number_so_the_very_next_check_blocks(svc, campaign, consent):
    assert svc.screener.screen(NUMBER, "spring", calling_time(), origin="test").allowed
    complaint = file(svc)
    decision = svc.screener.screen(NUMBER, "spring", calling_time(), origin="test")
    assert (decision.result.value, decision.reason.value) == ("BLOCK", "complaint_suppressed")
    assert complaint.id in " ".join(c.detail for c in decision.checks)


def test_intake_form_files_a_complaint_and_the_next_check_is_blocked(as_role, svc, campaign, consent):
    client = as_role("supervisor")
    response = post_form(client, "/complaints/new", "/complaints/new", {
        "number": "8 999 123 45 67", "call_at": calling_time(1).astimezone(MOSCOW).strftime("%Y-%m-%dT%H:%M"),
        "caller_name": "Anna from the clinic", "said": "Offered a discount\r\non check-ups", "channel": "phone"})
    assert response.status_code == 302
    complaint = svc.complaints.open_complaints()[0]
    assert response.headers["Location"] == f"/complaints/{complaint.id}"
    assert complaint.said == "Offered a discount\non check-ups" and complaint.filed_by == "supervisor"
    decision = svc.screener.screen(NUMBER, "spring", calling_time(), origin="test")
    assert decision.reason.value == "complaint_suppressed"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "suppressed for every campaign" in html and MASKED in html and "1234567" not in html


def test_intake_form_rejects_bad_fields_and_suppresses_nothing(as_role, svc, campaign):
    client = as_role("supervisor")
    future = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = post_form(client, "/complaints/new", "/complaints/new", {
        "number": "not a number", "call_at": future, "caller_name": "x\r\nSet-Cookie: y", "channel": "pigeon"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    for field in ("number", "call_at", "caller_name", "channel"):
        assert f'id="err-{field}"' in html, field
    assert "not a number" in html  # what was typed is kept for correction
    assert svc.complaints.open_count() == 0
    assert not all_keys(svc.client, "cs:n:*:suppressions")


def test_matching_decisions_are_linked_and_the_consent_proof_answers_where_the_number_came_from(
        as_role, svc, campaign, consent):
    call = calling_time()
    allowed = svc.screener.screen(NUMBER, "spring", call - timedelta(minutes=3), origin="test")
    svc.screener.screen(NUMBER, "spring", call - timedelta(hours=30), origin="test")  # a day earlier: not linked
    complaint = file(svc, call_at=call)
    assert complaint.linked_decisions == (allowed.id,)
    assert complaint.campaign_id == "spring"
    html = as_role("supervisor").get(f"/complaints/{complaint.id}").get_data(as_text=True)
    section = html[html.index('id="provenance"'):]
    assert allowed.id in section
    assert "web form" in section and "I agree to calls about clinic offers." in section
    assert "https://clinic.example/signup" in section and "signup-v3" in section


def test_linking_prefers_placed_calls_nearest_the_reported_time():
    at = datetime(2026, 5, 1, 12, tzinfo=UTC)
    records = [
        {"id": "far-allow", "at": at - timedelta(hours=5), "result": "ALLOW"},
        {"id": "near-block", "at": at, "result": "BLOCK"},
        {"id": "near-allow", "at": at + timedelta(minutes=10), "result": "ALLOW"},
        {"id": "outside", "at": at - timedelta(hours=7), "result": "ALLOW"},
    ]
    assert [r["id"] for r in near_call(records, at)] == ["near-allow", "far-allow", "near-block"]


def test_status_moves_only_along_the_allowed_path(svc, campaign):
    complaint = file(svc)
    with pytest.raises(ComplaintError, match="cannot move"):
        svc.complaints.move(complaint.id, "resolved", "sup", note="done")
    svc.complaints.move(complaint.id, "investigating", "sup")
    with pytest.raises(ComplaintError, match="say how"):
        svc.complaints.move(complaint.id, "resolved", "sup")
    with pytest.raises(ComplaintError, match="regulator"):
        svc.complaints.move(complaint.id, "escalated", "sup")
    escalated = svc.complaints.move(complaint.id, "escalated", "sup", regulator="roskomnadzor", reference="RKN-1")
    assert escalated.regulator == "roskomnadzor" and escalated.open
    resolved = svc.complaints.move(complaint.id, "resolved", "comp", note="answered with the consent proof")
    assert resolved.status is Status.RESOLVED and not resolved.open
    assert [h.to_status for h in resolved.history] == ["new", "investigating", "escalated", "resolved"]
    assert svc.complaints.open_count() == 0
    with pytest.raises(ComplaintError):
        svc.complaints.move(complaint.id, "investigating", "sup")


def test_resolving_does_not_lift_the_suppression(svc, campaign):
    complaint = file(svc)
    svc.complaints.move(complaint.id, "investigating", "sup")
    svc.complaints.move(complaint.id, "resolved", "sup", note="apologised")
    assert svc.screener.screen(NUMBER, "spring", calling_time(), origin="test").reason.value == "complaint_suppressed"


def test_status_form_escalates_to_a_regulator(as_role, svc, campaign):
    complaint = file(svc)
    client = as_role("supervisor")
    page = f"/complaints/{complaint.id}"
    post_form(client, page, f"{page}/status", {"status": "investigating"})
    response = post_form(client, page, f"{page}/status", {"status": "escalated", "regulator": "ftc",
                                                          "reference": "FTC-42"})
    assert response.status_code == 302
    assert svc.complaints.get(complaint.id).regulator == "ftc"
    bad = post_form(client, page, f"{page}/status", {"status": "new"})
    assert bad.status_code == 400 and "cannot move" in bad.get_data(as_text=True)


def test_compliance_lifts_a_suppression_with_a_journaled_reason(as_role, svc, campaign, consent):
    complaint = file(svc)
    client = as_role("compliance")
    page = f"/complaints/{complaint.id}"
    response = post_form(client, page, f"{page}/lift", {"reason": "caller confirmed the wrong number"})
    assert response.status_code == 302
    assert not svc.complaints.suppression_active(complaint)
    assert svc.journal.recent(1)[0].action == "suppression_lifted"
    assert svc.screener.screen(NUMBER, "spring", calling_time(), origin="test").allowed


def test_supervisor_cannot_lift_a_suppression_or_export_a_dossier(as_role, svc, campaign):
    complaint = file(svc)
    client = as_role("supervisor")
    page = f"/complaints/{complaint.id}"
    assert post_form(client, page, f"{page}/lift", {"reason": "because"}).status_code == 403
    assert post_form(client, page, f"{page}/dossier", {"format": "json"}).status_code == 403
    assert svc.complaints.suppression_active(complaint)


def test_dossier_export_as_json_and_printable_page_is_journaled(as_role, svc, campaign, consent):
    call = calling_time()
    svc.screener.screen(NUMBER, "spring", call, origin="test")
    complaint = file(svc, call_at=call, caller_name="Anna", said="Discount on check-ups")
    client = as_role("compliance")
    page = f"/complaints/{complaint.id}"
    response = post_form(client, page, f"{page}/dossier", {"format": "json"})
    assert response.headers["Content-Disposition"].startswith("attachment")
    data = json.loads(response.get_data(as_text=True))
    assert data["complaint"]["id"] == complaint.id and data["number_masked"] == MASKED
    assert data["provenance"][0]["consent"]["proof"]["ip"] == "203.0.113.7"
    assert data["suppression_active"] is True
    assert "number_sealed" not in json.dumps(data) and NUMBER not in json.dumps(data)
    printable = post_form(client, page, f"{page}/dossier", {"format": "html"}).get_data(as_text=True)
    assert "Complaint dossier" in printable and "Discount on check-ups" in printable
    assert [e.action for e in svc.journal.recent(5)] == ["dossier_export", "dossier_export"]


def test_complaint_list_filters_by_status(as_role, svc, campaign):
    first = file(svc)
    file(svc)
    svc.complaints.move(first.id, "investigating", "sup")
    client = as_role("supervisor")
    html = client.get("/complaints?status=investigating").get_data(as_text=True)
    rows = html[html.index("<tbody>"):html.index("</tbody>")]
    assert rows.count("<tr>") == 1 and first.id in rows
    assert client.get("/complaints/cmp-nope").status_code == 404


def test_hostile_text_in_a_complaint_is_shown_escaped(as_role, svc, campaign):
    complaint = file(svc, caller_name='<img src=x onerror="alert(1)">', said="<script>alert('x')</script>")
    html = as_role("supervisor").get(f"/complaints/{complaint.id}").get_data(as_text=True)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
