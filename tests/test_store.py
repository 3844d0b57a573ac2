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


def test_personal_fields_are_sealed_under_a_per_number_data_key_wrapped_by_the_master_key(store, redis_client):
    from callscreen.models import Proof
    from callscreen.store import subject_key_key

    number = normalize("+79991234567")
    proof = Proof(ip="203.0.113.9", form_text="Yes, call me about offers", form_version="v3")
    store.add_consent(number, Consent(id="c-1", number_digest="", purposes=("promotions",),
                                      basis=LegalBasis.CONSENT, source="web_form",
                                      captured_at=datetime(2026, 5, 1, tzinfo=UTC), proof=proof))
    digest = store.vault.digest(number.e164)
    wrapped = redis_client.get(subject_key_key(digest)).decode()
    assert wrapped.startswith(f"w1.{store.vault.key_id}.")
    dump = b"".join(redis_client.dump(k) or b"" for k in redis_client.keys("*"))
    assert b"203.0.113.9" not in dump and b"call me about offers" not in dump
    assert store.get_consent("c-1").proof == proof
    redis_client.delete(subject_key_key(digest))  # shredding the key ...
    assert store.reveal(digest) is None  # ... makes every sealed copy unreadable
    assert store.get_consent("c-1").proof.form_text == "[erased]"
    assert store.get_consent("c-1").proof.form_version == "v3"


def test_the_data_key_is_created_once_even_by_concurrent_writers(store):
    digest = store.vault.digest("+79991234567")
    first = store.subject(digest, create=True).key
    assert first is not None and store.subject(digest, create=True).key == first == store.subject(digest).key
    assert store.subject(store.vault.digest("+79991234568")).key is None
