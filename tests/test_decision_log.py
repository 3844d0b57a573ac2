"""The decision log proves what was decided: chained, MAC'd, and checked by verify()."""

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from callscreen.decision_log import HEADS, STREAM, TRIM_BATCH, DecisionLog, LogRecord, LogWriteError
from callscreen.store import StoreError, connect, number_key, run_pipeline
from tests_support import LOG_FAULTS, TEST_LOG_KEY, on_every_primary, refusing_log_writes, store_client

pytestmark = pytest.mark.also_cluster


def record(n: int, at: datetime | None = None) -> LogRecord:
    return LogRecord(id=f"d-{n}", at=at or datetime(2026, 11, 20, 10, 0, tzinfo=UTC), campaign_id="spring",
                     number_digest="ab" * 16, result="BLOCK", reason="no_basis", checks=[["basis", False, "none"]])


@pytest.fixture
def log(redis_client):
    return DecisionLog(redis_client, TEST_LOG_KEY)


def test_appended_records_read_back_and_verify(log):
    for n in range(5):
        log.append(record(n))
    assert log.get("d-3").id == "d-3"
    assert [r.seq for r in log.tail(5)] == [1, 2, 3, 4, 5]
    report = log.verify()
    assert report.ok and report.records == 5 and report.chains == 1


def test_altering_a_record_is_detected(log, redis_client):
    for n in range(3):
        log.append(record(n))
    stream_id, fields = redis_client.xrange(STREAM)[1]
    body = json.loads(fields[b"body"])
    body["result"] = "ALLOW"
    canonical = json.dumps(body, separators=(",", ":"), sort_keys=True)
    redis_client.xadd(STREAM, {**fields, b"body": canonical}, id=b"9999999999999-0")
    redis_client.xdel(STREAM, stream_id)
    problems = log.verify().problems
    assert any("MAC does not match" in p for p in problems)


def test_deleting_a_record_in_the_middle_is_detected(log, redis_client):
    for n in range(4):
        log.append(record(n))
    redis_client.xdel(STREAM, redis_client.xrange(STREAM)[1][0])
    assert any("missing" in p for p in log.verify().problems)


def test_truncating_the_tail_is_detected_through_the_chain_head(log, redis_client):
    for n in range(4):
        log.append(record(n))
    redis_client.xdel(STREAM, redis_client.xrange(STREAM)[-1][0])
    assert any("head" in p for p in log.verify().problems)


def test_a_chain_head_whose_mac_is_not_the_last_records_is_detected(log, redis_client):
    for n in range(3):
        log.append(record(n))
    assert log.verify().ok
    redis_client.hset(HEADS, log._chain, "3:" + "0" * 64)  # right sequence number, wrong MAC
    problems = log.verify().problems
    assert problems == [f"chain {log._chain}: ends at seq 3 but its head is 3"]


def test_a_forged_record_without_the_key_does_not_verify(log, redis_client):
    log.append(record(1))
    forger = DecisionLog(redis_client, b"f" * 32)
    forger.append(record(2))
    assert any("MAC does not match" in p for p in log.verify().problems)


def test_concurrent_writers_keep_every_chain_intact(store_url, redis_client):
    def write(count: int) -> None:
        client = store_client(store_url)
        writer = DecisionLog(client, TEST_LOG_KEY)
        writer._ensure_chain()
        writer._chain += f":{threading.get_ident()}"
        for n in range(count):
            writer.append(record(n))

    threads = [threading.Thread(target=write, args=(50,)) for _ in range(4)]
    shared = DecisionLog(redis_client, TEST_LOG_KEY)
    threads += [threading.Thread(target=lambda: [shared.append(record(n)) for n in range(50)]) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = shared.verify()
    assert report.ok, report.problems
    assert report.records == 300 and report.chains == 5


def test_a_writer_whose_head_moved_rechains_instead_of_forking(log, redis_client):
    log.append(record(1))
    redis_client.hset(HEADS, log._chain, "7:" + "0" * 64)  # another process claimed the chain name
    log.append(record(2))
    last = log.tail(1)[0]
    assert last.seq == 8 and last.prev == "0" * 64


def test_purge_keeps_the_chain_verifiable_from_where_it_was_cut(log):
    old = datetime.now(UTC) - timedelta(days=log.retention.days + 3)
    # stream ids are arrival times, so age the cut-off instead of the records
    for n in range(3):
        log.append(record(n, old))
    removed = log.purge(now=datetime.now(UTC) + log.retention + timedelta(seconds=1))
    assert removed == 3
    log.append(record(9))
    assert log.verify().ok


def test_an_unreachable_store_raises_log_write_error(store_url):
    dead = connect("redis://127.0.0.1:1/0")
    with pytest.raises(StoreError):
        DecisionLog(dead, TEST_LOG_KEY).append(record(1))


def test_summary_and_outcome_records_join_the_chain(log):
    log.append(record(1))
    log.append_summary("scrub", {"rows": 10, "blocked": 3}, campaign_id="spring")
    outcome = log.record_outcome("d-1", "ANSWER", 42, "16")
    assert outcome.extra["decision_id"] == "d-1"
    assert log.outcome_of("d-1")["answered_seconds"] == 42
    assert log.verify().ok
    with pytest.raises(KeyError):
        log.record_outcome("d-missing", "ANSWER", 1, "16")


# --- an append reports every failure ------------------------------------------------------------


def _append_both_ways(log: DecisionLog, store_url, entry: LogRecord, extra=()) -> None:
    """Append with the sync client, then with an asyncio client: each must raise on its own."""
    with pytest.raises(LogWriteError):
        log.append(entry, list(extra))

    async def appended_async() -> None:
        log.aclient = store_client(store_url, asyncio=True)
        try:
            await log.append_async(entry, list(extra))
        finally:
            await log.aclient.aclose()

    with pytest.raises(LogWriteError):
        asyncio.run(appended_async())


@pytest.mark.parametrize("fault", LOG_FAULTS)
def test_an_append_the_store_refuses_raises_and_writes_nothing(log, redis_client, store_url, fault):
    log.append(record(1))
    with refusing_log_writes(redis_client, fault):
        _append_both_ways(log, store_url, record(2))
    assert redis_client.xlen(STREAM) == 1 and log.get("d-2") is None
    log.append(record(3))  # the writer re-chains once the store takes writes again
    assert log.verify().ok


def test_a_failed_index_write_in_the_same_round_trip_fails_the_append(log, redis_client, store_url):
    entry = record(1)
    index = log.decision_index_commands(entry, attempt=True)
    redis_client.set(index[0][3], "not a sorted set")  # the number's decisions key has the wrong type
    _append_both_ways(log, store_url, entry, index)


def test_an_append_that_times_out_raises(log, redis_client, store_url):
    log.client = connect(store_url, timeout=0.2)
    on_every_primary(redis_client, "CLIENT", "PAUSE", 10_000, "WRITE")  # reads answer, writes wait (until UNPAUSE)
    try:
        with pytest.raises(StoreError):
            log.append(record(1))
    finally:
        on_every_primary(redis_client, "CLIENT", "UNPAUSE")
    log.client = redis_client
    log.append(record(2))
    assert log.verify().ok


def test_index_writes_trim_what_is_past_its_horizon_a_bounded_batch_at_a_time(log, redis_client):
    now = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    attempts = number_key("ab" * 16, "attempts")
    stale = int((now - timedelta(days=9)).timestamp() * 1000)
    redis_client.zadd(attempts, {f"d-old-{i}": stale - i for i in range(150)})
    for n, expected_stale in enumerate((150 - TRIM_BATCH, 150 - 2 * TRIM_BATCH, 0)):
        new = record(100 + n, now + timedelta(seconds=n))
        run_pipeline(redis_client, log.decision_index_commands(new, attempt=True))
        assert redis_client.zcount(attempts, "-inf", stale) == expected_stale
        assert redis_client.zcard(attempts) == expected_stale + n + 1  # the new attempts stay
