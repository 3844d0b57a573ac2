"""No unkeyed hash of a number anywhere; the erasure request carried out from the dashboard;
the append-only access journal, viewable by admins."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from privacy_support import hash_hits, keyspace_text, plain_hashes, spellings

from callscreen.consent_import import legacy_derived_id, parse_row
from callscreen.dsr import RequestBook
from callscreen.erasure import MIGRATED_KEY
from callscreen.journal import JOURNAL_KEY
from callscreen.numbers import normalize
from tests.dashboard.conftest import NUMBER, calling_time, post_form

pytestmark = pytest.mark.also_cluster

GB_NUMBER = "+442079460123"
CAPTURED = "2026-03-01T10:00:00Z"


def test_no_plain_hash_of_a_number_is_in_the_keyspace_api_pages_or_logs(as_role, svc, campaign, app,
                                                                         redis_client, caplog):
    caplog.set_level(logging.DEBUG)
    now = datetime.now(UTC)
    ids = []
    for number, source in ((NUMBER, "crm_import"), (GB_NUMBER, "web_form")):  # as `consent import` does
        row = parse_row({"number": number, "purposes": "promotions;reminders", "source": source,
                         "captured_at": CAPTURED, "form_text": "Yes", "ip": "203.0.113.5"}, "RU", now, svc.vault)
        ids.append(svc.store.add_consent(row.number, row.consent, row.contact).id)
    decisions = [svc.screener.screen(NUMBER, "spring", calling_time(), origin="test"),
                 svc.screener.screen("+79990000000", "spring", calling_time(), origin="test")]
    complaint = svc.complaints.file(normalize(GB_NUMBER), calling_time(), "phone", caller_name="J. Smith",
                                    said="called twice", filed_by="desk")
    token = svc.tokens.add("crm")[1]
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    responses = [api.get(f"/api/v1/decisions/{d.id}", headers=headers).get_data(as_text=True) for d in decisions]
    responses.append(api.post("/api/v1/consents", headers=headers, json={
        "number": "+79995550011", "purposes": ["promotions"], "source": "api", "captured_at": CAPTURED,
        "proof": {"form_version": "v1"}}).get_data(as_text=True))
    supervisor, compliance, admin = as_role("supervisor"), as_role("compliance"), as_role("admin")
    digests = [svc.vault.digest(n) for n in (NUMBER, GB_NUMBER)]
    pages = ["/", "/blocked", f"/complaints/{complaint.id}", "/complaints", *[f"/numbers/{d}" for d in digests],
             *[f"/decisions/{d.id}" for d in decisions], *[f"/consents/{i}" for i in ids]]
    html = [client.get(page).get_data(as_text=True) for client in (supervisor, compliance) for page in pages]
    html += [compliance.get("/dsr").get_data(as_text=True), admin.get("/admin/journal").get_data(as_text=True)]
    logs = "\n".join(r.getMessage() for r in caplog.records)
    shown = ["promotions", "reminders", "promotions,reminders", "promotions;reminders", "crm_import", "web_form",
             "consent", CAPTURED, "2026-03-01T10:00:00+00:00", "2026-03-01", "spring"]
    haystacks = {"keyspace": keyspace_text(redis_client), "api": "\n".join(responses), "html": "\n".join(html),
                 "logs": logs}
    assert ids[0] in haystacks["html"] and ids[0].startswith("c-")  # the search does look where ids are shown
    for number in (NUMBER, GB_NUMBER):
        hashes = plain_hashes(number, shown)
        old_style = legacy_derived_id(normalize(number), ("promotions", "reminders"), "crm_import",
                                      datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
        assert hash_hits(hashes, old_style), "the unkeyed ids of earlier versions would be found"
        for where, text in haystacks.items():
            assert hash_hits(hashes, text) == [], f"a plain hash of {number} in the {where}"
            if where != "html":  # the compliance officer's pages may show the number masked only
                assert [s for s in spellings(number) if s in text] == [], f"{number} in the {where}"


def test_an_erasure_request_is_tracked_to_its_deadline_and_carried_out_on_confirmation(
        as_role, svc, campaign, consent, redis_client):
    redis_client.set(MIGRATED_KEY, "1")
    assert svc.screener.screen(NUMBER, "spring", calling_time(), origin="test").allowed
    client = as_role("compliance")
    response = post_form(client, "/dsr", "/dsr", {"number": NUMBER, "kind": "erasure", "reference": "ticket 77"})
    assert response.status_code == 302
    request = RequestBook(redis_client).open_requests()[0]
    page = client.get("/dsr").get_data(as_text=True)
    assert ("ticket 77" in page and "29 days left" in page) or "30 days left" in page
    unconfirmed = post_form(client, "/dsr", f"/dsr/{request.id}/erase", {})
    assert unconfirmed.status_code == 400 and svc.store.reveal(request.number_digest) == NUMBER
    done = post_form(client, "/dsr", f"/dsr/{request.id}/erase", {"confirm": "yes"})
    assert done.status_code == 302
    assert svc.store.reveal(request.number_digest) is None
    assert svc.screener.screen(NUMBER, "spring", calling_time(), origin="test").reason.value == "erased_subject"
    assert RequestBook(redis_client).open_requests() == []
    assert [e.action for e in svc.journal.recent(2)] == ["erasure", "erasure_request"]
    assert svc.log.verify().ok
    number_page = client.get(f"/numbers/{request.number_digest}").get_data(as_text=True)
    assert 'id="erased"' in number_page and NUMBER not in number_page and "203.0.113.7" not in number_page
    assert as_role("supervisor").post(f"/dsr/{request.id}/erase").status_code in (400, 403)


def test_the_journal_is_for_admins_and_compliance_and_shows_tampering(as_role, svc, consent, redis_client):
    svc.journal.record(user="compliance", role="compliance", action="reveal",
                       number_digest=svc.vault.digest(NUMBER), reason="asked by the complainant")
    svc.journal.record(user="cli", role="cli", action="log_export", number_digest="", reason="archive")
    assert as_role("supervisor").get("/admin/journal").status_code == 403
    page = as_role("admin").get("/admin/journal").get_data(as_text=True)
    assert "asked by the complainant" in page and "chain is intact" in page and NUMBER not in page
    first = redis_client.xrange(JOURNAL_KEY)[0][0]
    redis_client.xdel(JOURNAL_KEY, first)  # someone with store access removes an entry
    assert not svc.journal.verify().ok
    assert "tampered" in as_role("compliance").get("/admin/journal").get_data(as_text=True)


def test_after_migration_a_decision_shows_the_consent_id_it_goes_by_now(app, svc, campaign, redis_client):
    from callscreen import codec
    from callscreen.migrate import Migration
    from callscreen.models import Consent, LegalBasis
    from callscreen.store import consent_pointer_key, number_key

    captured = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    digest = svc.vault.digest(NUMBER)
    old_id = legacy_derived_id(normalize(NUMBER), ("promotions",), "sms_double_opt_in", captured)
    legacy = Consent(old_id, digest, ("promotions",), LegalBasis.CONSENT, "sms_double_opt_in", captured,
                     number_sealed=svc.vault.seal(NUMBER), verified_at=captured)
    redis_client.hset(number_key(digest, "consents"), old_id, codec.dumps(legacy))
    redis_client.set(consent_pointer_key(old_id), digest)
    decision = svc.screener.screen(NUMBER, "spring", calling_time(), origin="test")
    assert decision.allowed and decision.basis.consent_id == old_id
    Migration(svc.store, svc.journal, svc.complaints).run()
    token = svc.tokens.add("crm")[1]
    body = app.test_client().get(f"/api/v1/decisions/{decision.id}",
                                 headers={"Authorization": f"Bearer {token}"}).get_json()
    new_id = svc.store.get_consent(old_id).id
    assert body["basis"]["consent_id"] == new_id != old_id and old_id not in str(body)
    assert svc.log.get(decision.id).basis["consent_id"] == old_id  # the record is evidence: kept as logged
    assert svc.log.verify().ok
