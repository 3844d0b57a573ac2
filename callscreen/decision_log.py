"""The decision log: provable, tamper-evident evidence of every decision.

Invariants:
- A decision is appended before its answer leaves callscreen; if the append fails the caller
  answers BLOCK ``screening_unavailable`` (see :mod:`callscreen.screening`).
- Records live in one Redis stream (``cs:{log}:stream``). Each writing process owns a
  *chain*: its records carry ``seq`` and ``prev`` (the previous record's MAC) and a MAC,
  HMAC-SHA256 under ``log_key`` over chain, seq, prev and the canonical record body. The
  key never reaches Redis, so someone with write access to the store can delete or alter
  records but cannot forge a chain that :meth:`DecisionLog.verify` accepts. The last MAC of
  every chain is kept in ``cs:{log}:heads`` so truncating a chain's tail is detected.
- Appends are compare-and-set: a Lua script adds the record only if the chain head in
  Redis is the one the writer chained from, and only under the log key *epoch* in force
  (``cs:{log}:epoch``): each record names the key id it was MAC'd with, ``callscreen keys rotate
  log`` moves the epoch atomically, and verify checks each record with its epoch's key from the
  key ring and reports a record MAC'd under a key after that key was retired.
- Retention removes records anywhere in a chain (periods differ by jurisdiction and kind). A
  removed record leaves a *tombstone* (its seq, prev and MAC, tagged with an HMAC under the log
  key), so the chain still verifies across the gap while deleting a record without the key is
  still detected; tombstones at the start of a chain fold into its anchor in ``cs:{log}:trimmed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from callscreen import codec
from callscreen.keys import ROTATE_EPOCH_SCRIPT, EpochHistory, Keyring
from callscreen.models import Decision
from callscreen.store import (
    ATTEMPT_HISTORY,
    Command,
    StoreError,
    ms,
    new_id,
    number_key,
    run_pipeline,
    run_pipeline_async,
    script,
)

STREAM = "cs:{log}:stream"
HEADS = "cs:{log}:heads"
IDS = "cs:{log}:ids"
TRIMMED = "cs:{log}:trimmed"
OUTCOMES = "cs:{log}:outcomes"
PURGED = "cs:{log}:purged"
EPOCH = "cs:{log}:epoch"
EPOCHS = "cs:{log}:epochs"
GENESIS = "genesis"

APPEND_SCRIPT = """
local epoch = redis.call('GET', KEYS[4])
if epoch and epoch ~= ARGV[9] then return {2, epoch} end
local head = redis.call('HGET', KEYS[2], ARGV[1])
if not head then head = '' end
if head ~= ARGV[2] then return {0, head} end
local sid = redis.call('XADD', KEYS[1], '*', 'id', ARGV[4], 'chain', ARGV[1], 'seq', ARGV[5],
                       'prev', ARGV[6], 'mac', ARGV[7], 'body', ARGV[8], 'kid', ARGV[9])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[4], sid)
return {1, sid}
"""
APPEND_SHA = script(APPEND_SCRIPT)

# The per-number index writes of one decision, in one command (keys in the number's slot).
# KEYS: decisions, attempts. ARGV: ms, id, retention horizon ms, attempt (1/0), attempt horizon ms,
# trim batch. Each write drops at most a batch of entries older than its horizon: the work per
# decision stays bounded however long a number went uncalled, and since a write adds one entry
# and may drop a whole batch, whatever is past its horizon is gone after a few writes.
INDEX_SHA = script("""
local function trim(key, horizon)
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', horizon, 'LIMIT', 0, ARGV[6])
  if #old > 0 then redis.call('ZREM', key, unpack(old)) end
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
trim(KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
  trim(KEYS[2], ARGV[5])
end
return 1
""")
TRIM_BATCH = 64


class LogWriteError(StoreError):
    """The record could not be appended; the decision must not be ALLOW."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record as stored: a decision, a call outcome or a scrub summary."""

    id: str
    at: datetime
    kind: str = "decision"
    campaign_id: str = ""
    number_digest: str = ""
    number_sealed: str = ""
    result: str = ""
    reason: str = ""
    basis: dict[str, Any] | None = None
    policy_pack: str = ""
    policy_version: str = ""
    timezone: str = ""
    checks: list[list[Any]] = field(default_factory=list)
    origin: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # chain fields, filled when read back
    chain: str = ""
    seq: int = 0
    prev: str = ""
    mac: str = ""
    stream_id: str = ""
    key_id: str = ""  # the log key epoch it was MAC'd under ("" before epochs existed)

    def body(self) -> str:
        """Canonical JSON of everything but the chain fields: what the MAC covers."""
        data = {
            "id": self.id, "at": codec.iso(self.at), "kind": self.kind, "campaign_id": self.campaign_id,
            "number_digest": self.number_digest, "number_sealed": self.number_sealed,
            "result": self.result, "reason": self.reason, "basis": self.basis,
            "policy_pack": self.policy_pack, "policy_version": self.policy_version,
            "timezone": self.timezone, "checks": self.checks, "origin": self.origin, "extra": self.extra,
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_decision(cls, decision: Decision, *, decision_id: str, campaign_id: str, digest: str,
                      sealed: str, origin: str) -> LogRecord:
        basis = codec.to_dict(decision.basis) if decision.basis else None
        return cls(
            id=decision_id, at=decision.decided_at or datetime.now(UTC), campaign_id=campaign_id,
            number_digest=digest, number_sealed=sealed, result=decision.result.value,
            reason=decision.reason.value, basis=basis, policy_pack=decision.policy_pack,
            policy_version=decision.policy_version, timezone=decision.timezone,
            checks=[[c.name, c.passed, c.detail] for c in decision.checks], origin=origin,
        )

    @classmethod
    def from_entry(cls, stream_id: Any, fields: dict[Any, Any]) -> LogRecord:
        get = {_text(k): _text(v) for k, v in fields.items()}
        data = json.loads(get["body"])
        data["at"] = codec.parse_time(data["at"])
        return cls(**data, chain=get["chain"], seq=int(get["seq"]), prev=get["prev"], mac=get["mac"],
                   stream_id=_text(stream_id), key_id=get.get("kid", ""))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def chain_mac(key: bytes, chain: str, seq: int, prev: str, body: str) -> str:
    message = f"{chain}\n{seq}\n{prev}\n{body}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def tombstone_tag(key: bytes, chain: str, seq: int, prev: str, mac: str) -> str:
    """What proves a gap in a chain was left by retention, not by someone without the key."""
    return hmac.new(key, f"purged\n{chain}\n{seq}\n{prev}\n{mac}".encode(), hashlib.sha256).hexdigest()


def _tombstone_field(chain: str, seq: int) -> str:
    return f"{chain} {seq}"


def _anchor(value: str | None) -> tuple[int, str]:
    """A chain's starting point: its retention anchor ``seq:mac``, else its genesis."""
    if not value:
        return 0, GENESIS
    seq, mac = value.split(":", 1)
    return int(seq), mac


@dataclass
class VerifyReport:
    records: int = 0
    chains: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class DecisionLog:
    """Appends, reads and verifies the log. Thread- and task-safe per process."""

    def __init__(self, client: redis.Redis, log_key: bytes | Keyring, retention_days: int = 1825,
                 aclient: Any = None) -> None:
        ring = log_key if isinstance(log_key, Keyring) else Keyring.single("log_key", log_key)
        if not ring or any(len(material) < 32 for _kid, material in ring):
            raise ValueError("log_key must be at least 32 bytes")
        self.client = client
        self.aclient = aclient
        self.ring = ring
        self._kid = ring.oldest  # until the store names the epoch in force
        self.retention = timedelta(days=retention_days)
        self._thread_lock = threading.Lock()
        self._task_lock: asyncio.Lock | None = None
        self._pid = -1
        self._chain = ""
        self._seq = 0
        self._prev = GENESIS

    # --- appending ------------------------------------------------------------------------

    def _ensure_chain(self) -> None:
        if self._pid != os.getpid():  # a forked worker starts its own chain
            self._pid = os.getpid()
            self._chain = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(3)}"
            self._seq, self._prev = 0, GENESIS

    def _plan(self, record: LogRecord, extra: list[Command]) -> tuple[list[Command], str]:
        self._ensure_chain()
        seq = self._seq + 1
        body = record.body()
        mac = chain_mac(self.ring.get(self._kid), self._chain, seq, self._prev, body)
        expected = "" if self._seq == 0 else f"{self._seq}:{self._prev}"
        new_head = f"{seq}:{mac}"
        script: Command = (
            "EVALSHA", APPEND_SHA, 4, STREAM, HEADS, IDS, EPOCH,
            self._chain, expected, new_head, record.id, seq, self._prev, mac, body, self._kid,
        )
        return [script, *extra], new_head

    def _settle(self, replies: list[Any], new_head: str) -> str | None:
        """Apply the script's reply; returns the stream id, or None when the head moved.

        Every way a write can fail reports here as :class:`LogWriteError`: an error reply from
        the script (OOM, WRONGTYPE, a Lua error), a failed index write in the same round trip
        (the decision is then not ALLOW), and any reply that is not the script's own shape."""
        if not replies:
            raise LogWriteError("decision log append got no reply")
        reply = replies[0]
        if isinstance(reply, Exception):
            raise LogWriteError(f"decision log append failed: {reply}")
        if not isinstance(reply, list | tuple) or len(reply) != 2 or reply[0] not in (0, 1, 2):
            raise LogWriteError(f"decision log append got an unexpected reply: {str(reply)[:80]}")
        ok, value = reply[0], _text(reply[1])
        if ok == 2:  # the log key epoch moved: write under the key now in force
            self._use_epoch(value)
            return None
        if ok and not value:
            raise LogWriteError("decision log append returned no stream id")
        if ok:
            seq, mac = new_head.split(":", 1)
        elif value:  # the stored head differs from ours: re-chain from it
            seq, mac = value.split(":", 1)
        else:
            seq, mac = "0", GENESIS
        self._seq, self._prev = int(seq), mac
        for extra in replies[1:]:
            if isinstance(extra, Exception):
                raise LogWriteError(f"decision log index write failed: {extra}")
        return value if ok else None

    def _use_epoch(self, kid: str) -> None:
        if kid not in self.ring:
            raise LogWriteError(f"the log key in force ({kid}) is not in this process's key ring: "
                                "add it to CALLSCREEN_LOG_KEY")
        self._kid = kid

    @property
    def key_id(self) -> str:
        """The log key epoch this writer last knew to be in force."""
        return self._kid

    def epoch(self) -> str:
        """The log key epoch in force in the store (the ring's oldest key before any rotation)."""
        return _text(self.client.get(EPOCH) or self.ring.oldest)

    def rotate_key(self, new_kid: str) -> str:
        """Make ``new_kid`` the log key epoch; records written from now on use it, records of
        the old epoch still verify with it, and nothing more can be appended under it. Returns
        the old epoch. Raises KeyringError if the ring lacks the key."""
        self.ring.get(new_kid)
        current = _text(self.client.get(EPOCH) or b"")
        old = current or self.ring.oldest
        if old == new_kid:
            raise ValueError(f"log key {new_kid} is already in force")
        ok, value = self.client.eval(ROTATE_EPOCH_SCRIPT, 3, EPOCH, EPOCHS, STREAM, current, new_kid, self.ring.oldest)
        if not ok:
            raise LogWriteError(f"the log key epoch moved meanwhile (now {_text(value)}); try again")
        self._kid = new_kid
        return old

    def append(self, record: LogRecord, extra: list[Command] = ()) -> str:
        """Append ``record`` (and run ``extra`` commands in the same round trip); returns the stream id."""
        with self._thread_lock:
            for _attempt in range(3):
                commands, new_head = self._plan(record, list(extra))
                stream_id = self._settle(run_pipeline(self.client, commands), new_head)
                if stream_id is not None:
                    return stream_id
                extra = []  # already applied
        raise LogWriteError("decision log append kept conflicting with another writer")

    async def append_async(self, record: LogRecord, extra: list[Command] = ()) -> str:
        if self.aclient is None:
            raise LogWriteError("no asyncio client configured")
        if self._task_lock is None:
            self._task_lock = asyncio.Lock()
        async with self._task_lock:
            for _attempt in range(3):
                commands, new_head = self._plan(record, list(extra))
                stream_id = self._settle(await run_pipeline_async(self.aclient, commands), new_head)
                if stream_id is not None:
                    return stream_id
                extra = []
        raise LogWriteError("decision log append kept conflicting with another writer")

    def decision_index_commands(self, record: LogRecord, attempt: bool) -> list[Command]:
        """Per-number index writes that ride in the append's round trip."""
        if not record.number_digest:
            return []
        keys = (number_key(record.number_digest, "decisions"), number_key(record.number_digest, "attempts"))
        return [("EVALSHA", INDEX_SHA, 2, *keys, ms(record.at), record.id, ms(record.at - self.retention),
                 1 if attempt else 0, ms(record.at - ATTEMPT_HISTORY), TRIM_BATCH)]

    # --- outcomes and summaries -----------------------------------------------------------

    def outcome_record(self, decision: LogRecord, dialstatus: str, answered_seconds: int,
                       hangup_cause: str, origin: str = "agi") -> tuple[LogRecord, list[Command]]:
        """Plan the record of what happened to an allowed (or blocked) call."""
        outcome = {"decision_id": decision.id, "dialstatus": dialstatus,
                   "answered_seconds": answered_seconds, "hangup_cause": hangup_cause}
        record = LogRecord(
            id=new_id("o"), at=datetime.now(UTC), kind="outcome", campaign_id=decision.campaign_id,
            number_digest=decision.number_digest, origin=origin, extra=outcome,
        )
        commands: list[Command] = [("HSET", OUTCOMES, decision.id, json.dumps(outcome))]
        # A call that never left (no Dial, or our own trunk unavailable) is not an attempt.
        if decision.number_digest and dialstatus in ("", "CHANUNAVAIL"):
            commands.append(("ZREM", number_key(decision.number_digest, "attempts"), decision.id))
        return record, commands

    def record_outcome(self, decision_id: str, dialstatus: str, answered_seconds: int,
                       hangup_cause: str) -> LogRecord:
        decision = self.get(decision_id)
        if decision is None:
            raise KeyError(decision_id)
        record, commands = self.outcome_record(decision, dialstatus, answered_seconds, hangup_cause)
        self.append(record, commands)
        return record

    async def record_outcome_async(self, decision_id: str, dialstatus: str, answered_seconds: int,
                                   hangup_cause: str) -> LogRecord:
        decision = await self.get_async(decision_id)
        if decision is None:
            raise KeyError(decision_id)
        record, commands = self.outcome_record(decision, dialstatus, answered_seconds, hangup_cause)
        await self.append_async(record, commands)
        return record

    def outcome_of(self, decision_id: str) -> dict[str, Any] | None:
        raw = self.client.hget(OUTCOMES, decision_id)
        return None if raw is None else json.loads(raw)

    def append_summary(self, kind: str, extra: dict[str, Any], campaign_id: str = "",
                       origin: str = "cli") -> LogRecord:
        """One record standing for a batch (e.g. a scrub), instead of a record per number."""
        record = LogRecord(id=new_id(kind[:1] or "s"), at=datetime.now(UTC), kind=kind,
                           campaign_id=campaign_id, origin=origin, extra=extra)
        self.append(record)
        return record

    # --- reading ----------------------------------------------------------------------------

    def get(self, record_id: str) -> LogRecord | None:
        stream_id = self.client.hget(IDS, record_id)
        if stream_id is None:
            return None
        entries = self.client.xrange(STREAM, stream_id, stream_id)
        return LogRecord.from_entry(*entries[0]) if entries else None

    async def get_async(self, record_id: str) -> LogRecord | None:
        stream_id = await self.aclient.hget(IDS, record_id)
        if stream_id is None:
            return None
        entries = await self.aclient.xrange(STREAM, stream_id, stream_id)
        return LogRecord.from_entry(*entries[0]) if entries else None

    def get_many(self, record_ids: list[str]) -> list[LogRecord]:
        if not record_ids:
            return []
        stream_ids = self.client.hmget(IDS, record_ids)
        pipe = self.client.pipeline(transaction=False)
        wanted = [s for s in stream_ids if s is not None]
        for sid in wanted:
            pipe.xrange(STREAM, sid, sid)
        return [LogRecord.from_entry(*e[0]) for e in pipe.execute() if e]

    def for_number(self, digest: str, limit: int = 100) -> list[LogRecord]:
        """The newest decisions about one number, newest first."""
        ids = self.client.zrevrange(number_key(digest, "decisions"), 0, limit - 1)
        return self.get_many([_text(i) for i in ids])

    def scan(self, start: datetime | None = None, end: datetime | None = None, newest_first: bool = True,
             batch: int = 500, before: str | None = None) -> Iterator[LogRecord]:
        """Every record in a time range, streamed in batches; ``before`` is an exclusive stream id."""
        low = f"{ms(start)}-0" if start else "-"
        high = f"{ms(end)}-18446744073709551615" if end else "+"
        if before:
            high = "(" + before
        while True:
            if newest_first:
                entries = self.client.xrevrange(STREAM, high, low, count=batch)
            else:
                entries = self.client.xrange(STREAM, low, high, count=batch)
            for entry in entries:
                yield LogRecord.from_entry(*entry)
            if len(entries) < batch:
                return
            last = _text(entries[-1][0])
            if newest_first:
                high = "(" + last
            else:
                low = "(" + last

    def query(self, start: datetime | None = None, end: datetime | None = None, campaign: str | None = None,
              result: str | None = None, reason: str | None = None, kind: str = "decision",
              limit: int = 50, cursor: str | None = None) -> tuple[list[LogRecord], str | None]:
        """Newest-first page of records matching the filters; pass the returned cursor for the next page."""
        found: list[LogRecord] = []
        for record in self.scan(start, end, before=cursor):
            if record.kind != kind or (campaign and record.campaign_id != campaign):
                continue
            if (result and record.result != result) or (reason and record.reason != reason):
                continue
            if len(found) == limit:
                return found, found[-1].stream_id
            found.append(record)
        return found, None

    def tail(self, count: int = 20) -> list[LogRecord]:
        entries = self.client.xrevrange(STREAM, count=count)
        return [LogRecord.from_entry(*e) for e in reversed(entries)]

    # --- verification and retention ---------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Check every chain: MACs, contiguous sequence numbers (across retention tombstones),
        and that each ends at its head."""
        report = VerifyReport()
        last: dict[str, tuple[int, str]] = {}
        trimmed = {_text(k): _text(v) for k, v in self.client.hgetall(TRIMMED).items()}
        epochs = EpochHistory(self.ring, {_text(k): _text(v) for k, v in self.client.hgetall(EPOCHS).items()})
        tombstones = self._tombstones(report, epochs)

        def bridge(chain: str, state: tuple[int, str], until: int | None) -> tuple[int, str]:
            seq, mac = state
            gaps = tombstones.get(chain, {})
            while (until is None or seq + 1 < until) and seq + 1 in gaps and gaps[seq + 1][0] == mac:
                seq, mac = seq + 1, gaps[seq + 1][1]
            return seq, mac

        for record in self.scan(newest_first=False, batch=2000):
            report.records += 1
            misplaced = epochs.misplaced(record.key_id, record.stream_id)
            if misplaced:
                report.problems.append(f"{record.stream_id} ({record.id}): {misplaced}")
            key = epochs.key(record.key_id)
            if key is None:
                report.problems.append(f"{record.stream_id} ({record.id}): MAC does not match its content "
                                       f"(it names log key {record.key_id}, which is not in the key ring)")
            elif not hmac.compare_digest(chain_mac(key, record.chain, record.seq, record.prev, record.body()),
                                         record.mac):
                report.problems.append(f"{record.stream_id} ({record.id}): MAC does not match its content")
            previous = last.get(record.chain)
            start = previous or _anchor(trimmed.get(record.chain))
            seq, mac = bridge(record.chain, start, record.seq)
            if record.seq != seq + 1 or record.prev != mac:
                if previous is None:
                    report.problems.append(f"chain {record.chain} starts at seq {record.seq}: earlier records missing")
                else:
                    report.problems.append(
                        f"chain {record.chain}: seq {seq} is followed by seq {record.seq} "
                        f"({record.seq - seq - 1} records missing or reordered)")
            last[record.chain] = (record.seq, record.mac)
        heads = {_text(k): _text(v) for k, v in self.client.hgetall(HEADS).items()}
        for chain, head in heads.items():
            seen = last.get(chain)
            seq, mac = bridge(chain, seen or _anchor(trimmed.get(chain)), None)
            if f"{seq}:{mac}" != head:
                if seen is None:
                    report.problems.append(f"chain {chain}: head {head.split(':')[0]} but no records remain")
                else:
                    report.problems.append(f"chain {chain}: ends at seq {seq} but its head is {head.split(':')[0]}")
        report.chains = len(heads)
        return report

    def _tombstones(self, report: VerifyReport, epochs: EpochHistory) -> dict[str, dict[int, tuple[str, str]]]:
        """chain -> seq -> (prev, mac) of every tombstone whose tag verifies; forged ones are problems."""
        found: dict[str, dict[int, tuple[str, str]]] = {}
        for name, value in self.client.hscan_iter(PURGED, count=1000):
            chain, seq_text = _text(name).rsplit(" ", 1)
            prev, mac, tag, *kid = _text(value).split(" ")
            seq = int(seq_text)
            key = epochs.key(kid[0] if kid else "")
            if key is None or not hmac.compare_digest(tombstone_tag(key, chain, seq, prev, mac), tag):
                report.problems.append(f"chain {chain}: tombstone for seq {seq} was not left by retention")
                continue
            found.setdefault(chain, {})[seq] = (prev, mac)
        return found

    def purge(self, now: datetime | None = None) -> int:
        """Drop every record older than ``retention_days``, whatever its jurisdiction (the packs'
        periods are applied by :mod:`callscreen.retention`)."""
        cutoff = (now or datetime.now(UTC)) - self.retention
        removed = 0
        while True:
            entries = self.client.xrange(STREAM, "-", f"({ms(cutoff)}-0", count=1000)
            if not entries:
                return removed
            removed += self.remove([LogRecord.from_entry(*entry) for entry in entries])

    def remove(self, records: list[LogRecord]) -> int:
        """Delete ``records`` (retention), leaving a tombstone for each so its chain still verifies,
        and their per-number index entries and outcomes with them; returns how many were deleted.

        The tombstones are written before the records go, so an interrupted run leaves a chain
        that verifies; tombstones at the start of a chain are then folded into its anchor."""
        if not records:
            return 0
        self._use_epoch(self.epoch())
        key = self.ring.get(self._kid)
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            tag = tombstone_tag(key, record.chain, record.seq, record.prev, record.mac)
            pipe.hset(PURGED, _tombstone_field(record.chain, record.seq),
                      f"{record.prev} {record.mac} {tag} {self._kid}")
        pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            pipe.xdel(STREAM, record.stream_id)
            pipe.hdel(IDS, record.id)
            if record.kind == "decision":
                pipe.hdel(OUTCOMES, record.id)
                if record.number_digest:
                    pipe.zrem(number_key(record.number_digest, "decisions"), record.id)
            elif record.kind == "outcome" and record.extra.get("decision_id"):
                pipe.hdel(OUTCOMES, record.extra["decision_id"])
        pipe.execute()
        self._fold({record.chain for record in records})
        return len(records)

    def _fold(self, chains: set[str]) -> None:
        """Move each chain's anchor over the tombstones that directly follow it."""
        for chain in chains:
            seq, mac = _anchor(_text(self.client.hget(TRIMMED, chain) or b""))
            start, folded, ahead = seq, [], True
            while ahead:  # read the tombstones ahead of the anchor 500 at a time
                names = [_tombstone_field(chain, seq + n) for n in range(1, 501)]
                ahead = False
                for name, value in zip(names, self.client.hmget(PURGED, names), strict=True):
                    if value is None or _text(value).split(" ")[0] != mac:
                        break
                    seq, mac = seq + 1, _text(value).split(" ")[1]
                    folded.append(name)
                else:
                    ahead = True
            if seq != start:
                pipe = self.client.pipeline(transaction=True)
                pipe.hset(TRIMMED, chain, f"{seq}:{mac}")
                pipe.hdel(PURGED, *folded)
                pipe.execute()
