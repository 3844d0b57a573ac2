"""Whatever is done to the stored log, `verify`, `tail` and `export` name the damage and go on.

Format 1 records (written before stream ids were bound into the MAC) still verify; format 2
records also bind their stream id. Random byte mutations of random records never produce a
traceback and are always reported as tampering.
"""

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callscreen.cli.context import EXIT_OK, EXIT_TAMPERED
from callscreen.decision_log import HEADS, IDS, STREAM, DamagedEntry, DecisionLog, LogRecord, chain_mac
from tests_support import TEST_LOG_KEY

pytestmark = pytest.mark.also_cluster

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def decision(n: int) -> LogRecord:
    return LogRecord(id=f"d-{n}", at=AT, campaign_id="весна", number_digest="ab" * 16, result="BLOCK",
                     reason="no_basis", basis={"kind": "consent", "source": "paper", "share": 0.5},
                     checks=[["basis", False, "none"], ["hours", True, "ok"]])


def append_format_1(client, record: LogRecord, chain: str, seq: int, prev: str) -> str:
    """Append a record exactly as writers before format 2 did: server-assigned stream id, MAC
    without it, no ``v`` field."""
    body = record.body()
    mac = chain_mac(TEST_LOG_KEY, chain, seq, prev, body)
    stream_id = client.xadd(STREAM, {"id": record.id, "chain": chain, "seq": seq, "prev": prev, "mac": mac,
                                     "body": body})
    client.hset(HEADS, chain, f"{seq}:{mac}")
    client.hset(IDS, record.id, stream_id)
    return mac


@pytest.fixture
def log(redis_client):
    return DecisionLog(redis_client, TEST_LOG_KEY)


@pytest.fixture
def mixed_log(log, redis_client):
    """Two format 1 records of an old writer, then format 2 records of every kind."""
    mac = append_format_1(redis_client, decision(1), "old-host:1:abcdef", 1, "genesis")
    append_format_1(redis_client, decision(2), "old-host:1:abcdef", 2, mac)
    log.append(decision(3))
    log.append_summary("scrub", {"client": "crm", "numbers": 10, "allowed": 7, "blocked": 3}, campaign_id="spring")
    log.record_outcome("d-3", "ANSWER", 42, "16")
    log.append(decision(4))
    assert log.verify().ok, log.verify().problems
    return log


def rewrite(client, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
    """Replace the stream with ``entries`` (as someone with write access to the store can)."""
    client.delete(STREAM)
    for stream_id, fields in sorted(entries, key=lambda e: tuple(int(p) for p in e[0].split(b"-"))):
        client.xadd(STREAM, fields, id=stream_id)


def tamper(client, index: int, change) -> None:
    entries = client.xrange(STREAM)
    stream_id, fields = entries[index]
    entries[index] = change(stream_id, dict(fields))
    rewrite(client, entries)


def test_a_log_of_format_1_and_format_2_records_verifies(mixed_log, redis_client):
    fields = [f for _, f in redis_client.xrange(STREAM)]
    assert [f.get(b"v") for f in fields] == [None, None, b"2", b"2", b"2", b"2"]
    report = mixed_log.verify()
    assert report.ok and report.records == 6 and report.chains == 2


def test_every_format_2_stream_id_is_the_one_its_mac_covers(mixed_log, redis_client):
    for stream_id, fields in redis_client.xrange(STREAM)[2:]:
        expected = chain_mac(TEST_LOG_KEY, fields[b"chain"].decode(), int(fields[b"seq"]), fields[b"prev"].decode(),
                             fields[b"body"].decode(), stream_id.decode())
        assert fields[b"mac"].decode() == expected


def test_changing_one_digit_of_a_stream_id_is_detected(mixed_log, redis_client):
    def shift(stream_id, fields):
        millis, sub = stream_id.split(b"-")
        return millis + b"-" + str(int(sub) + 1).encode(), fields

    tamper(redis_client, 5, shift)
    problems = mixed_log.verify().problems
    assert len(problems) == 1 and "(d-4): MAC does not match" in problems[0]


def test_a_writer_behind_the_stream_picks_an_id_above_it(log, redis_client):
    redis_client.xadd(STREAM, {"x": "1"}, id=f"{10**15}-5")  # far in the future
    redis_client.xdel(STREAM, f"{10**15}-5")
    stream_id = log.append(decision(1))
    assert stream_id == f"{10**15}-6"
    assert log.verify().ok


@pytest.mark.parametrize(("what", "change", "named"), [
    ("body not JSON", lambda f: {**f, b"body": f[b"body"][:-1]}, "body is not valid JSON"),
    ("field of the wrong type", lambda f: {**f, b"body": f[b"body"].replace(b'"checks":[', b'"checks":[7,')},
     "'checks' is not a list of lists"),
    ("basis a number", lambda f: {**f, b"body": json.dumps({**json.loads(f[b"body"]), "basis": 5},
                                                            separators=(",", ":"), sort_keys=True).encode()},
     "'basis' is int, not dict or null"),
    ("body key renamed", lambda f: {**f, b"body": f[b"body"].replace(b'"reason"', b'"raison"')},
     "keys missing ['reason'], unexpected ['raison']"),
    ("entry field renamed", lambda f: {(b"mak" if k == b"mac" else k): v for k, v in f.items()},
     "fields missing ['mac'], unexpected ['mak']"),
    ("seq not a number", lambda f: {**f, b"seq": b"two"}, "seq 'two' is not a positive number"),
    ("unknown format", lambda f: {**f, b"v": b"9"}, "unknown record format '9'"),
    ("outer id differs", lambda f: {**f, b"id": b"d-99"}, "id field 'd-99' is not the body's id 'd-3'"),
    ("not UTF-8", lambda f: {**f, b"body": b"\xff" + f[b"body"]}, "body is not valid UTF-8"),
])
def test_an_unreadable_record_is_named_and_the_check_goes_on(mixed_log, redis_client, cli, tmp_path, what, change,
                                                              named):
    tamper(redis_client, 2, lambda sid, f: (sid, change(f)))
    damaged = redis_client.xrange(STREAM)[2][0].decode()
    report = mixed_log.verify()
    assert report.records == 6
    assert any(p.startswith(damaged) and named in p for p in report.problems), report.problems

    code, out, err = cli("log", "verify")
    assert code == EXIT_TAMPERED and f"TAMPERED: {damaged}" in out and named in out
    code, out, err = cli("log", "tail", "-n", "10")
    # a header line, five records and the damaged one
    assert code == EXIT_TAMPERED and out.count("\n") == 7 and f"TAMPERED: {damaged}" in out
    assert "d-4" in out  # the records after it are still shown
    code, _, err = cli("log", "export", "--out", str(tmp_path / "log.jsonl"))
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert code == EXIT_TAMPERED and len(lines) == 6 and named in err
    assert lines[2]["stream_id"] == damaged and "tampered" in lines[2] and "body" in lines[2]["fields"]
    assert all("tampered" not in line for i, line in enumerate(lines) if i != 2)


def test_an_intact_log_tails_and_exports_with_exit_0(mixed_log, cli, tmp_path):
    assert cli("log", "tail", "--json", "-n", "3")[0] == EXIT_OK
    assert cli("log", "export", "--out", str(tmp_path / "log.jsonl"))[0] == EXIT_OK


def test_application_reads_skip_a_damaged_record(mixed_log, redis_client):
    tamper(redis_client, 5, lambda sid, f: (sid, {**f, b"body": b"{"}))
    assert mixed_log.get("d-4") is None
    assert [r.id for r in mixed_log.get_many(["d-1", "d-4", "d-3"])] == ["d-1", "d-3"]
    assert "d-4" not in [r.id for r in mixed_log.scan()]
    assert isinstance(mixed_log.tail(1)[0], DamagedEntry)


def test_purge_removes_a_damaged_record_without_stopping(mixed_log, redis_client):
    tamper(redis_client, 2, lambda sid, f: (sid, {**f, b"body": b"[]"}))
    assert mixed_log.purge(now=datetime(2100, 1, 1, tzinfo=UTC)) == 6
    assert redis_client.xlen(STREAM) == 0


# --- random mutations -------------------------------------------------------------------------

TARGETS = ("value", "name", "stream_id")


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_byte_mutations_are_always_reported_and_never_crash(mixed_log, redis_client, cli, tmp_path, store_mode,
                                                                  data):
    if store_mode == "cluster":
        pytest.skip("this checks reading, not the store: the single server covers it")
    pristine = redis_client.dump(STREAM)
    entries = redis_client.xrange(STREAM)
    # format 1 records (the first two) do not bind their stream id: that is not claimed for them
    target = data.draw(st.sampled_from(TARGETS))
    index = data.draw(st.integers(2 if target == "stream_id" else 0, len(entries) - 1))
    stream_id, fields = entries[index]
    if target == "stream_id":
        position = data.draw(st.sampled_from([i for i, c in enumerate(stream_id) if c != ord("-")]))
        new = data.draw(st.sampled_from(b"0123456789"))
        mutated_id = stream_id[:position] + bytes([new]) + stream_id[position + 1:]
        assume(mutated_id != stream_id)
        assume(mutated_id.split(b"-")[0].lstrip(b"0") and mutated_id not in {e[0] for e in entries})
        entries[index] = (mutated_id, fields)
    else:
        name = data.draw(st.sampled_from(sorted(fields)))
        original = name if target == "name" else fields[name]
        position = data.draw(st.integers(0, len(original) - 1))
        new = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
        mutated = original[:position] + bytes([new]) + original[position + 1:]
        if target == "name":
            assume(mutated not in fields)
            fields = {(mutated if k == name else k): v for k, v in fields.items()}
        else:
            fields = {**fields, name: mutated}
        entries[index] = (stream_id, fields)
    try:
        rewrite(redis_client, entries)
        report = mixed_log.verify()
        assert not report.ok and report.records == 6
        code, out, _ = cli("log", "verify")
        assert code == EXIT_TAMPERED and "TAMPERED" in out
        assert cli("log", "tail", "-n", "10")[0] == EXIT_TAMPERED
        assert cli("log", "export", "--out", str(tmp_path / "log.jsonl"))[0] == EXIT_TAMPERED
    finally:
        redis_client.restore(STREAM, 0, pristine, replace=True)
