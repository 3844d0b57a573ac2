"""An allowed call's outcome takes its decision from the memory of the ALLOWs this process logged,
and reads it back from the store only when that memory does not hold it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from callscreen.decision_log import DecisionLog, LogRecord, LogWriteError
from callscreen.durability import DurabilityUnconfirmed, confirmation
from callscreen.log_shards import LogShard
from callscreen.recent_allows import DecisionRef, RecentAllows
from callscreen.store import number_key
from tests_support import LOG_FAULTS, TEST_LOG_KEY, refusing_log_writes, store_client, writer_on

DIGEST = "cd" * 16
SHARD = 3  # not shard 0: the outcome must find its decision's shard in the memory too


def decision(name: str, result: str = "ALLOW") -> LogRecord:
    return LogRecord(id=name, at=datetime.now(UTC), campaign_id="spring", number_digest=DIGEST,
                     number_sealed="sealed-number", result=result,
                     reason="consent" if result == "ALLOW" else "no_basis",
                     checks=[["basis", result == "ALLOW", "c-1"]], origin="agi")


def run(store_url: str, logs: list[DecisionLog], steps: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``steps`` in one event loop, each log with its own asyncio client."""
    async def body() -> Any:
        for log in logs:
            log.aclient = store_client(store_url, asyncio=True)
        try:
            return await steps()
        finally:
            for log in logs:
                await log.aclient.aclose()

    return asyncio.run(body())


async def append(log: DecisionLog, record: LogRecord) -> None:
    """Append a decision the way a screening does: its index writes in the round trip, confirmed on disk."""
    await log.append_async(record, log.decision_index_commands(record, attempt=record.result == "ALLOW"),
                           confirmation(0, 2000))


def unindex(redis_client: Any, record_id: str, shard: int = SHARD) -> None:
    """Make the decision unreadable by id: a read-back of it now finds nothing."""
    assert redis_client.hdel(LogShard(shard).ids, record_id) == 1


def content(record: LogRecord) -> str:
    """A record's body apart from its own id and time."""
    return replace(record, id="o-x", at=datetime(2026, 1, 1, tzinfo=UTC)).body()


@pytest.fixture
def log(redis_client) -> DecisionLog:
    return writer_on(redis_client, SHARD)


@pytest.fixture
def reader(redis_client) -> DecisionLog:
    """Another process's view of the log: it never logged the decisions, so it reads them back."""
    return DecisionLog(redis_client, TEST_LOG_KEY, remember_allows=0)


@pytest.mark.parametrize("dialstatus", ["ANSWER", "CHANUNAVAIL"])
def test_an_outcome_after_an_allow_this_process_logged_is_the_read_back_outcome_without_the_read_back(
        log, reader, redis_client, store_url, dialstatus):
    async def steps() -> tuple[LogRecord, LogRecord]:
        await append(log, decision("d-1"))
        stored = await reader.get_async("d-1")
        expected, _ = reader.outcome_record(stored, dialstatus, 42, "16")
        unindex(redis_client, "d-1")
        assert await reader.get_async("d-1") is None  # a read-back would find no decision now
        return expected, await log.record_outcome_async("d-1", dialstatus, 42, "16")

    expected, outcome = run(store_url, [log, reader], steps)
    assert content(outcome) == content(expected)
    assert (outcome.campaign_id, outcome.number_digest, outcome.extra["decision_id"]) == ("spring", DIGEST, "d-1")
    written = reader.get(outcome.id)
    assert written.body() == outcome.body() and written.kind == "outcome"
    assert redis_client.hexists(LogShard(SHARD).outcomes, "d-1")  # beside its decision, in its shard
    assert reader.outcome_of("d-1") == expected.extra
    attempts = redis_client.zrange(number_key(DIGEST, "attempts"), 0, -1)
    assert (b"d-1" in attempts) == (dialstatus == "ANSWER")  # a call that never left is no attempt
    assert reader.verify().ok


def test_an_outcome_for_an_allow_another_process_logged_is_read_back(log, reader, redis_client, store_url):
    async def steps() -> LogRecord:
        await append(log, decision("d-1"))
        return await reader.record_outcome_async("d-1", "ANSWER", 30, "16")

    outcome = run(store_url, [log, reader], steps)
    assert outcome.extra["decision_id"] == "d-1" and outcome.number_digest == DIGEST
    assert redis_client.hexists(LogShard(SHARD).outcomes, "d-1")
    other = writer_on(redis_client, 1)

    async def unreadable() -> None:
        await append(log, decision("d-2"))
        unindex(redis_client, "d-2")
        await other.record_outcome_async("d-2", "ANSWER", 30, "16")

    with pytest.raises(KeyError):  # it read the decision back: there is none to read now
        run(store_url, [log, other], unreadable)


def test_an_outcome_for_a_block_is_read_back(log, redis_client, store_url):
    async def steps() -> LogRecord:
        await append(log, decision("d-1", "BLOCK"))
        await append(log, decision("d-2", "BLOCK"))
        assert len(log.recent_allows) == 0
        outcome = await log.record_outcome_async("d-1", "", 0, "")
        unindex(redis_client, "d-2")
        with pytest.raises(KeyError):
            await log.record_outcome_async("d-2", "", 0, "")
        return outcome

    assert run(store_url, [log], steps).extra["decision_id"] == "d-1"


def test_an_outcome_for_an_unknown_decision_raises_key_error(log, store_url):
    async def steps() -> None:
        await append(log, decision("d-1"))
        await log.record_outcome_async("d-unknown", "ANSWER", 1, "16")

    with pytest.raises(KeyError):
        run(store_url, [log], steps)
    assert len(log.recent_allows) == 1


def test_a_second_outcome_for_the_same_decision_is_read_back(log, reader, redis_client, store_url):
    async def steps() -> list[LogRecord]:
        await append(log, decision("d-1"))
        first = await log.record_outcome_async("d-1", "ANSWER", 30, "16")
        second = await log.record_outcome_async("d-1", "ANSWER", 31, "16")  # read back: it is still there
        unindex(redis_client, "d-1")
        with pytest.raises(KeyError):  # the first outcome took the remembered decision
            await log.record_outcome_async("d-1", "ANSWER", 32, "16")
        return [first, second]

    first, second = run(store_url, [log], steps)
    assert content(replace(first, extra=second.extra)) == content(second)
    assert reader.outcome_of("d-1")["answered_seconds"] == 31


@pytest.mark.parametrize("fault", LOG_FAULTS)
def test_an_allow_whose_append_failed_is_not_remembered_and_its_outcome_is_an_unknown_decision(
        redis_client, store_url, fault):
    log = DecisionLog(redis_client, TEST_LOG_KEY)  # shard 0: where the lua_error fault is

    async def refused() -> None:
        with refusing_log_writes(redis_client, fault):
            await append(log, decision("d-1"))

    with pytest.raises(LogWriteError):
        run(store_url, [log], refused)
    assert len(log.recent_allows) == 0
    with pytest.raises(KeyError):
        run(store_url, [log], lambda: log.record_outcome_async("d-1", "ANSWER", 30, "16"))


def test_an_allow_the_store_did_not_confirm_is_not_remembered(log, redis_client, store_url):
    async def steps() -> None:
        record = decision("d-1")
        with pytest.raises(DurabilityUnconfirmed):  # no replica: WAIT 1 counts none
            await log.append_async(record, log.decision_index_commands(record, attempt=True), [("WAIT", 1, 10)])
        assert await log.get_async("d-1") is not None  # written, but not an ALLOW anyone was told
        assert len(log.recent_allows) == 0
        unindex(redis_client, "d-1")
        with pytest.raises(KeyError):
            await log.record_outcome_async("d-1", "ANSWER", 30, "16")

    run(store_url, [log], steps)


def test_an_allow_whose_index_write_failed_is_not_remembered(log, redis_client, store_url):
    record = decision("d-1")
    index = log.decision_index_commands(record, attempt=True)
    redis_client.set(index[0][3], "not a sorted set")  # the number's decisions key has the wrong type

    with pytest.raises(LogWriteError):
        run(store_url, [log], lambda: log.append_async(record, index))
    assert len(log.recent_allows) == 0


def test_the_memory_drops_the_oldest_allow_past_its_bound(redis_client, store_url):
    log = writer_on(redis_client, SHARD)
    log.recent_allows = RecentAllows(3)

    async def steps() -> list[str]:
        for n in range(4):
            await append(log, decision(f"d-{n}"))
        assert len(log.recent_allows) == 3
        found = []
        for n in range(4):
            unindex(redis_client, f"d-{n}")
            try:
                found.append((await log.record_outcome_async(f"d-{n}", "ANSWER", n, "16")).extra["decision_id"])
            except KeyError:
                found.append("unknown")
        return found

    assert run(store_url, [log], steps) == ["unknown", "d-1", "d-2", "d-3"]
    assert len(log.recent_allows) == 0


def test_the_sync_path_neither_remembers_nor_uses_the_memory(log, redis_client):
    record = decision("d-1")
    log.append(record, log.decision_index_commands(record, attempt=True))
    assert len(log.recent_allows) == 0
    log.recent_allows.keep(DecisionRef("d-1", SHARD, "spring", DIGEST))
    unindex(redis_client, "d-1")
    with pytest.raises(KeyError):
        log.record_outcome("d-1", "ANSWER", 30, "16")


def test_a_forked_worker_starts_with_an_empty_memory(log, store_url):
    run(store_url, [log], lambda: append(log, decision("d-1")))
    pid = os.fork()
    if pid == 0:  # the child: nothing of its parent's, and a memory of its own that works
        code = 1
        try:
            empty = len(log.recent_allows) == 0 and log.recent_allows.take("d-1") is None
            log.recent_allows.keep(DecisionRef("d-9", SHARD, "spring", DIGEST))
            code = 0 if empty and log.recent_allows.take("d-9") is not None else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert log.recent_allows.take("d-1") == DecisionRef("d-1", SHARD, "spring", DIGEST)


def test_a_memory_of_no_entries_keeps_nothing_and_a_negative_bound_is_refused():
    memory = RecentAllows(0)
    memory.keep(DecisionRef("d-1", 0, "spring", DIGEST))
    assert len(memory) == 0 and memory.take("d-1") is None
    with pytest.raises(ValueError, match="negative"):
        RecentAllows(-1)
