"""A sharded decision log: writers spread over shard streams, readers see one log in time order."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from callscreen.decision_log import STREAM, DecisionLog, LogRecord, chain_mac
from callscreen.keys import Keyring
from callscreen.log_shards import REGISTRY, LogShard, shard_of
from tests_support import TEST_LOG_KEY, store_client, writer_on

pytestmark = pytest.mark.also_cluster

SHARDS = 4
OLD_KEY, NEW_KEY = ("old", bytes(range(64, 96))), ("new", bytes(range(96, 128)))
RING = Keyring("log_key", (OLD_KEY, NEW_KEY))


def record(name: str, digest: str = "ab" * 16, result: str = "BLOCK", reason: str = "no_basis") -> LogRecord:
    return LogRecord(id=name, at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC), campaign_id="spring",
                     number_digest=digest, result=result, reason=reason, checks=[["basis", False, "none"]])


@pytest.fixture
def writers(redis_client):
    """Writers in shards 0, 1 and 3, taking turns: record i is written by writer i % 3."""
    return [writer_on(redis_client, shard) for shard in (0, 1, 3)]


def fill(writers, count: int) -> list[str]:
    names = [f"d-{n}" for n in range(count)]
    for n, name in enumerate(names):
        writer = writers[n % len(writers)]
        writer.append(record(name), writer.decision_index_commands(record(name), attempt=False))
    return names


def test_a_chain_keeps_its_shard_and_shard_0_keeps_the_unsharded_key_names(redis_client):
    log = DecisionLog(redis_client, TEST_LOG_KEY, shards=SHARDS)
    assert log.shard == log.shard and log.shard.index == shard_of(log._chain, SHARDS)
    assert LogShard(0).stream == STREAM == "cs:{log}:stream"
    assert LogShard(5).stream == "cs:{log.5}:stream" and LogShard(5).day(datetime(2026, 1, 2).date()) == (
        "cs:{log.5}:day:2026-01-02")
    assert DecisionLog(redis_client, TEST_LOG_KEY).shard.index == 0


def test_records_spread_over_shards_read_back_as_one_log_in_time_order(redis_client, writers):
    names = fill(writers, 12)
    assert {redis_client.xlen(LogShard(i).stream) for i in (0, 1, 3)} == {4}
    reader = DecisionLog(redis_client, TEST_LOG_KEY)  # configured with 1 shard: the registry names the rest
    assert [s.index for s in reader.shards()] == [0, 1, 3]
    assert [r.id for r in reader.scan(newest_first=False)] == names
    assert [r.id for r in reader.scan()] == names[::-1]
    assert [r.id for r in reader.tail(5)] == names[-5:]
    assert reader.get("d-4").shard == 1 and reader.get("d-5").shard == 3 and reader.get("nope") is None
    assert [r.id for r in reader.get_many(["d-5", "nope", "d-0", "d-1"])] == ["d-5", "d-0", "d-1"]
    assert {r.shard for r in reader.for_number("ab" * 16)} == {0, 1, 3}
    report = reader.verify()
    assert report.ok, report.problems
    assert (report.records, report.chains, report.shards) == (12, 3, 3)


def test_async_reads_find_a_record_in_any_shard(store_url, redis_client, writers):
    fill(writers, 6)

    async def read() -> tuple[str, int]:
        aclient = store_client(store_url, asyncio=True)
        try:
            found = await DecisionLog(redis_client, TEST_LOG_KEY, aclient=aclient).get_async("d-5")
            return found.id, found.shard
        finally:
            await aclient.aclose()

    assert asyncio.run(read()) == ("d-5", 3)


def test_newest_first_pages_lose_nothing_when_two_shards_hold_the_same_stream_id(redis_client, writers):
    fill(writers, 4)
    twins = [writer_on(redis_client, shard) for shard in (1, 2)]
    later = int(datetime.now(UTC).timestamp() * 1000) + 5000
    for n, twin in enumerate(twins):
        twin._next_stream_id = lambda: f"{later}-7"
        twin.append(record(f"twin-{n}"))
    writers[0]._next_stream_id = lambda: f"{later}-8"
    writers[0].append(record("newest"))  # and something newer still, in shard 0
    reader = DecisionLog(redis_client, TEST_LOG_KEY)
    seen, cursor = [], None
    while True:
        page, cursor = reader.query(limit=1, cursor=cursor)
        seen += [r.id for r in page]
        if cursor is None:
            break
    assert seen == [r.id for r in reader.scan()]
    assert len(seen) == len(set(seen)) == 7 and seen[1:3] == ["twin-1", "twin-0"]


def test_outcomes_sit_beside_their_decision_and_are_found_from_any_writer(redis_client, writers):
    fill(writers, 3)  # d-2 is in shard 3
    writers[0].record_outcome("d-2", "ANSWER", 30, "16")
    assert redis_client.hexists(LogShard(3).outcomes, "d-2")
    assert DecisionLog(redis_client, TEST_LOG_KEY).outcome_of("d-2")["answered_seconds"] == 30


def test_tampering_in_one_shard_is_named_with_its_shard(redis_client, writers):
    fill(writers, 9)
    victim = LogShard(3).stream
    redis_client.xdel(victim, redis_client.xrange(victim)[1][0])
    problems = DecisionLog(redis_client, TEST_LOG_KEY).verify().problems
    assert problems == [f"shard 3: chain {writers[2]._chain}: seq 1 is followed by seq 3 "
                        "(1 records missing or reordered)"]


def test_a_record_moved_into_another_shard_breaks_both_chains(redis_client, writers):
    fill(writers, 6)
    stream_id, fields = redis_client.xrange(LogShard(1).stream)[-1]
    redis_client.xdel(LogShard(1).stream, stream_id)
    redis_client.xadd(LogShard(3).stream, fields, id=b"9999999999999-0")
    problems = DecisionLog(redis_client, TEST_LOG_KEY).verify().problems
    assert any(p.startswith("shard 1: ") and "head is 2" in p for p in problems)
    assert any(p.startswith("shard 3: ") and "starts at seq 2" in p for p in problems)


def test_export_merges_the_shards_in_time_order(cli, redis_client, writers, tmp_path, monkeypatch):
    names = fill(writers, 9)
    monkeypatch.setenv("CALLSCREEN_LOG_SHARDS", str(SHARDS))
    code, _out, err = cli("log", "export", "--out", str(tmp_path / "log.jsonl"))
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == names
    assert [line["shard"] for line in lines] == [0, 1, 3] * 3
    code, out, _ = cli("log", "verify")
    assert code == 0 and "across 4 shards" in out  # the 4 configured; shard 2 is empty
    code, out, _ = cli("log", "tail", "-n", "4")
    assert code == 0 and [line.split()[1] for line in out.splitlines()[1:]] == names[-4:]


def test_verify_through_the_cli_names_the_tampered_shard(cli, redis_client, writers):
    fill(writers, 6)
    stream_id, fields = redis_client.xrange(LogShard(1).stream)[0]
    body = json.loads(fields[b"body"])
    body["result"] = "ALLOW"
    canonical = json.dumps(body, separators=(",", ":"), sort_keys=True)
    redis_client.xadd(LogShard(1).stream, {**fields, b"body": canonical}, id=b"9999999999999-0")
    redis_client.xdel(LogShard(1).stream, stream_id)
    code, out, _ = cli("log", "verify")
    assert code == 6
    assert "TAMPERED: shard 1: 9999999999999-0 (d-1): MAC does not match its content" in out


def test_rotation_moves_every_shard_and_each_keeps_its_history(redis_client):
    writers = [writer_on(redis_client, shard, RING) for shard in (0, 2, 3)]
    fill(writers, 6)
    assert writers[0].rotate_key("new") == "old"
    assert set(writers[0].epochs().values()) == {"new"}
    fill(writers, 6)  # writers still on the old key learn the new one from their shard
    kids = {i: [f[b"kid"].decode() for _s, f in redis_client.xrange(LogShard(i).stream)] for i in (0, 2, 3)}
    assert all(k == ["old", "old", "new", "new"] for k in kids.values())
    histories = {i: redis_client.hgetall(LogShard(i).epochs) for i in (0, 2, 3)}
    assert len({h[b"new"] for h in histories.values()}) == 3  # each shard moved at its own place
    with pytest.raises(ValueError, match="already in force"):
        writers[0].rotate_key("new")
    report = DecisionLog(redis_client, RING).verify()
    assert report.ok, report.problems


def test_a_shard_behind_on_the_rotation_is_caught_up_by_running_it_again(redis_client):
    writers = [writer_on(redis_client, shard, RING) for shard in (0, 2)]
    fill(writers, 4)
    rotator = DecisionLog(redis_client, RING)
    rotator._move_epoch(LogShard(0), "new")  # a rotation cut short after shard 0
    assert rotator.epochs() == {0: "new", 2: "old"} and rotator.epoch() == "old"
    writers[1].append(record("still-old"))  # shard 2 still accepts its key in force: the old one
    assert DecisionLog(redis_client, RING).get("still-old").key_id == "old"
    assert rotator.rotate_key("new") == "old"
    assert rotator.epoch() == "new"
    fill(writers, 2)
    assert DecisionLog(redis_client, RING).verify().ok


def test_a_shard_started_after_a_rotation_never_writes_under_the_retired_key(redis_client):
    writer_on(redis_client, 0, RING).append(record("d-0"))
    DecisionLog(redis_client, RING).rotate_key("new")  # configured with 1 shard: it moves shard 0 only
    assert redis_client.get(LogShard(2).epoch) is None
    late = writer_on(redis_client, 2, RING)  # its first append joins shard 2, which adopts shard 0's epoch
    late.append(record("d-1"))
    assert redis_client.get(LogShard(2).epoch) == b"new"
    assert DecisionLog(redis_client, RING).get("d-1").key_id == "new"
    assert DecisionLog(redis_client, RING).verify().ok


def test_a_record_under_the_old_key_forged_into_a_moved_shard_is_reported(redis_client):
    writers = [writer_on(redis_client, shard, RING) for shard in (0, 1)]
    fill(writers, 4)
    writers[0].rotate_key("new")
    shard = LogShard(1)
    body = record("forged").body()
    sid = "9999999999999-0"
    mac = chain_mac(OLD_KEY[1], "forger", 1, "genesis", body, sid)
    redis_client.xadd(shard.stream, {"v": "2", "id": "forged", "chain": "forger", "seq": 1, "prev": "genesis",
                                     "mac": mac, "body": body, "kid": "old"}, id=sid)
    redis_client.hset(shard.heads, "forger", f"1:{mac}")
    problems = DecisionLog(redis_client, RING).verify().problems
    assert problems == [f"shard 1: {sid} (forged): MAC'd under key old, not the key in force there (new)"]


def test_retention_removes_from_every_shard_and_leaves_each_chain_verifiable(redis_client, writers):
    fill(writers, 9)
    reader = DecisionLog(redis_client, TEST_LOG_KEY)
    doomed = [r for r in reader.scan(newest_first=False) if r.id in ("d-0", "d-1", "d-4", "d-5")]
    assert reader.remove(doomed) == 4
    assert reader.get("d-4") is None and reader.get("d-3") is not None
    assert redis_client.hexists(LogShard(1).trimmed, writers[1]._chain)  # d-1, d-4: the start of its chain
    assert redis_client.hlen(LogShard(3).purged) == 1  # d-5: the middle of shard 3's chain
    assert reader.verify().ok
    removed = reader.purge(now=datetime.now(UTC) + reader.retention + timedelta(seconds=1))
    assert removed == 5 and sum(redis_client.xlen(LogShard(i).stream) for i in (0, 1, 3)) == 0
    fill(writers, 3)
    assert reader.verify().ok


def test_every_decision_is_counted_in_its_shard_by_quarter_hour(redis_client, writers):
    writers[0].append(record("d-a", result="ALLOW", reason="consent"))
    writers[1].append(record("d-b"))
    writers[1].append(record("d-c"))
    writers[2].append_summary("scrub", {"rows": 1})  # not a decision: not counted
    now = datetime.now(UTC)
    quarter = (now.hour * 60 + now.minute) // 15
    days = {i: redis_client.hgetall(LogShard(i).day(now.date())) for i in (0, 1, 3)}
    if not days[0]:  # the minute turned into another day between the append and now
        pytest.skip("appended on the previous UTC day")
    assert {k.decode().split("|", 1)[1]: int(v) for k, v in days[0].items()} == {"ALLOW|consent": 1}
    assert {k.decode(): int(v) for k, v in days[1].items()} == {f"{quarter}|BLOCK|no_basis": 2}
    assert days[3] == {}
    ttl = redis_client.ttl(LogShard(1).day(now.date()))
    assert 41 * 86400 < ttl <= 44 * 86400
    assert redis_client.get(LogShard(1).counted) == b"0-0"  # counted from its first record


def test_the_registry_is_joined_once_per_writer_not_per_decision(redis_client):
    writer = writer_on(redis_client, 2)
    writer.append(record("d-0"))
    redis_client.delete(REGISTRY)
    writer.append(record("d-1"))
    assert redis_client.smembers(REGISTRY) == set()


def test_an_asyncio_writer_joins_its_shard_and_appends_there(store_url, redis_client):
    writer = writer_on(redis_client, 3)

    async def write() -> None:
        writer.aclient = store_client(store_url, asyncio=True)
        try:
            for n in range(3):
                await writer.append_async(record(f"d-{n}"))
        finally:
            await writer.aclient.aclose()

    asyncio.run(write())
    assert redis_client.smembers(REGISTRY) == {b"3"} and redis_client.xlen(LogShard(3).stream) == 3
    assert DecisionLog(redis_client, TEST_LOG_KEY).verify().ok


def test_keys_status_names_shards_behind_on_a_rotation_and_rotating_again_finishes_it(cli, redis_client,
                                                                                     monkeypatch):
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", ",".join(f"{kid}:{key.hex()}" for kid, key in RING))
    writers = [writer_on(redis_client, shard, RING) for shard in (0, 2)]
    fill(writers, 4)
    DecisionLog(redis_client, RING)._move_epoch(LogShard(0), "new")  # a rotation cut short after shard 0
    code, out, _ = cli("keys", "status")
    log_line = next(line for line in out.splitlines() if line.startswith("log "))
    assert code == 0 and "in force old" in log_line and "rotation unfinished: shards 2 still on it" in log_line
    code, out, _ = cli("keys", "rotate", "log")
    assert code == 0 and "log key new is in force (was old)" in out
    code, out, _ = cli("keys", "status", "--json")
    assert json.loads(out)["log"] == {"configured": ["old", "new"], "in_force": "new",
                                      "shards": {"0": "new", "2": "new"}}
    assert cli("log", "verify")[0] == 0


def test_a_configured_shard_never_written_reads_as_on_shard_0s_key(redis_client):
    writer_on(redis_client, 0, RING).append(record("d-0"))
    DecisionLog(redis_client, RING).rotate_key("new")  # configured with 1 shard: shards 1-3 untouched
    wide = DecisionLog(redis_client, RING, shards=SHARDS)
    assert wide.epochs() == dict.fromkeys(range(SHARDS), "new") and wide.epoch() == "new"
