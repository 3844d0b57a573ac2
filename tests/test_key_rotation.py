"""Key rotation while screening goes on: no wrong answer, no ALLOW without its record, the log
still verifies, and the old key is unusable afterwards."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio

from callscreen.cli.main import main
from callscreen.decision_log import EPOCH, STREAM, DecisionLog, LogRecord, LogWriteError, chain_mac
from callscreen.keys import Keyring
from callscreen.models import Campaign, Consent, Contact, LegalBasis, OptOut, Result
from callscreen.numbers import normalize
from callscreen.rotation import STATE_TTL
from callscreen.screening import build_screener

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday
CONSENTED, OPTED_OUT = "+79991234567", "+79997654321"
OLD_LOG, NEW_LOG = ("2026a", bytes(range(100, 132))), ("2026b", bytes(range(140, 172)))


class ScreeningLoad:
    """Screens a consented and an opted-out number in a thread until stopped, and keeps every
    answer that was wrong and every ALLOW whose record cannot be read back."""

    def __init__(self, screener, campaign: str = "spring", asynchronous: bool = False) -> None:
        self.screener = screener
        self.campaign = campaign
        self.asynchronous = asynchronous
        self.answers = 0
        self.wrong: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        if self.asynchronous:  # the FastAGI path: asyncio client, state read without blocking
            asyncio.run(self._run_async())
            return
        while not self.stop.is_set():
            for raw, expected in ((CONSENTED, Result.ALLOW), (OPTED_OUT, Result.BLOCK)):
                self._check(raw, expected, self.screener.screen(raw, self.campaign, AT, origin="load"))

    async def _run_async(self) -> None:
        self.screener.aclient = self.screener.log.aclient = redis.asyncio.Redis.from_url(self.url)
        try:
            while not self.stop.is_set():
                for raw, expected in ((CONSENTED, Result.ALLOW), (OPTED_OUT, Result.BLOCK)):
                    self._check(raw, expected, await self.screener.screen_async(raw, self.campaign, AT,
                                                                                 deadline=2.0))
        finally:
            await self.screener.aclient.aclose()

    def _check(self, raw: str, expected: Result, decision) -> None:
        self.answers += 1
        if decision.result is not expected:
            self.wrong.append(f"{raw}: {decision.result} {decision.reason}")
        if decision.allowed and self.screener.log.get(decision.id) is None:
            self.wrong.append(f"{raw}: ALLOW {decision.id} without its record")

    @property
    def url(self) -> str:
        kwargs = self.screener.store.client.connection_pool.connection_kwargs
        return f"redis://{kwargs['host']}:{kwargs['port']}/0"

    def __enter__(self) -> ScreeningLoad:
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.answers < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        before = self.answers
        deadline = time.monotonic() + 10
        while self.answers < before + 20 and time.monotonic() < deadline:  # keep screening after the rotation
            time.sleep(0.01)
        self.stop.set()
        self.thread.join(10)


async def next_decision_reads_the_state(screener, url: str) -> None:
    from callscreen.rotation import refresh_async

    aclient = redis.asyncio.Redis.from_url(url)
    try:
        await refresh_async(screener.vault, aclient)
    finally:
        await aclient.aclose()


def ringed(settings, name: str, *entries: tuple[str, bytes]):
    rings = {**settings.keyrings, name: Keyring(name, entries)}
    return dataclasses.replace(settings, keyrings=rings, **{name: entries[0][1]})


@pytest.fixture
def cli_env(settings, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("hash_key", "encryption_key", "log_key"):
        ring = settings.keyring(name)
        monkeypatch.setenv(f"CALLSCREEN_{name.upper()}", ",".join(f"{kid}:{key.hex()}" for kid, key in ring))
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", settings.redis_url)


def prepare(screener) -> None:
    screener.store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    for raw in (CONSENTED, OPTED_OUT):
        consent = Consent(id=f"c-{raw[-4:]}", number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
                          source="sms_double_opt_in", captured_at=AT - timedelta(days=30),
                          verified_at=AT - timedelta(days=30))
        screener.store.add_consent(normalize(raw, "RU"), consent, Contact("Europe/Moscow", ""))
    screener.store.add_opt_out(normalize(OPTED_OUT, "RU"), OptOut(None, "call", AT - timedelta(days=1)))


# --- the log key ------------------------------------------------------------------------------

def test_log_key_rotation_under_load_keeps_every_answer_right_and_the_log_verifiable(
        settings, redis_client, cli_env, monkeypatch, capsys):
    settings = ringed(settings, "log_key", OLD_LOG, NEW_LOG)
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", f"{OLD_LOG[0]}:{OLD_LOG[1].hex()},{NEW_LOG[0]}:{NEW_LOG[1].hex()}")
    screener = build_screener(settings, redis_client)
    prepare(screener)
    with ScreeningLoad(screener) as load:
        assert main(["keys", "rotate", "log"]) == 0
        assert "log key 2026b is in force (was 2026a)" in capsys.readouterr().out
    assert load.wrong == [] and load.answers > 40
    kids = [LogRecord.from_entry(*e).key_id for e in redis_client.xrange(STREAM)]
    assert kids[0] == "2026a" and kids[-1] == "2026b" and kids == sorted(kids)  # one switch, never back
    report = screener.log.verify()
    assert report.ok, report.problems[:5]
    assert main(["keys", "status"]) == 0 and "2026b" in capsys.readouterr().out


def test_after_a_log_rotation_the_old_key_can_write_nothing_that_verifies(settings, redis_client):
    ring = Keyring("log_key", (OLD_LOG, NEW_LOG))
    log = DecisionLog(redis_client, ring)
    log.append_summary("scrub", {"rows": 1})
    log.rotate_key("2026b")
    log.append_summary("scrub", {"rows": 2})

    old_only = DecisionLog(redis_client, Keyring("log_key", (OLD_LOG,)))
    with pytest.raises(LogWriteError, match="not in this process's key ring"):
        old_only.append_summary("scrub", {"rows": 3})  # refused by the store: fails closed

    # someone holding the leaked old key and write access to the store appends past the script
    record = LogRecord(id="forged", at=datetime.now(UTC), kind="decision", result="ALLOW")
    mac = chain_mac(OLD_LOG[1], "forger", 1, "genesis", record.body())
    redis_client.xadd(STREAM, {"id": "forged", "chain": "forger", "seq": 1, "prev": "genesis", "mac": mac,
                               "body": record.body(), "kid": "2026a"})
    redis_client.hset("cs:{log}:heads", "forger", f"1:{mac}")
    problems = log.verify().problems
    assert any("forged" in p and "not the key in force" in p for p in problems), problems

    redis_client.delete(EPOCH, "cs:{log}:epochs")  # and hides the rotation
    assert any("no rotation to it is on record" in p for p in log.verify().problems)


def test_a_writer_that_missed_the_rotation_switches_to_the_key_in_force(settings, redis_client):
    ring = Keyring("log_key", (OLD_LOG, NEW_LOG))
    rotator, late = DecisionLog(redis_client, ring), DecisionLog(redis_client, ring)
    late.append_summary("scrub", {"rows": 1})
    rotator.rotate_key("2026b")
    late.append_summary("scrub", {"rows": 2})
    assert late.key_id == "2026b" and late.tail(1)[0].key_id == "2026b"
    assert rotator.verify().ok


def test_rotating_to_the_key_in_force_or_an_unknown_key_is_refused(settings, redis_client, cli_env, monkeypatch,
                                                                   capsys):
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", f"{OLD_LOG[0]}:{OLD_LOG[1].hex()}")
    assert main(["keys", "rotate", "log"]) == 3
    assert "already in force" in capsys.readouterr().err
    assert main(["keys", "rotate", "log", "--to", "nope"]) == 3
    assert "not in this process's key ring" in capsys.readouterr().err


def test_keys_add_writes_a_new_key_into_the_development_key_file(valkey_server, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("HASH_KEY", "ENCRYPTION_KEY", "LOG_KEY", "REDIS_URL"):
        monkeypatch.delenv(f"CALLSCREEN_{name}", raising=False)
    monkeypatch.setenv("CALLSCREEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", "")
    redis.Redis.from_url(valkey_server.url).flushall()
    (tmp_path / "data" / "valkey").mkdir(parents=True)
    (tmp_path / "data" / "valkey" / "url").write_text(valkey_server.url)  # as `callscreen run` leaves it
    assert main(["keys", "add", "log", "--id", "2027a"]) == 0
    lines = (tmp_path / "data" / "secrets" / "log_key").read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith("2027a:")
    assert main(["keys", "rotate", "log"]) == 0
    assert "log key 2027a is in force" in capsys.readouterr().out
    assert main(["keys", "add", "log", "--id", "2027a"]) == 3  # ids are unique


def test_the_access_journal_follows_the_log_key_rotation(settings, redis_client, cli_env, monkeypatch):
    from callscreen.journal import JOURNAL_KEY, AccessJournal

    monkeypatch.setenv("CALLSCREEN_LOG_KEY", f"{OLD_LOG[0]}:{OLD_LOG[1].hex()},{NEW_LOG[0]}:{NEW_LOG[1].hex()}")
    ring = Keyring("log_key", (OLD_LOG, NEW_LOG))
    journal = AccessJournal(redis_client, ring)
    entry = dict(user="dpo", role="admin", action="reveal", number_digest="ab" * 16, reason="subject request")
    journal.record(**entry)
    assert main(["keys", "rotate", "log"]) == 0
    journal.record(**entry)  # this writer had not noticed: it is told the key in force
    kids = [fields[b"kid"] for _id, fields in redis_client.xrange(JOURNAL_KEY)]
    assert kids == [b"2026a", b"2026b"]
    assert journal.verify().ok, journal.verify().problems
    with pytest.raises(ValueError, match="not in this process's key ring"):
        AccessJournal(redis_client, Keyring("log_key", (OLD_LOG,))).record(**entry)


# --- the encryption (master) key ------------------------------------------------------------

OLD_MASTER, NEW_MASTER = ("e2026a", bytes(range(32, 64))), ("e2026b", bytes(range(200, 232)))


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_encryption_key_rotation_under_load_rewraps_every_data_key_and_retires_the_old_key(
        settings, redis_client, cli_env, monkeypatch, capsys, asynchronous):
    from callscreen.crypto import NumberVault, SealError, key_id, wrapped_key_id
    from callscreen.store import SUBJECT_KEY_PATTERN, subject_digest

    settings = ringed(settings, "encryption_key", OLD_MASTER, NEW_MASTER)
    monkeypatch.setenv("CALLSCREEN_ENCRYPTION_KEY",
                       f"{OLD_MASTER[0]}:{OLD_MASTER[1].hex()},{NEW_MASTER[0]}:{NEW_MASTER[1].hex()}")
    screener = build_screener(settings, redis_client)
    prepare(screener)
    digest = screener.vault.digest(CONSENTED)
    old_wrapped = {k: redis_client.get(k) for k in redis_client.scan_iter(match=SUBJECT_KEY_PATTERN)}
    assert old_wrapped and {wrapped_key_id(v.decode()) for v in old_wrapped.values()} == {key_id(OLD_MASTER[1])}

    with ScreeningLoad(screener, asynchronous=asynchronous) as load:
        assert main(["keys", "rotate", "encryption"]) == 0
    out = capsys.readouterr().out
    assert "e2026a is retired" in out
    assert load.wrong == [] and load.answers > 40

    wrapped = {k: redis_client.get(k) for k in redis_client.scan_iter(match=SUBJECT_KEY_PATTERN)}
    assert {wrapped_key_id(v.decode()) for v in wrapped.values()} == {key_id(NEW_MASTER[1])}
    assert screener.store.reveal(digest) == CONSENTED  # the data itself was never re-encrypted
    assert screener.log.verify().ok
    # the old master key opens nothing that is stored now ...
    leaked = NumberVault(settings.hash_key, OLD_MASTER[1])
    for key, value in wrapped.items():
        with pytest.raises(SealError):
            leaked.unwrap_key(subject_digest(key.decode()), value.decode())
    # ... and no process unwraps with it again, even where it is still configured (once its view of
    # the state is at most STATE_TTL old)
    time.sleep(STATE_TTL + 0.1)
    if asynchronous:  # an event-loop process reads the state on its next decision, never blocking
        asyncio.run(next_decision_reads_the_state(screener, load.url))
    stale_copy = next(iter(old_wrapped.items()))
    with pytest.raises(SealError):
        screener.vault.unwrap_key(subject_digest(stale_copy[0].decode()), stale_copy[1].decode())
    assert main(["keys", "status"]) == 0
    assert "retired e2026a" in capsys.readouterr().out


def test_a_process_without_the_key_in_force_fails_closed(settings, redis_client):
    from callscreen.rotation import state_key

    rotated = ringed(settings, "encryption_key", OLD_MASTER, NEW_MASTER)
    screener = build_screener(rotated, redis_client)
    prepare(screener)
    redis_client.hset(state_key("encryption"), mapping={"active": "e2026b"})
    behind = build_screener(ringed(settings, "encryption_key", OLD_MASTER), redis_client)
    decision = behind.screen(CONSENTED, "spring", AT)
    assert decision.result is Result.BLOCK and decision.reason.value == "screening_unavailable"
    assert screener.screen(CONSENTED, "spring", AT).result is Result.ALLOW


@pytest.mark.also_cluster
def test_an_interrupted_encryption_rotation_resumes(settings, redis_client):
    from callscreen.crypto import key_id, wrapped_key_id
    from callscreen.rotation import EncryptionRotation, RotationError
    from callscreen.store import SUBJECT_KEY_PATTERN

    settings = ringed(settings, "encryption_key", OLD_MASTER, NEW_MASTER)
    screener = build_screener(settings, redis_client)
    prepare(screener)
    job = EncryptionRotation(redis_client, screener.vault, screener.vault.masters.state, grace=0.01)
    stop = threading.Event()
    stop.set()
    progress = job.run(job.start(), stop)  # stopped before any pass
    assert not progress.finished
    with pytest.raises(RotationError, match="under way"):
        job.start("e2026a")
    progress = job.run(job.start())  # the same target again: resumes
    assert progress.finished and progress.moved == 2
    assert {wrapped_key_id(redis_client.get(k).decode()) for k in redis_client.scan_iter(match=SUBJECT_KEY_PATTERN)
            } == {key_id(NEW_MASTER[1])}
    with pytest.raises(RotationError, match="was retired"):
        job.start("e2026a")


# --- the hash key ------------------------------------------------------------------------------

OLD_HASH, NEW_HASH = ("h2026a", bytes(range(32))), ("h2026b", bytes(range(50, 82)))
WITHDRAWN = "+79995550000"


def hash_rotation_setup(settings, redis_client, monkeypatch):
    settings = ringed(settings, "hash_key", OLD_HASH, NEW_HASH)
    monkeypatch.setenv("CALLSCREEN_HASH_KEY", f"{OLD_HASH[0]}:{OLD_HASH[1].hex()},{NEW_HASH[0]}:{NEW_HASH[1].hex()}")
    screener = build_screener(settings, redis_client)
    prepare(screener)
    number = normalize(WITHDRAWN, "RU")
    screener.store.add_consent(number, Consent(id="c-withdrawn", number_digest="", purposes=("promotions",),
                                               basis=LegalBasis.CONSENT, source="sms_double_opt_in",
                                               captured_at=AT - timedelta(days=30),
                                               verified_at=AT - timedelta(days=30)), Contact("Europe/Moscow", ""))
    screener.store.withdraw_consent("c-withdrawn", "sms", at=AT - timedelta(days=1))
    return settings, screener


@pytest.mark.parametrize("store_mode", ["cluster"], indirect=True)
def test_the_hash_key_is_not_rotated_on_a_cluster_and_the_refusal_says_why(settings, redis_client, cli_env,
                                                                            monkeypatch, capsys):
    settings, screener = hash_rotation_setup(settings, redis_client, monkeypatch)
    digests = per_number_digests(redis_client)
    assert main(["keys", "rotate", "hash"]) != 0
    assert "cannot be rotated on a Redis Cluster" in capsys.readouterr().err
    assert per_number_digests(redis_client) == digests  # nothing moved, nothing half-done
    assert screener.screen(CONSENTED, "spring", AT).result is Result.ALLOW


def per_number_digests(redis_client) -> set[str]:
    from callscreen.store import subject_digest

    return {subject_digest(k.decode()) for k in redis_client.scan_iter(match="cs:n:*")}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "asyncio"])
def test_hash_key_rotation_under_load_moves_everyone_and_leaves_nothing_under_the_old_key(
        settings, redis_client, cli_env, monkeypatch, capsys, asynchronous):
    from callscreen.crypto import NumberVault, digest_under
    from callscreen.store import Store

    settings, screener = hash_rotation_setup(settings, redis_client, monkeypatch)
    numbers = (CONSENTED, OPTED_OUT, WITHDRAWN)
    old = {digest_under(OLD_HASH[1], raw) for raw in numbers}
    assert per_number_digests(redis_client) == old
    with ScreeningLoad(screener, asynchronous=asynchronous) as load:
        assert main(["keys", "rotate", "hash"]) == 0
    assert load.wrong == [] and load.answers > 40
    assert "h2026a is retired: no digest in the store is made with it" in capsys.readouterr().out

    new = {digest_under(NEW_HASH[1], raw) for raw in numbers}
    assert per_number_digests(redis_client) == new  # nothing left under the old key
    consent = screener.store.get_consent("c-withdrawn")
    assert consent.number_digest in new and consent.withdrawn_at is not None
    assert screener.store.reveal(digest_under(NEW_HASH[1], CONSENTED)) == CONSENTED
    assert screener.log.verify().ok
    time.sleep(STATE_TTL + 0.1)
    if asynchronous:  # an event-loop process reads the state on its next decision, never blocking
        asyncio.run(next_decision_reads_the_state(screener, load.url))
    assert screener.vault.previous_digest(CONSENTED) is None
    for raw, expected in ((CONSENTED, Result.ALLOW), (OPTED_OUT, Result.BLOCK), (WITHDRAWN, Result.BLOCK)):
        assert screener.screen(raw, "spring", AT).result is expected
    # with the old key alone, a copy of the store tells nothing about these numbers
    leaked = Store(redis_client, NumberVault(OLD_HASH[1], settings.encryption_key))
    for raw in numbers:
        facts = leaked.facts(normalize(raw, "RU"), AT, attempt_limit=3)
        assert facts.consents == () and facts.opt_outs == () and facts.contact.timezone == ""


def test_during_re_keying_blocks_are_written_and_read_and_other_writes_wait(settings, redis_client, monkeypatch):
    from callscreen.rotation import HashRotation
    from callscreen.store import RekeyingInProgress

    settings, screener = hash_rotation_setup(settings, redis_client, monkeypatch)
    job = HashRotation(screener.store, screener.log, screener.vault.hashes.state)
    progress = job.start()
    screener.vault.hashes.state.expire()
    assert screener.store.rekeying()
    assert screener.screen(CONSENTED, "spring", AT).result is Result.ALLOW  # read under the old digest
    screener.store.add_opt_out(normalize(CONSENTED, "RU"), OptOut(None, "call", AT))  # a block never waits
    assert screener.screen(CONSENTED, "spring", AT).reason.value == "opted_out"
    with pytest.raises(RekeyingInProgress, match="being rotated"):
        screener.store.withdraw_all(normalize(CONSENTED, "RU"), "sms")
    assert job.run(progress).finished
    screener.vault.hashes.state.expire()
    assert not screener.store.rekeying()
    assert screener.screen(CONSENTED, "spring", AT).reason.value == "opted_out"  # both copies merged
    assert len(screener.store.consents_for(screener.vault.digest(CONSENTED))) == 1


def test_an_erased_person_stays_blocked_after_a_hash_rotation(settings, redis_client, monkeypatch):
    from callscreen.erasure import MIGRATED_KEY, Eraser
    from callscreen.journal import AccessJournal
    from callscreen.rotation import HashRotation, KeyView, state_key
    from callscreen.store import ErasedSubject

    settings, screener = hash_rotation_setup(settings, redis_client, monkeypatch)
    redis_client.set(MIGRATED_KEY, "1")
    journal = AccessJournal(redis_client, settings.keyring("log_key"))
    Eraser(screener.store, screener.log, journal, None).erase(normalize(OPTED_OUT, "RU"), reason="DSR-1", by="dpo")
    job = HashRotation(screener.store, screener.log, screener.vault.hashes.state, grace=0.01)
    assert job.run(job.start()).finished
    view = KeyView.parse(job.ring, redis_client.hgetall(state_key("hash")))
    assert view.erasure == ("h2026a",) and "h2026a" in view.retired
    screener.vault.hashes.state.expire()
    assert screener.screen(OPTED_OUT, "spring", AT).reason.value == "erased_subject"
    with pytest.raises(ErasedSubject):
        screener.store.add_consent(normalize(OPTED_OUT, "RU"), Consent(
            id="c-again", number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
            source="paper", captured_at=AT))
