from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from callscreen.numbers import normalize
from dashboard.api import bp as api_blueprint
from tests.dashboard.conftest import NUMBER, build, calling_time
from tests_support import all_keys

pytestmark = pytest.mark.also_cluster

CONSENT = {
    "number": "+7 999 123-45-67",
    "purposes": ["promotions"],
    "source": "web_form",
    "captured_at": "2026-03-01T13:00:00+03:00",
    "verified_at": "2026-03-01T13:05:00+03:00",
    "proof": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "form_text": "I agree to calls about offers.",
              "form_version": "signup-v3", "page_url": "https://clinic.example/signup"},
}


@pytest.fixture
def token(svc):
    return svc.tokens.add("crm")[1]


@pytest.fixture
def api(app, token):
    client = app.test_client()

    def call(method, path, body=None, **kwargs):
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(f"/api/v1{path}", method=method, json=body, headers=headers, **kwargs)

    return call


def screen(svc, at=None):
    return svc.screener.screen(NUMBER, "spring", at or calling_time(), origin="test")


def test_requests_without_a_valid_token_are_refused(app, svc, token):
    client = app.test_client()
    missing = client.post("/api/v1/opt-outs", json={"number": NUMBER})
    assert missing.status_code == 401 and missing.json["error"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.post("/api/v1/opt-outs", json={"number": NUMBER}, headers={"Authorization": "Bearer cst_nope"})
    assert wrong.status_code == 401
    svc.tokens.revoke(svc.tokens.list()[0].id)
    revoked = client.post("/api/v1/opt-outs", json={"number": NUMBER}, headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401
    assert not all_keys(svc.client, "cs:n:*:optouts")


def test_tokens_are_stored_only_as_hashes(svc, redis_client):
    _record, secret = svc.tokens.add("webform")
    dump = b"".join(redis_client.dump(k) or b"" for k in all_keys(redis_client, "*"))
    assert secret.encode() not in dump


def test_consent_with_proof_is_recorded_and_allows_the_call(api, svc, campaign):
    response = api("POST", "/consents", CONSENT)
    assert response.status_code == 201, response.json
    consent = svc.store.get_consent(response.json["id"])
    assert consent.proof.form_version == "signup-v3" and consent.proof.ip == "203.0.113.7"
    assert response.json["number_masked"] == "+7 999 ***-**-67"
    decision = screen(svc)
    assert decision.allowed and decision.basis.consent_id == consent.id


def test_consent_with_an_existing_id_is_a_conflict(api, campaign):
    assert api("POST", "/consents", {**CONSENT, "id": "crm-77"}).status_code == 201
    again = api("POST", "/consents", {**CONSENT, "id": "crm-77"})
    assert again.status_code == 409 and "crm-77" in again.json["message"]


def test_validation_reports_every_bad_field_at_once_and_writes_nothing(api, svc):
    body = {"number": "12", "purposes": "promotions!", "source": "telepathy", "captured_at": "yesterday",
            "basis": 7, "proof": {"ip": "999.1.1.1", "page_url": "javascript:alert(1)", "colour": "red"},
            "extra": True}
    response = api("POST", "/consents", body)
    assert response.status_code == 400
    fields = response.json["fields"]
    assert response.json["error"] == "validation_failed"
    assert set(fields) >= {"number", "purposes", "source", "captured_at", "basis", "proof.ip", "proof.page_url",
                           "proof.colour", "extra"}
    assert fields["extra"] == "unknown field" and fields["basis"] == "must be text"
    assert not all_keys(svc.client, "cs:n:*")


def test_consent_needs_evidence_and_a_zoned_time(api):
    body = {**CONSENT, "proof": {"ip": "203.0.113.7"}, "captured_at": "2026-03-01T13:00:00"}
    fields = api("POST", "/consents", body).json["fields"]
    assert "evidence" in fields["proof"]
    assert "UTC offset" in fields["captured_at"]
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = api("POST", "/consents", {**CONSENT, "captured_at": future})
    assert response.json["fields"]["captured_at"] == "is in the future"


def test_hostile_text_is_refused_cleanly(api, svc):
    control = api("POST", "/opt-outs", {"number": NUMBER, "note": "ok\r\nX-Injected: 1"})
    assert control.status_code == 400 and "control characters" in control.json["fields"]["note"]
    surrogate = api("POST", "/opt-outs", data='{"number": "+79991234567", "note": "\\ud800"}',
                    headers={"Content-Type": "application/json"})
    assert surrogate.status_code == 400 and "Unicode" in surrogate.json["fields"]["note"]
    long_number = api("POST", "/opt-outs", {"number": "1" * 5000})
    assert long_number.status_code == 400 and "at most 64" in long_number.json["fields"]["number"]
    unicode_ok = api("POST", "/opt-outs", {"number": NUMBER, "note": "Ёлка — «не звонить» 📵"})
    assert unicode_ok.status_code == 201
    assert svc.store.opt_outs_for(svc.vault.digest(NUMBER))[0].note == "Ёлка — «не звонить» 📵"


def test_malformed_bodies_get_clean_errors(api):
    def raw(data, content_type="application/json"):
        return api("POST", "/opt-outs", data=data, headers={"Content-Type": content_type})

    assert raw("{not json").json["error"] == "invalid_json"
    assert raw("[1, 2]").json["message"] == "body must be a JSON object"
    assert raw('{"number": NaN}').json["error"] == "invalid_json"
    assert raw("[" * 100_000 + "]" * 100_000).status_code == 400
    wrong_type = raw("number=1", "application/x-www-form-urlencoded")
    assert wrong_type.status_code == 415
    huge = raw(json.dumps({"number": NUMBER, "note": "x" * (2 * 1024 * 1024)}))
    assert huge.status_code == 413 and huge.json["error"] == "request_entity_too_large"


def test_withdrawal_by_purpose_and_by_consent_id(api, svc, campaign):
    first = api("POST", "/consents", CONSENT).json["id"]
    other = api("POST", "/consents", {**CONSENT, "purposes": ["reminders"]}).json["id"]
    response = api("POST", "/withdrawals", {"number": NUMBER, "purpose": "promotions", "how": "unsubscribe link"})
    assert response.status_code == 200 and response.json["withdrawn"] == [first]
    assert svc.store.get_consent(other).withdrawn_at is None
    after = calling_time(days_ago=-1)
    assert screen(svc, after).reason.value == "consent_withdrawn"
    by_id = api("POST", "/withdrawals", {"number": NUMBER, "consent_id": other, "how": "letter"})
    assert by_id.json["withdrawn"] == [other]
    wrong_number = api("POST", "/withdrawals", {"number": "+79990000000", "consent_id": other, "how": "x"})
    assert wrong_number.status_code == 404


def test_opt_out_and_objection_block_the_next_check(api, svc, campaign):
    api("POST", "/consents", CONSENT)
    assert api("POST", "/opt-outs", {"number": NUMBER, "campaign_id": "ghost"}).json["fields"]["campaign_id"] == \
        "unknown campaign"
    assert api("POST", "/opt-outs", {"number": NUMBER, "campaign_id": "spring", "source": "sms"}).status_code == 201
    assert screen(svc).reason.value == "opted_out"
    svc.store.remove_opt_out(normalize(NUMBER), "spring")
    assert api("POST", "/objections", {"number": NUMBER, "source": "email"}).status_code == 201
    assert screen(svc).reason.value == "objection"


def test_complaint_through_the_api_suppresses_at_once(api, svc, campaign):
    api("POST", "/consents", CONSENT)
    assert screen(svc).allowed
    response = api("POST", "/complaints", {"number": NUMBER, "call_at": calling_time(1).isoformat(),
                                           "said": "Called twice\nat dinner", "caller_name": "Олег"})
    assert response.status_code == 201 and response.json["suppressed"] is True
    assert screen(svc).reason.value == "complaint_suppressed"
    complaint = svc.complaints.get(response.json["id"])
    assert complaint.channel == "api" and complaint.filed_by == "api:crm" and complaint.caller_name == "Олег"


def test_decision_by_id_is_masked_and_unknown_ids_are_404(api, svc, campaign):
    api("POST", "/consents", CONSENT)
    decision = screen(svc)
    response = api("GET", f"/decisions/{decision.id}")
    assert response.status_code == 200
    body = response.json
    assert body["result"] == "ALLOW" and body["number_masked"] == "+7 999 ***-**-67"
    assert body["basis"]["consent_id"] and body["checks"][0]["name"]
    assert "1234567" not in response.get_data(as_text=True)
    assert api("GET", "/decisions/d-unknown").status_code == 404


def test_scrub_screens_a_batch_without_logging_attempts(api, svc, campaign, redis_client):
    api("POST", "/consents", CONSENT)
    numbers = [NUMBER, "+79997654321", "not-a-number"]
    response = api("POST", "/scrub", {"campaign_id": "spring", "numbers": numbers,
                                      "at": calling_time().isoformat()})
    assert response.status_code == 200, response.json
    results = response.json["results"]
    assert [r["number"] for r in results] == numbers
    assert [r["result"] for r in results] == ["ALLOW", "BLOCK", "BLOCK"]
    assert results[2]["reason"] == "invalid_number" and results[0]["basis"].startswith("consent:web_form")
    assert (response.json["allowed"], response.json["blocked"]) == (1, 2)
    assert redis_client.zcard(f"cs:n:{{{svc.vault.digest(NUMBER)}}}:attempts") == 0
    records, _ = svc.log.query(kind="decision")
    assert records == []
    summary = svc.log.get(response.json["summary_id"])
    assert summary.kind == "scrub" and summary.extra["numbers"] == 3 and summary.extra["client"] == "crm"


def test_scrub_refuses_oversized_or_malformed_batches(api, campaign):
    too_many = api("POST", "/scrub", {"campaign_id": "spring", "numbers": ["+79991234567"] * 1001})
    assert too_many.status_code == 400 and "1000" in too_many.json["fields"]["numbers"]
    wrong = api("POST", "/scrub", {"campaign_id": "ghost", "numbers": ["+79991234567", 5, None]})
    fields = wrong.json["fields"]
    assert fields["campaign_id"] == "unknown campaign"
    assert fields["numbers[1]"] == "must be text" and fields["numbers[2]"] == "must be text"
    assert api("POST", "/scrub", {"campaign_id": "spring", "numbers": []}).status_code == 400


def test_api_requests_are_rate_limited_per_token(settings, redis_client, svc):
    app = build(settings, redis_client, config={"CALLSCREEN_API_LIMIT": "3 per minute"})
    secret = svc.tokens.add("burst")[1]
    client = app.test_client()
    codes = [client.get("/api/v1/decisions/d-x", headers={"Authorization": f"Bearer {secret}"}).status_code
             for _ in range(4)]
    assert codes == [404, 404, 404, 429]


def test_unknown_api_paths_answer_json(api):
    response = api("GET", "/nothing-here")
    assert response.status_code == 404 and response.json["error"] == "not_found"
    assert api("GET", "/consents").status_code == 405


def test_openapi_document_is_served_and_matches_the_file(app):
    from pathlib import Path

    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    kept = Path(__file__).resolve().parents[2] / "dashboard" / "openapi.json"
    assert response.get_data() == kept.read_bytes()
    assert response.json["openapi"].startswith("3.1")


def test_every_api_route_is_in_the_openapi_document_and_nothing_else(app):
    document = app.test_client().get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(api_blueprint.name + "."):
            path = rule.rule.removeprefix("/api/v1").replace("<", "{").replace(">", "}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
