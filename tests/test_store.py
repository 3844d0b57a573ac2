from datetime import UTC, datetime

from callscreen.models import Consent, LegalBasis, OptOut
from callscreen.numbers import normalize
from callscreen.store import number_key


def test_consent_is_stored_under_keyed_digest_with_number_sealed(store, redis_client):
    number = normalize("+79991234567")
    consent = Consent(
        id="c-1", number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
        source="web_form", captured_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    stored = store.add_consent(number, consent)
    dump = b"".join(redis_client.dump(k) or b"" for k in redis_client.keys("*"))
    assert b"79991234567" not in dump
    assert b"79991234567" not in b"".join(redis_client.keys("*"))
    assert store.get_consent("c-1") == stored
    assert store.reveal(stored.number_digest) == "+79991234567"


def test_all_keys_of_one_number_share_a_cluster_slot(store, redis_client):
    number = normalize("+79991234567")
    store.add_opt_out(number, OptOut(None, "call", datetime.now(UTC)))
    digest = store.vault.digest(number.e164)
    slots = {redis_client.execute_command("CLUSTER", "KEYSLOT", number_key(digest, k))
             for k in ("consents", "optouts", "objections", "suppressions", "attempts", "contact")}
    assert len(slots) == 1


def test_facts_are_gathered_in_one_round_trip(store):
    number = normalize("+79991234567")
    store.add_opt_out(number, OptOut("spring", "call", datetime.now(UTC)))
    facts = store.facts(number, datetime.now(UTC))
    assert [o.campaign_id for o in facts.opt_outs] == ["spring"]
