"""``callscreen migrate``, ``erase``, ``dsr export``, ``dossier``, ``journal`` and the journaled
``log export``: data of earlier versions re-keyed and re-sealed, old ids still resolving."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from privacy_support import keyspace_text, spellings

from callscreen import codec
from callscreen.complaints import Complaint, ComplaintBook, complaint_key
from callscreen.consent_import import legacy_derived_id
from callscreen.crypto import NumberVault
from callscreen.journal import LEGACY_KEY, AccessJournal
from callscreen.migrate import PROGRESS_KEY
from callscreen.models import Consent, LegalBasis, Proof
from callscreen.numbers import normalize
from callscreen.store import Store, consent_pointer_key, number_key
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY

pytestmark = pytest.mark.also_cluster

NUMBER = "+79991234567"
CAPTURED = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
VAULT = NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY)


def write_legacy_data(client) -> str:
    """What an earlier version left: an unkeyed consent id, master-key seals, clear proof and
    complaint text, an unchained journal. Returns the old consent id."""
    number = normalize(NUMBER)
    digest = VAULT.digest(NUMBER)
    old_id = legacy_derived_id(number, ("promotions",), "web_form", CAPTURED)
    consent = Consent(old_id, digest, ("promotions",), LegalBasis.CONSENT, "web_form", CAPTURED,
                      proof=Proof(ip="198.51.100.4", form_text="old wording", form_version="v1"),
                      number_sealed=VAULT.seal(NUMBER), recorded_at=CAPTURED)
    client.hset(number_key(digest, "consents"), old_id, codec.dumps(consent))
    client.set(consent_pointer_key(old_id), digest)
    client.hset(number_key(digest, "contact"), mapping={"sealed": VAULT.seal(NUMBER), "timezone": "Europe/Moscow"})
    complaint = Complaint("cmp-old", digest, VAULT.seal(NUMBER), CAPTURED, CAPTURED, "phone",
                          caller_name="Petrov", said="too many calls")
    client.set(complaint_key("cmp-old"), codec.dumps(complaint))
    client.sadd(number_key(digest, "complaints"), "cmp-old")
    client.xadd(LEGACY_KEY, {"at": CAPTURED.isoformat(), "user": "dpo", "role": "compliance", "action": "reveal",
                             "digest": digest, "reason": "old reveal", "subject": ""})
    return old_id


def test_migrate_rekeys_reseals_and_keeps_old_ids_resolving_and_is_idempotent(cli, redis_client):
    old_id = write_legacy_data(redis_client)
    before = keyspace_text(redis_client)
    assert old_id in before and "old wording" in before
    code, out, _ = cli("migrate")
    assert code == 0 and "consents     1 changed" in out and "journal      1 changed" in out
    store = Store(redis_client, VAULT)
    consent = store.get_consent(old_id)  # the old id still finds it ...
    assert consent is not None and consent.id != old_id and consent.id.startswith("c-")
    assert consent.proof.form_text == "old wording" and store.reveal(VAULT.digest(NUMBER)) == NUMBER
    text = keyspace_text(redis_client)  # ... but is no longer stored anywhere
    assert old_id not in text and "old wording" not in text and "Petrov" not in text
    complaint = json.loads(redis_client.get(complaint_key("cmp-old")))
    assert complaint["number_sealed"].startswith("s1.") and complaint["said"].startswith("s1.")
    journal = AccessJournal(redis_client, TEST_LOG_KEY)
    assert [e.reason for e in journal.recent()] == ["old reveal"] and journal.verify().ok
    assert not redis_client.exists(LEGACY_KEY)
    code, out, _ = cli("migrate")
    assert code == 0 and "consents     0 changed (already done)" in out
    assert cli("migrate", "--status")[1].split() == ["journal", "done", "contacts", "done", "consents", "done",
                                                     "complaints", "done"]
    assert redis_client.hget(PROGRESS_KEY, "consents") == b"done"


def test_withdrawing_by_an_old_id_after_migration_withdraws_the_consent(cli, redis_client):
    old_id = write_legacy_data(redis_client)
    cli("migrate")
    code, out, _ = cli("consent", "withdraw", "--id", old_id, "--how", "letter")
    assert code == 0 and "withdrawn c-" in out and old_id not in out


def test_erase_from_the_command_line_then_the_next_check_blocks(cli, redis_client):
    cli("campaign", "add", "spring", "--purpose", "promotions", "--jurisdiction", "RU")
    cli("consent", "add", NUMBER, "--purpose", "promotions", "--source", "sms_double_opt_in",
        "--captured-at", "2026-05-01T10:00:00Z", "--form-text", "Да, звоните")
    code, _out, err = cli("erase", NUMBER, "--reason", "DSR-1")
    assert code == 3 and "callscreen migrate" in err  # nothing migrated yet: refused, nothing changed
    cli("migrate")
    code, out, _ = cli("erase", NUMBER, "--reason", "DSR-1 letter of 1 Dec", "--by", "dpo")
    assert code == 0 and "+7 999 ***-**-67" in out and "1 consents" in out and NUMBER not in out
    code, out, _ = cli("check", NUMBER, "--campaign", "spring", "--at", "2026-11-20T10:00:00Z")
    assert code == 1 and out.startswith("BLOCK erased_subject")
    text = keyspace_text(redis_client)
    assert not [s for s in spellings(NUMBER) if s in text] and "Да, звоните" not in text
    code, out, _ = cli("journal", "list")
    assert "erasure" in out and "DSR-1 letter of 1 Dec" in out and NUMBER not in out
    assert cli("log", "verify")[0] == 0 and cli("journal", "verify")[0] == 0


def test_every_cli_export_is_journaled_first(cli, redis_client, tmp_path):
    cli("campaign", "add", "spring", "--purpose", "promotions", "--jurisdiction", "RU")
    cli("consent", "add", NUMBER, "--purpose", "promotions", "--source", "sms_double_opt_in")
    cli("check", NUMBER, "--campaign", "spring")
    code, out, _ = cli("dsr", "export", NUMBER, "--reason", "DSR-9 access", "--by", "dpo")
    assert code == 0 and json.loads(out)["number"] == NUMBER
    assert cli("log", "export", "--out", str(tmp_path / "log.jsonl"), "--reason", "yearly archive")[0] == 0
    assert cli("dossier", "cmp-none", "--reason", "regulator")[0] == 3
    complaint = ComplaintBook(Store(redis_client, VAULT)).file(normalize(NUMBER), CAPTURED, "phone", said="rude")
    code, out, _ = cli("dossier", complaint.id, "--reason", "Roskomnadzor request 12")
    assert code == 0 and json.loads(out)["complaint"]["said"] == "rude" and NUMBER not in out
    journal = AccessJournal(redis_client, TEST_LOG_KEY)
    entries = journal.recent(5)
    assert [(e.action, e.reason) for e in entries] == [("dossier_export", "Roskomnadzor request 12"),
                                                       ("log_export", "yearly archive"),
                                                       ("access_export", "DSR-9 access")]
    assert entries[2].user == "dpo" and entries[2].number_digest == VAULT.digest(NUMBER)
    assert entries[1].user.endswith("@cli") and entries[0].subject == complaint.id and journal.verify().ok
