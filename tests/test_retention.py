"""Retention: each kind of record goes when its jurisdiction's period is over, never before; the
log still verifies afterwards; one run at a time; a dry run deletes nothing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from callscreen import retention
from callscreen.complaints import ComplaintBook, Status
from callscreen.decision_log import PURGED, STREAM, TRIMMED, LogRecord
from callscreen.journal import AccessJournal
from callscreen.models import Campaign, Consent, Contact, LegalBasis, Reason, Result
from callscreen.numbers import normalize
from callscreen.retention import LOCK_KEY, RetentionBusy, RetentionJob, due, last_run
from callscreen.screening import build_screener
from callscreen.store import consent_pointer_key, number_key
from tests_support import TEST_LOG_KEY, writer_on

pytestmark = pytest.mark.also_cluster

RU_NUMBER, US_NUMBER = "+79991234567", "+12025550123"
NOW = datetime.now(UTC)


def days(n: float) -> datetime:
    return NOW + timedelta(days=n)


@pytest.fixture
def screener(settings, redis_client):
    screener = build_screener(settings, redis_client)
    screener.store.put_campaign(Campaign("ru-promo", "promotions", "RU", "RU", "Europe/Moscow"))
    screener.store.put_campaign(Campaign("us-promo", "promotions", "US", "US", "America/New_York"))
    return screener


@pytest.fixture
def job(screener, settings):
    return RetentionJob(screener.store, screener.log, screener.policies, settings.default_region)


def consent(screener, raw: str, consent_id: str, source: str = "paper", **fields) -> Consent:
    number = normalize(raw, "RU")
    record = Consent(id=consent_id, number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
                     source=source, captured_at=NOW - timedelta(days=1), **fields)
    return screener.store.add_consent(number, record, Contact("Europe/Moscow", ""))


def consent_ids(screener, raw: str) -> set[str]:
    return {c.id for c in screener.store.consents_for(screener.vault.digest(raw))}


def test_decisions_and_outcomes_go_after_their_own_jurisdictions_period(screener, job):
    ru = screener.screen(RU_NUMBER, "ru-promo")
    us = screener.screen(US_NUMBER, "us-promo")
    screener.log.record_outcome(ru.id, "ANSWER", 30, "16")
    ru_digest = screener.vault.digest(RU_NUMBER)

    kept = job.run(days(1094))
    assert sum(kept.deleted.values()) == 0 and screener.log.get(ru.id) is not None

    report = job.run(days(1096))  # the Russian 3 years are over, the American 5 are not
    assert report.by_jurisdiction[("decisions", "RU")] == 1 and report.by_jurisdiction[("outcomes", "RU")] == 1
    assert ("decisions", "US") not in report.by_jurisdiction
    assert screener.log.get(ru.id) is None and screener.log.get(us.id) is not None
    assert screener.log.outcome_of(ru.id) is None
    assert screener.log.for_number(ru_digest) == []
    assert screener.log.verify().ok, screener.log.verify().problems

    summary = screener.log.tail(1)[0]
    assert (summary.kind, summary.extra["deleted"]["decisions"]) == ("retention", 1)  # the deletion is on record
    report = job.run(days(1826))
    assert report.by_jurisdiction[("decisions", "US")] == 1 and screener.log.get(us.id) is None
    assert screener.log.verify().ok


def test_purging_inside_a_chain_leaves_it_verifiable_and_deletion_by_hand_still_shows(screener, job, redis_client):
    ids = [screener.screen(raw, campaign).id
           for raw, campaign in [(RU_NUMBER, "ru-promo"), (US_NUMBER, "us-promo")] * 3]
    job.run(days(1096))  # every RU record in the middle of the one chain goes
    assert [screener.log.get(i) is None for i in ids] == [True, False] * 3
    assert redis_client.hlen(PURGED) > 0 and redis_client.hexists(TRIMMED, screener.log._chain)
    screener.screen(RU_NUMBER, "ru-promo")  # the chain goes on after the gaps
    assert screener.log.verify().ok, screener.log.verify().problems

    redis_client.xdel(STREAM, screener.log.get(ids[3]).stream_id)  # a US record deleted without the key
    assert any("missing" in p for p in screener.log.verify().problems)


def test_a_tombstone_forged_without_the_log_key_is_reported(screener, job, redis_client):
    ids = [screener.screen(US_NUMBER, "us-promo").id for _ in range(3)]
    victim = screener.log.get(ids[1])
    redis_client.xdel(STREAM, victim.stream_id)
    redis_client.hset(PURGED, f"{victim.chain} {victim.seq}", f"{victim.prev} {victim.mac} {'0' * 64}")
    problems = screener.log.verify().problems
    assert any("not left by retention" in p for p in problems)


def test_ended_consents_go_after_the_period_active_ones_never(screener, job):
    consent(screener, RU_NUMBER, "c-active")
    consent(screener, RU_NUMBER, "c-withdrawn")
    screener.store.withdraw_consent("c-withdrawn", "phone call", at=NOW)
    consent(screener, RU_NUMBER, "c-expired", expires_at=NOW)
    consent(screener, US_NUMBER, "c-us-withdrawn")
    screener.store.withdraw_consent("c-us-withdrawn", "email", at=NOW)

    job.run(days(1094))
    assert consent_ids(screener, RU_NUMBER) == {"c-active", "c-withdrawn", "c-expired"}
    report = job.run(days(1096))
    assert report.by_jurisdiction[("consents", "RU")] == 2
    assert consent_ids(screener, RU_NUMBER) == {"c-active"}
    assert screener.store.get_consent("c-withdrawn") is None
    assert screener.store.client.get(consent_pointer_key("c-withdrawn")) is None
    assert consent_ids(screener, US_NUMBER) == {"c-us-withdrawn"}  # the US keeps consent records 5 years
    job.run(days(3650))
    assert consent_ids(screener, RU_NUMBER) == {"c-active"} and consent_ids(screener, US_NUMBER) == set()


def test_unconfirmed_consents_go_where_the_pack_requires_confirmation(screener, job):
    consent(screener, RU_NUMBER, "c-unconfirmed", source="web_form")
    consent(screener, RU_NUMBER, "c-confirmed", source="web_form", verified_at=NOW)
    consent(screener, US_NUMBER, "c-us-web", source="web_form")  # the US pack needs no confirmation
    assert job.run(days(29)).deleted["unverified_consents"] == 0
    report = job.run(days(31))
    assert report.by_jurisdiction[("unverified_consents", "RU")] == 1
    assert consent_ids(screener, RU_NUMBER) == {"c-confirmed"}
    assert consent_ids(screener, US_NUMBER) == {"c-us-web"}


def test_a_consent_that_changed_while_judged_is_not_deleted(screener):
    stored = consent(screener, RU_NUMBER, "c-1", source="web_form")
    digest = stored.number_digest
    raw = screener.store.client.hget(number_key(digest, "consents"), "c-1")
    screener.store.withdraw_consent("c-1", "sms")  # changes between the read and the delete
    assert screener.store.forget_consents(digest, [("c-1", raw)]) == 0
    assert screener.store.get_consent("c-1") is not None


def test_resolved_complaints_go_but_their_suppression_keeps_blocking(screener, job):
    book = ComplaintBook(screener.store, screener.log)
    number = normalize(RU_NUMBER, "RU")
    resolved = book.file(number, NOW, "phone", said="called at night")
    book.move(resolved.id, Status.INVESTIGATING, "dpo")
    book.move(resolved.id, Status.RESOLVED, "dpo", note="apologised")
    still_open = book.file(number, NOW, "email")

    report = job.run(days(1096))
    assert report.by_jurisdiction[("complaints", "RU")] == 1
    assert book.get(resolved.id) is None and book.get(still_open.id) is not None
    assert [c.id for c in book.for_number(resolved.number_digest)] == [still_open.id]
    consent(screener, RU_NUMBER, "c-1", source="sms_double_opt_in")
    decision = screener.screen(RU_NUMBER, "ru-promo", datetime(2026, 11, 20, 10, tzinfo=UTC))
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.COMPLAINT_SUPPRESSED)


def test_the_access_journal_is_kept_for_the_longest_journal_period(screener, job, redis_client):
    journal = AccessJournal(redis_client, TEST_LOG_KEY)
    for n in range(3):
        journal.record(user="dpo", role="admin", action="reveal", number_digest="ab" * 16, reason=f"request {n}")
    assert job.run(days(1096)).deleted["journal"] == 0  # the US pack keeps access records 6 years
    assert job.run(days(2191)).deleted["journal"] == 3
    assert journal.count() == 0 and journal.verify().ok  # the chain is anchored where it was cut


def test_a_dry_run_reports_what_a_run_deletes_and_deletes_nothing(screener, job, redis_client):
    screener.screen(RU_NUMBER, "ru-promo")
    consent(screener, RU_NUMBER, "c-1", source="web_form")
    AccessJournal(redis_client, TEST_LOG_KEY).record(user="u", role="admin", action="reveal", number_digest="ab" * 16,
                                       reason="r")
    before = redis_client.xlen(STREAM)
    dry = job.run(days(3000), dry_run=True)
    assert redis_client.xlen(STREAM) == before and consent_ids(screener, RU_NUMBER) == {"c-1"}
    assert last_run(redis_client) is None
    real = job.run(days(3000))
    assert dry.deleted == real.deleted and sum(real.deleted.values()) == 3
    assert last_run(redis_client)["deleted"]["decisions"] == 1


def test_only_one_run_at_a_time_and_the_lock_is_freed_after(screener, job, redis_client):
    redis_client.set(LOCK_KEY, "someone-else", px=60_000)
    with pytest.raises(RetentionBusy):
        job.run(days(1))
    redis_client.delete(LOCK_KEY)
    job.run(days(1))
    assert not redis_client.exists(LOCK_KEY)


def test_an_interrupted_run_resumes_where_it_stopped(screener, job, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)
    ids = [screener.screen(RU_NUMBER, "ru-promo").id for _ in range(5)]
    stop = threading.Event()
    calls = 0
    keep_going = job._keep_going

    def stop_after_first_batch(lock, event, report):
        nonlocal calls
        calls += 1
        if calls == 1:
            stop.set()
        return keep_going(lock, event, report)

    monkeypatch.setattr(job, "_keep_going", stop_after_first_batch)
    first = job.run(days(1096), stop=stop)
    assert first.interrupted and first.deleted["decisions"] == 2
    second = job.run(days(1096))
    assert not second.interrupted and second.deleted["decisions"] == 4  # the other 3, the first run's summary
    assert last_run(screener.log.client)["deleted"]["decisions"] == 4  # an interrupted run is not "the last"
    assert all(screener.log.get(i) is None for i in ids)
    assert screener.log.verify().ok


def test_the_last_run_says_when_the_next_is_due(screener, job, redis_client):
    assert due(redis_client, timedelta(hours=24))
    job.run()
    assert not due(redis_client, timedelta(hours=24))
    # a day after the run, not after NOW (taken when the module was imported: a slow suite may
    # reach this test more than a quarter of an hour later)
    assert due(redis_client, timedelta(hours=24), now=datetime.now(UTC) + timedelta(days=1.01))


def test_the_command_reports_per_kind_deletes_and_refuses_a_second_run(settings, redis_client, monkeypatch, capsys,
                                                                       tmp_path):
    from callscreen.cli.main import main

    monkeypatch.chdir(tmp_path)
    for name in ("redis_url", "hash_key", "encryption_key", "log_key"):
        value = getattr(settings, name)
        monkeypatch.setenv(f"CALLSCREEN_{name.upper()}", value.hex() if isinstance(value, bytes) else value)
    assert main(["retention", "status"]) == 0 and "never run" in capsys.readouterr().out
    assert main(["retention", "run", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "decisions" in out and "would delete" in out and "journal" in out
    assert main(["retention", "run"]) == 0 and "deleted" in capsys.readouterr().out
    assert main(["retention", "status"]) == 0 and "last run finished" in capsys.readouterr().out
    redis_client.set(LOCK_KEY, "another-host", px=60_000)
    assert main(["retention", "run"]) == 7
    assert "holds the lock" in capsys.readouterr().err


def test_every_shard_of_the_log_is_walked_with_its_own_cursor(screener, job, redis_client):
    other = writer_on(redis_client, 2)  # another process, writing to shard 2
    ru = screener.screen(RU_NUMBER, "ru-promo")
    other.append(LogRecord(id="d-other", at=NOW, campaign_id="ru-promo", result="BLOCK", reason="no_basis"))
    report = job.run(days(1096))
    assert report.by_jurisdiction[("decisions", "RU")] == 2
    assert screener.log.get(ru.id) is None and screener.log.get("d-other") is None
    names = {name.decode() for name in redis_client.hkeys(retention.CURSORS_KEY)}
    assert any(name.endswith(" shard 2") for name in names) and any("shard" not in name for name in names)
    assert screener.log.verify().ok, screener.log.verify().problems
