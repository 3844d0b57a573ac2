"""Erasure really erases: crypto-shredding of every personal field, a keyed suppression that
blocks every future call, a decision log that still verifies, and no trace of the number or an
openable copy in the keyspace or in the server's append-only files after compaction."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from privacy_support import keyspace_text, spellings

from callscreen.complaints import ComplaintBook
from callscreen.config import Settings
from callscreen.crypto import SealError
from callscreen.dsr import RequestBook
from callscreen.embedded import EmbeddedServer
from callscreen.erasure import MIGRATED_KEY, Eraser, ErasureError, rewrite_files
from callscreen.journal import AccessJournal
from callscreen.models import Campaign, Consent, LegalBasis, OptOut, Proof, Reason
from callscreen.numbers import normalize
from callscreen.screening import Screener, build_screener
from callscreen.store import subject_key_key
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY

pytestmark = pytest.mark.also_cluster

NUMBER, OTHER = "+79991234567", "+79997654321"
AT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # 11:00 in Moscow
PROOF = Proof(ip="203.0.113.77", user_agent="Mozilla/5.0 (erasure-test)", form_text="Call me about dental offers",
              form_version="v7", page_url="https://clinic.example/form?ref=erasure-test")
CALLER, SAID = "Ivanova Maria Petrovna", "They called me at dinner about implants"
PERSONAL = (PROOF.ip, PROOF.user_agent, PROOF.form_text, PROOF.page_url, CALLER, SAID)


def populate(screener: Screener, number: str = NUMBER) -> ComplaintBook:
    store = screener.store
    store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    store.add_consent(normalize(number), Consent("con-1" + number[-2:], "", ("promotions",), LegalBasis.CONSENT,
                                                 "web_form", AT - timedelta(days=30), proof=PROOF,
                                                 verified_at=AT - timedelta(days=30)))
    store.set_contact(normalize(number), timezone="Europe/Moscow", subdivision="RU-MOW")
    store.add_opt_out(normalize(number), OptOut("autumn", "call", AT, note="asked on the phone"))
    assert screener.screen(number, "spring", AT).allowed
    book = ComplaintBook(store, screener.log)
    book.file(normalize(number), AT + timedelta(minutes=5), "phone", caller_name=CALLER, said=SAID, filed_by="desk")
    return book


def eraser(screener: Screener, book: ComplaintBook) -> Eraser:
    return Eraser(screener.store, screener.log, AccessJournal(screener.store.client, TEST_LOG_KEY), book)


@pytest.fixture
def screener(settings, redis_client) -> Screener:
    redis_client.set(MIGRATED_KEY, "1")
    return build_screener(settings, redis_client)


def test_erasure_blocks_every_campaign_at_once_with_a_reason_that_says_so(screener):
    book = populate(screener)
    eraser(screener, book).erase(normalize(NUMBER), reason="DSR-1 letter of 20 Nov", by="dpo")
    screener.store.put_campaign(Campaign("service", "reminders", "RU", "RU", "Europe/Moscow", advertising=False))
    for campaign in ("spring", "service"):
        decision = screener.screen(NUMBER, campaign, AT + timedelta(days=1))
        assert decision.reason is Reason.ERASED_SUBJECT and not decision.allowed
        assert "erased on request" in decision.checks[0].detail
        assert screener.log.get(decision.id).number_sealed == ""  # the answer seals nothing new


def test_personal_fields_become_unreadable_and_what_remains_names_no_one(screener, redis_client):
    book = populate(screener)
    populate(screener, OTHER)
    digest = screener.vault.digest(NUMBER)
    logged = screener.log.for_number(digest)
    report = eraser(screener, book).erase(normalize(NUMBER), reason="DSR-2", by="dpo")
    assert (report.consents, report.complaints, report.decisions) == (1, 1, 1)
    assert report.persistence_rewritten  # every node (on a cluster) was asked to rewrite its files
    store = screener.store
    assert store.reveal(digest) is None and not redis_client.exists(subject_key_key(digest))
    consent = store.consents_for(digest)[0]
    assert consent.proof == Proof(form_version="v7") and consent.purposes == ("promotions",)
    complaint = book.for_number(digest)[0]
    assert (complaint.caller_name, complaint.said, complaint.number_sealed) == ("", "", "")
    assert store.opt_outs_for(digest)[0].note == "" and store.opt_outs_for(screener.vault.digest(OTHER))[0].note
    with pytest.raises(SealError):  # the log's copy stays, but nothing opens it any more
        store.subject(digest).open("number", logged[0].number_sealed)
    assert screener.log.verify().ok  # the MACs cover ciphertext: the chains still verify
    assert store.reveal(screener.vault.digest(OTHER)) == OTHER  # nobody else is touched
    text = keyspace_text(redis_client)
    assert not [s for s in spellings(NUMBER) if s in text]
    assert not [p for p in PERSONAL if p in text]  # sealed for everyone, and unopenable for NUMBER


def test_the_erasure_is_journaled_and_logged_without_the_number_and_repeating_it_is_harmless(screener, redis_client):
    book = populate(screener)
    journal = AccessJournal(redis_client, TEST_LOG_KEY)
    first = eraser(screener, book).erase(normalize(NUMBER), reason="DSR-3", by="dpo")
    again = eraser(screener, book).erase(normalize(NUMBER), reason="DSR-3 reminder", by="dpo")
    assert again.already_erased and again.erasure_id == first.erasure_id
    entries = journal.recent(5, action="erasure")
    assert [e.subject for e in entries] == [first.erasure_id] * 2 and entries[0].reason == "DSR-3 reminder"
    records = [r for r in screener.log.tail(10) if r.kind == "erasure"]
    assert records[0].extra["erasure_id"] == first.erasure_id and records[0].number_sealed == ""
    assert journal.verify().ok and screener.log.verify().ok
    assert not [s for s in spellings(NUMBER) if s in str(entries) + str(records)]


def test_no_new_consent_can_be_stored_for_an_erased_number(screener):
    from callscreen.store import ErasedSubject

    book = populate(screener)
    eraser(screener, book).erase(normalize(NUMBER), reason="DSR-4", by="dpo")
    with pytest.raises(ErasedSubject):
        screener.store.add_consent(normalize(NUMBER), Consent("again", "", ("promotions",), LegalBasis.CONSENT,
                                                              "web_form", AT))
    assert screener.store.get_consent("again") is None
    screener.store.add_opt_out(normalize(NUMBER), OptOut(None, "call", AT))  # still fine: no number kept
    assert screener.store.reveal(screener.vault.digest(NUMBER)) is None


def test_erasure_refuses_to_run_before_the_migration(screener, redis_client):
    book = populate(screener)
    redis_client.delete(MIGRATED_KEY)
    with pytest.raises(ErasureError, match="callscreen migrate"):
        eraser(screener, book).erase(normalize(NUMBER), reason="DSR-5", by="dpo")
    assert screener.screen(NUMBER, "spring", AT).reason is Reason.COMPLAINT_SUPPRESSED  # nothing was erased
    assert screener.store.reveal(screener.vault.digest(NUMBER)) == NUMBER


def test_a_legacy_log_record_of_the_person_is_removed_and_the_chain_still_verifies(screener):
    book = populate(screener)
    digest = screener.vault.digest(NUMBER)
    record = screener.log.for_number(digest)[0]
    legacy = replace(record, id="d-legacy", number_sealed=screener.vault.seal(NUMBER), chain="", seq=0, prev="",
                     mac="", stream_id="")
    screener.log.append(legacy, screener.log.decision_index_commands(legacy, attempt=False))
    report = eraser(screener, book).erase(normalize(NUMBER), reason="DSR-6", by="dpo")
    assert report.legacy_records_removed == 1 and screener.log.get("d-legacy") is None
    assert screener.log.verify().ok


def test_an_open_request_is_closed_by_the_erasure(screener, redis_client):
    book = populate(screener)
    requests = RequestBook(redis_client)
    request = requests.receive(screener.vault.digest(NUMBER), "DSR-7", "desk")
    assert request.due_at - request.received_at == timedelta(days=30) and requests.open_requests() == [request]
    report = eraser(screener, book).erase(normalize(NUMBER), reason="DSR-7", by="dpo")
    closed = requests.get(request.id)
    assert not closed.open and closed.outcome == report.erasure_id and requests.open_requests() == []


def test_an_erasure_during_a_running_rewrite_waits_for_it_and_then_rewrites_the_files_again(own_store):
    server = own_store()
    client = redis.Redis.from_url(server.url)
    for n in range(8):
        client.set(f"filler:{n}", "x")
    _wait_for_persistence(client, -1)  # the server's own start-up rewrite, if any, is over
    rewrites = client.info("persistence")["aof_rewrites"]
    client.config_set("rdb-key-save-delay", 100_000)  # 0.1 s per key: the rewrite below runs ~1 s
    client.execute_command("BGREWRITEAOF")
    with pytest.raises(redis.ResponseError, match="in progress"):
        client.execute_command("BGREWRITEAOF")  # what a naive erasure would have been told
    client.config_set("rdb-key-save-delay", 0)  # the running rewrite keeps its delay; ours won't

    started = time.monotonic()
    assert rewrite_files(client)
    assert time.monotonic() - started > 0.2, "it waited for the running rewrite"
    deadline = time.monotonic() + 30
    while client.info("persistence")["aof_rewrites"] < rewrites + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.info("persistence")["aof_rewrites"] >= rewrites + 2  # the running one, then ours


def _wait_for_persistence(client: redis.Redis, saves_before: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = client.info("persistence")
        done = (not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]
                and not info["rdb_bgsave_in_progress"] and info.get("rdb_saves", saves_before + 1) > saves_before)
        if done:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server did not finish rewriting its files: {client.info('persistence')}")


def test_after_erasure_the_aof_and_snapshot_hold_no_trace_of_the_number_or_an_openable_copy(tmp_path: Path):
    with EmbeddedServer(tmp_path / "valkey", persist=True) as server:
        client = redis.Redis.from_url(server.url)
        client.config_set("rdbcompression", "no")  # so a plain-text search of the files means something
        client.set(MIGRATED_KEY, "1")
        settings = Settings(redis_url=server.url, data_dir=tmp_path, hash_key=TEST_HASH_KEY,
                            encryption_key=TEST_ENCRYPTION_KEY, log_key=TEST_LOG_KEY)
        screener = build_screener(settings, client)
        book = populate(screener)
        populate(screener, OTHER)
        digest = screener.vault.digest(NUMBER)
        client.bgrewriteaof()  # the person's data is now in the AOF base and in incremental files
        _wait_for_persistence(client, -1)
        before = _files(server.data_dir)
        assert NUMBER.encode() not in before
        assert [t for t in _wrapped(before) if _opens(screener, digest, t)], "the check below can fail"
        saves = client.info("persistence").get("rdb_saves", 0)
        report = eraser(screener, book).erase(normalize(NUMBER), reason="DSR-8", by="dpo")
        assert report.persistence_rewritten
        _wait_for_persistence(client, saves)
        after = _files(server.data_dir)
        live = keyspace_text(client)
        client.close()
    assert not [s for s in spellings(NUMBER) if s.encode() in after]
    assert not [p for p in PERSONAL if p.encode() in after]
    wrapped = _wrapped(after + live.encode())
    assert [t for t in wrapped if _opens(screener, screener.vault.digest(OTHER), t)]  # OTHER's key is kept
    assert not [t for t in wrapped if _opens(screener, digest, t)]  # no data key in any file opens for NUMBER
    # Every sealed value left anywhere, tried with every data key the remaining master key can
    # unwrap from anything left: NUMBER's copies (still in the decision log) open under none.
    digests = set(re.findall(r"\{([0-9a-f]{32})\}", live))
    keys = [(d, screener.vault.unwrap_key(d, t)) for t in wrapped for d in digests if _opens(screener, d, t)]
    sealed = {t.decode() for t in re.findall(rb"s1\.[A-Za-z0-9_\-=]+", after + live.encode())}
    opened = [screener.vault.open_with(k, d, field, t) for t in sealed for d, k in keys
              for field in FIELDS if _opens_with(screener, k, d, field, t)]
    assert len(sealed) > len(opened) > 0  # NUMBER's log copies are there, and stay shut
    assert not [text for text in opened if any(s in text for s in spellings(NUMBER))]


def _wrapped(blob: bytes) -> set[str]:
    return {t.decode() for t in re.findall(rb"w1\.[0-9a-f]{8}\.[A-Za-z0-9_\-=]+", blob)}


FIELDS = ("number", "proof", "complaint.caller_name", "complaint.said")


def _opens_with(screener: Screener, key: bytes, digest: str, field: str, token: str) -> bool:
    try:
        screener.vault.open_with(key, digest, field, token)
    except SealError:
        return False
    return True


def _opens(screener: Screener, digest: str, wrapped: str) -> bool:
    try:
        screener.vault.unwrap_key(digest, wrapped)
    except SealError:
        return False
    return True


def _files(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".log")
