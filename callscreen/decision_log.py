"""The decision log: provable, tamper-evident evidence of every decision.

Invariants:
- A decision is appended before its answer leaves callscreen; if the append fails the caller
  answers BLOCK ``screening_unavailable`` (see :mod:`callscreen.screening`).
- Records live in Redis streams: one per shard of the log (``cs:{log}:stream`` is shard 0,
  ``cs:{log.k}:stream`` shard k; see :mod:`callscreen.log_shards` for the layout). Each
  writing process owns a *chain*, appended to one shard: its records carry ``seq`` and
  ``prev`` (the previous record's MAC) and a MAC, HMAC-SHA256 under ``log_key`` over the
  record's stream id, chain, seq, prev and the canonical record body (format 2; format 1
  records, written before, leave the stream id out). The key never reaches Redis, so someone
  with write access to the store can delete or alter records but cannot forge a chain that
  :meth:`DecisionLog.verify` accepts. The last MAC of every chain is kept in its shard's
  ``heads`` so truncating a chain's tail is detected.
- Reads merge the shards in stream-id order (ties by shard number), so a reader sees one log
  whichever shard each record went to; verify checks each shard on its own and names the
  shard of every problem.
- The writer chooses the stream id (its clock, never below the stream's last id) so the MAC
  can cover it. Appends are compare-and-set: a Lua script adds the record only if the chain
  head in Redis is the one the writer chained from and the stream accepts the id, and only
  under the log key *epoch* in force in its shard (``cs:{log}:epoch``): each record names the
  key id it was MAC'd with, ``callscreen keys rotate log`` moves each shard's epoch atomically
  (shard 0 first, then the others in order; each shard keeps its own history), and verify
  checks each record with its shard's epoch's key and reports a record MAC'd under a key after
  that key was retired in its shard.
- Reading never trusts the stream: an entry that is not a well-formed record of a known
  format comes back as a :class:`DamagedEntry` naming the entry and what is wrong with it.
- Retention removes records anywhere in a chain (periods differ by jurisdiction and kind). A
  removed record leaves a *tombstone* (its seq, prev and MAC, tagged with an HMAC under the log
  key), so the chain still verifies across the gap while deleting a record without the key is
  still detected; tombstones at the start of a chain fold into its anchor in ``trimmed``.
- The append also counts a decision in its shard's per-day counters (same script, so a
  counted decision is a logged one): the dashboard sums them instead of reading the log.
- An ALLOW appended over the asyncio client is remembered in the process, boundedly, once its
  append has succeeded, so its call's outcome need not read it back (:mod:`callscreen.recent_allows`).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from callscreen import codec, log_cluster
from callscreen.cluster import is_cluster_client
from callscreen.durability import confirm
from callscreen.keys import ROTATE_EPOCH_SCRIPT, EpochHistory, Keyring
from callscreen.log_shards import (
    ADOPT_EPOCH_SCRIPT,
    COUNTER_DAYS,
    EPOCH_DAY,
    REGISTRY,
    LogShard,
    counter_field,
    shard_of,
)
from callscreen.models import Decision, Result
from callscreen.recent_allows import REMEMBERED_ALLOWS, DecisionRef, RecentAllows
from callscreen.store import (
    ATTEMPT_HISTORY,
    Command,
    StoreError,
    as_hash,
    ms,
    new_id,
    number_key,
    run_pipeline,
    run_pipeline_async,
    script,
)

# Shard 0's keys (the log's names before it was sharded); see callscreen.log_shards.
SHARD_0 = LogShard(0)
STREAM = SHARD_0.stream
HEADS = SHARD_0.heads
IDS = SHARD_0.ids
TRIMMED = SHARD_0.trimmed
OUTCOMES = SHARD_0.outcomes
PURGED = SHARD_0.purged
EPOCH = SHARD_0.epoch
EPOCHS = SHARD_0.epochs
GENESIS = "genesis"
Confirmations = list[tuple[Sequence[Command], list[Any]]]  # durability commands and their replies, per connection
APPEND_ATTEMPTS = 16  # a lost race (head moved, or a newer id landed first) costs one more round trip
FORMAT = "2"  # the record format written now (see docs/store.md)
# The stream fields each record format may have: format 1 entries carry no ``v`` field (and
# ``kid`` only once log key epochs existed); format 2 entries always carry both.
_FORMAT_1 = frozenset({"id", "chain", "seq", "prev", "mac", "body"})
ENTRY_FIELDS: dict[str, tuple[frozenset[str], ...]] = {
    "1": (_FORMAT_1, _FORMAT_1 | {"kid"}),
    "2": (_FORMAT_1 | {"v", "kid"},),
}

# KEYS: stream, heads, ids, epoch, day counters, counted (all in the shard's slot). ARGV: chain,
# expected head, new head, record id, seq, prev, mac, body, key id, stream id, format, counter
# field ('' for a record that is not counted), counter expiry (unix seconds). Replies {1, id}
# (added), {0, head} (the chain moved on), {2, epoch} (the log key epoch moved) or {3, last id}
# (the stream refused the id: it is not above the stream's last id). The first append that
# counts marks where counting began (from the start when the stream held nothing before).
APPEND_SCRIPT = """
local epoch = redis.call('GET', KEYS[4])
if epoch and epoch ~= ARGV[9] then return {2, epoch} end
local head = redis.call('HGET', KEYS[2], ARGV[1])
if not head then head = '' end
if head ~= ARGV[2] then return {0, head} end
local sid = redis.pcall('XADD', KEYS[1], ARGV[10], 'v', ARGV[11], 'id', ARGV[4], 'chain', ARGV[1],
                        'seq', ARGV[5], 'prev', ARGV[6], 'mac', ARGV[7], 'body', ARGV[8], 'kid', ARGV[9])
if type(sid) == 'table' and sid.err then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return {3, info[i + 1]} end
  end
  return redis.error_reply(sid.err)
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[4], sid)
if redis.call('EXISTS', KEYS[6]) == 0 then
  local since = sid
  if redis.call('XLEN', KEYS[1]) == 1 then since = '0-0' end
  redis.call('SET', KEYS[6], since)
end
if ARGV[12] ~= '' then
  redis.call('HINCRBY', KEYS[5], ARGV[12], 1)
  redis.call('EXPIREAT', KEYS[5], ARGV[13])
end
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

# A record by id in one round trip. KEYS: the shard's ids hash, its stream. ARGV: record id.
LOOKUP_SHA = script("""
local sid = redis.call('HGET', KEYS[1], ARGV[1])
if not sid then return {} end
return redis.call('XRANGE', KEYS[2], sid, sid)
""")


class LogWriteError(StoreError):
    """The record could not be appended; the decision must not be ALLOW."""


class UnreadableRecord(ValueError):
    """A stream entry is not a well-formed record; the message says what is wrong."""


# The record body's keys and the JSON types each may hold; anything else is not a record.
_BODY_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "at": (str,), "kind": (str,), "campaign_id": (str,), "number_digest": (str,),
    "number_sealed": (str,), "result": (str,), "reason": (str,), "basis": (dict, type(None)),
    "policy_pack": (str,), "policy_version": (str,), "timezone": (str,), "checks": (list,),
    "origin": (str,), "extra": (dict,),
}
_SEQ = re.compile(r"[1-9][0-9]{0,18}")
_MAC = re.compile(r"[0-9a-f]{64}")
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


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
    format: str = FORMAT
    shard: int = 0  # the shard it was read from (not MAC'd: chain continuity pins it)

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

    def expected_mac(self, key: bytes) -> str:
        """The MAC this record must carry under ``key``, in its own format."""
        stream_id = self.stream_id if self.format != "1" else None
        return chain_mac(key, self.chain, self.seq, self.prev, self.body(), stream_id)

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
    def from_entry(cls, stream_id: Any, fields: dict[Any, Any], shard: int = 0) -> LogRecord:
        """The record in one stream entry; raises :class:`UnreadableRecord` (naming what is
        wrong) for anything but a well-formed record of a known format."""
        link = ChainLink.from_entry(stream_id, fields)
        body = _strict_text(_field(fields, "body"), "body")
        data = _body_of(body)
        outer_id = _strict_text(_field(fields, "id"), "id")
        if data["id"] != outer_id:
            raise UnreadableRecord(f"the entry's id field {outer_id!r} is not the body's id {data['id']!r}")
        try:
            data["at"] = codec.parse_time(data["at"])
        except ValueError:
            raise UnreadableRecord(f"body: 'at' is not a time: {data['at']!r}") from None
        if data["at"] is None:
            raise UnreadableRecord("body: 'at' is empty")
        kid = _field(fields, "kid")
        record = cls(**data, chain=link.chain, seq=link.seq, prev=link.prev, mac=link.mac,
                     stream_id=link.stream_id, key_id="" if kid is None else _strict_text(kid, "kid"),
                     format=link.format, shard=shard)
        if record.body() != body:  # the MAC covers the canonical form: any other spelling is not ours
            raise UnreadableRecord("body is not in canonical form")
        return record


@dataclass(frozen=True, slots=True)
class ChainLink:
    """The chain fields of a stream entry, readable even when its body is not."""

    stream_id: str
    format: str
    chain: str
    seq: int
    prev: str
    mac: str

    @classmethod
    def from_entry(cls, stream_id: Any, fields: dict[Any, Any]) -> ChainLink:
        sid = _strict_text(stream_id, "stream id")
        if not _STREAM_ID.fullmatch(sid):
            raise UnreadableRecord(f"stream id {sid!r} is not of the form ms-seq")
        get = {_strict_text(k, "field name"): v for k, v in fields.items()}
        version = _strict_text(get["v"], "v") if "v" in get else "1"
        allowed = ENTRY_FIELDS.get(version)
        if allowed is None:
            raise UnreadableRecord(f"unknown record format {version!r}")
        expected = allowed[-1]
        if set(get) not in allowed:
            missing, unexpected = sorted(expected - set(get)), sorted(set(get) - expected)
            raise UnreadableRecord(f"fields missing {missing}, unexpected {unexpected}"
                                   if missing and unexpected else
                                   f"fields missing {missing}" if missing else f"unexpected fields {unexpected}")
        text = {name: _strict_text(get[name], name) for name in ("chain", "seq", "prev", "mac")}
        if not text["chain"]:
            raise UnreadableRecord("chain is empty")
        if not _SEQ.fullmatch(text["seq"]):
            raise UnreadableRecord(f"seq {text['seq']!r} is not a positive number")
        if text["prev"] != GENESIS and not _MAC.fullmatch(text["prev"]):
            raise UnreadableRecord(f"prev {text['prev']!r} is not a MAC")
        if not _MAC.fullmatch(text["mac"]):
            raise UnreadableRecord(f"mac {text['mac']!r} is not a MAC")
        return cls(stream_id=sid, format=version, chain=text["chain"], seq=int(text["seq"]),
                   prev=text["prev"], mac=text["mac"])


@dataclass(frozen=True, slots=True)
class DamagedEntry:
    """A stream entry that is not a readable record: evidence of tampering (or of a writer
    that broke the format), kept with its raw fields so nothing is lost when it is reported."""

    stream_id: str
    reason: str
    fields: dict[str, str]
    link: ChainLink | None = None
    shard: int = 0

    @property
    def record_id(self) -> str:
        return self.fields.get("id", "")

    def describe(self) -> str:
        return f"{self.stream_id} ({self.record_id or 'no id'}): unreadable record: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "shard": self.shard, "tampered": self.reason, "fields": self.fields}


LogEntry = LogRecord | DamagedEntry


def read_entry(stream_id: Any, fields: dict[Any, Any], shard: int = 0) -> LogEntry:
    """The record in a stream entry of ``shard``, or a :class:`DamagedEntry` saying why it is not one."""
    try:
        return LogRecord.from_entry(stream_id, fields, shard)
    except UnreadableRecord as exc:
        reason = str(exc)
    try:
        link: ChainLink | None = ChainLink.from_entry(stream_id, fields)
    except UnreadableRecord:
        link = None
    return DamagedEntry(_lenient_text(stream_id), reason,
                        {_lenient_text(k): _lenient_text(v) for k, v in fields.items()}, link, shard)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: dict[Any, Any], name: str) -> Any:
    """A field of a raw entry, whether the client returned bytes or text."""
    return fields.get(name.encode(), fields.get(name))


def _strict_text(value: Any, name: str) -> str:
    if value is None:
        raise UnreadableRecord(f"{name} is missing")
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise UnreadableRecord(f"{name} is not valid UTF-8") from None
    return str(value)


def _lenient_text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _body_of(text: str) -> dict[str, Any]:
    """The body's JSON object, with every key present and of its type."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise UnreadableRecord("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise UnreadableRecord("body is not a JSON object")
    if set(data) != set(_BODY_TYPES):
        missing, unexpected = sorted(set(_BODY_TYPES) - set(data)), sorted(set(data) - set(_BODY_TYPES))
        raise UnreadableRecord(f"body: keys missing {missing}, unexpected {unexpected}")
    for key, types in _BODY_TYPES.items():
        if not isinstance(data[key], types):
            raise UnreadableRecord(f"body: {key!r} is {type(data[key]).__name__}, not "
                                   + " or ".join("null" if t is type(None) else t.__name__ for t in types))
    if not all(isinstance(check, list) for check in data["checks"]):
        raise UnreadableRecord("body: 'checks' is not a list of lists")
    return data


def chain_mac(key: bytes, chain: str, seq: int, prev: str, body: str, stream_id: str | None = None) -> str:
    """HMAC-SHA256 of a record. Format 2 (``stream_id`` given) binds the entry's stream id;
    format 1 messages cannot collide with format 2 ones (their second line is never ``ms-seq``)."""
    message = f"{chain}\n{seq}\n{prev}\n{body}"
    if stream_id is not None:
        message = f"v2\n{stream_id}\n{message}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def tombstone_tag(key: bytes, chain: str, seq: int, prev: str, mac: str) -> str:
    """What proves a gap in a chain was left by retention, not by someone without the key."""
    return hmac.new(key, f"purged\n{chain}\n{seq}\n{prev}\n{mac}".encode(), hashlib.sha256).hexdigest()


def _tombstone_field(chain: str, seq: int) -> str:
    return f"{chain} {seq}"


def _anchor(value: str | None) -> tuple[int, str]:
    """A chain's starting point: its retention anchor ``seq:mac``, else its genesis."""
    if not value:
        return 0, GENESIS
    seq, _, mac = value.partition(":")
    return (int(seq), mac) if seq.isdigit() else (-1, "")  # unreadable: nothing continues it



@dataclass
class VerifyReport:
    records: int = 0
    chains: int = 0
    shards: int = 1
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class EntryCheck:
    """What is wrong with one entry on its own — unreadable, MAC'd under a key not in force
    where it stands (in its shard), or a MAC that does not match its content — or nothing.
    Chain continuity is :meth:`DecisionLog.verify`'s to check."""

    def __init__(self, epochs: EpochHistory | dict[int, EpochHistory]) -> None:
        self.by_shard = epochs if isinstance(epochs, dict) else {0: epochs}

    @property
    def epochs(self) -> EpochHistory:
        """Shard 0's epoch history."""
        return self.by_shard[0]

    def __call__(self, entry: LogEntry) -> list[str]:
        if isinstance(entry, DamagedEntry):
            return [entry.describe()]
        epochs = self.by_shard.get(entry.shard) or self.by_shard[0]
        misplaced = epochs.misplaced(entry.key_id, entry.stream_id)
        found = [f"{entry.stream_id} ({entry.id}): {misplaced}"] if misplaced else []
        key = epochs.key(entry.key_id)
        if key is None:
            found.append(f"{entry.stream_id} ({entry.id}): MAC does not match its content "
                         f"(it names log key {entry.key_id}, which is not in the key ring)")
        elif not hmac.compare_digest(entry.expected_mac(key), entry.mac):
            found.append(f"{entry.stream_id} ({entry.id}): MAC does not match its content")
        return found


def _position(entry: LogEntry) -> tuple[int, int, int]:
    """Where an entry stands in the merged log: its stream id, then its shard."""
    millis, _, sub = entry.stream_id.partition("-")
    try:
        return int(millis), int(sub or 0), entry.shard
    except ValueError:
        return 0, 0, entry.shard


def cursor_of(entry: LogEntry) -> str:
    """A newest-first page cursor just past ``entry``: its stream id, with ``-shard`` beyond 0."""
    return entry.stream_id if entry.shard == 0 else f"{entry.stream_id}-{entry.shard}"


def _parse_cursor(cursor: str) -> tuple[str, int]:
    """A cursor's stream id and shard (a bare stream id is shard 0's, as before shards)."""
    parts = cursor.split("-")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        return f"{parts[0]}-{parts[1]}", int(parts[2])
    return cursor, 0


class DecisionLog:
    """Appends, reads and verifies the log. Thread- and task-safe per process.

    ``shards`` is the ``log_shards`` setting: how many shards writers spread over; readers read
    those and every shard the store's registry names. ``remember_allows`` bounds the memory of
    the ALLOWs this process appended over the asyncio client (see :mod:`callscreen.recent_allows`
    and :meth:`record_outcome_async`); 0 turns it off."""

    def __init__(self, client: redis.Redis, log_key: bytes | Keyring, retention_days: int = 1825,
                 aclient: Any = None, shards: int = 1, remember_allows: int = REMEMBERED_ALLOWS) -> None:
        ring = log_key if isinstance(log_key, Keyring) else Keyring.single("log_key", log_key)
        if not ring or any(len(material) < 32 for _kid, material in ring):
            raise ValueError("log_key must be at least 32 bytes")
        if shards < 1:
            raise ValueError("log_shards must be 1 or more")
        self.client = client
        self.aclient = aclient
        self.ring = ring
        self.shard_count = shards
        self._kid = ring.oldest  # until the store names the epoch in force
        self.retention = timedelta(days=retention_days)
        self._thread_lock = threading.Lock()
        self._task_lock: asyncio.Lock | None = None
        self._pid = -1
        self._chain = ""
        self._shard = SHARD_0  # the writer's shard, chosen with its chain
        self._joined = -1  # the pid whose chain has joined its shard (see _join)
        self._seq = 0
        self._prev = GENESIS
        self._floor = (0, 0)  # the newest stream id this writer knows of: the next must be above it
        self._lost = 0  # races for a stream id lost in a row (see _next_stream_id)
        self.recent_allows = RecentAllows(remember_allows)

    # --- shards -----------------------------------------------------------------------------

    def shards(self) -> list[LogShard]:
        """Every shard to read: the configured ones and those the store's registry names."""
        return _shard_list(self.shard_count, self.client.smembers(REGISTRY))

    async def shards_async(self) -> list[LogShard]:
        return _shard_list(self.shard_count, await self.aclient.smembers(REGISTRY))

    def _per_shard(self, read: Callable[[Any, LogShard], Any]) -> list[tuple[LogShard, Any]]:
        """``read(pipe, shard)`` on every shard, with each shard's reply: one round trip with
        the registry read for the configured shards, a second only for shards the registry
        alone names."""
        configured = [LogShard(i) for i in range(self.shard_count)]
        pipe = self.client.pipeline(transaction=False)
        pipe.smembers(REGISTRY)
        for shard in configured:
            read(pipe, shard)
        registry, *replies = pipe.execute()
        more = [shard for shard in _shard_list(self.shard_count, registry) if shard.index >= self.shard_count]
        if more:
            pipe = self.client.pipeline(transaction=False)
            for shard in more:
                read(pipe, shard)
            replies += pipe.execute()
        return list(zip(configured + more, replies, strict=True))

    async def _per_shard_async(self, command: Callable[[LogShard], Command]) -> list[tuple[LogShard, Any]]:
        """:meth:`_per_shard` over the asyncio client, one ``command(shard)`` per shard, sent through
        :func:`run_pipeline_async` (so a script the store lost in a restart is loaded again); a
        failed reply raises :class:`StoreError`."""
        configured = [LogShard(i) for i in range(self.shard_count)]
        registry, *replies = await run_pipeline_async(self.aclient,
                                                      [("SMEMBERS", REGISTRY), *map(command, configured)])
        _no_errors([registry], "decision log read failed", StoreError)
        more = [shard for shard in _shard_list(self.shard_count, registry) if shard.index >= self.shard_count]
        if more:
            replies += await run_pipeline_async(self.aclient, [command(shard) for shard in more])
        _no_errors(replies, "decision log read failed", StoreError)
        return list(zip(configured + more, replies, strict=True))

    @property
    def shard(self) -> LogShard:
        """The shard this process writes to."""
        self._ensure_chain()
        return self._shard

    def _join_commands(self) -> list[Command]:
        """Register this writer's shard (once per process, not per decision) and read the
        epochs a shard new to the log adopts (see :meth:`_joined_with`)."""
        return [("SADD", REGISTRY, self._shard.index), ("GET", SHARD_0.epoch), ("GET", self._shard.epoch)]

    def _joined_with(self, replies: list[Any]) -> Command | None:
        """After :meth:`_join_commands`: the command that gives a shard without an epoch
        shard 0's, so it never accepts a key retired elsewhere; None when there is nothing to do."""
        _no_errors(replies, "decision log shard registration failed")
        if replies[1] is None or replies[2] is not None:
            return None
        kid = _text(replies[1])
        shard = self._shard
        return ("EVAL", ADOPT_EPOCH_SCRIPT, 3, shard.epoch, shard.epochs, shard.stream, kid)

    def _join(self) -> None:
        """Before a process's first append to a shard other than 0 (see :mod:`callscreen.log_shards`)."""
        if self._shard.index == 0 or self._joined == self._pid:
            return
        adopt = self._joined_with(run_pipeline(self.client, self._join_commands()))
        if adopt is not None:
            _no_errors(run_pipeline(self.client, [adopt]), "decision log shard could not adopt the log key epoch")
        self._joined = self._pid

    async def _join_async(self) -> None:
        if self._shard.index == 0 or self._joined == self._pid:
            return
        adopt = self._joined_with(await run_pipeline_async(self.aclient, self._join_commands()))
        if adopt is not None:
            _no_errors(await run_pipeline_async(self.aclient, [adopt]),
                       "decision log shard could not adopt the log key epoch")
        self._joined = self._pid

    # --- appending ------------------------------------------------------------------------

    def _ensure_chain(self) -> None:
        if self._pid != os.getpid():  # a forked worker starts its own chain (maybe in another shard)
            self._pid = os.getpid()
            self._chain = f"{socket.gethostname()}:{self._pid}:{secrets.token_hex(3)}"
            self._shard = LogShard(shard_of(self._chain, self.shard_count))
            self._kid = self.ring.oldest
            self._seq, self._prev = 0, GENESIS

    def _next_stream_id(self) -> str:
        """This writer's clock as ``ms-ns`` (nanoseconds within the millisecond, so writers
        rarely propose the same id), kept above every id it has seen in the stream."""
        millis, within = divmod(time.time_ns(), 1_000_000)
        # a writer that keeps losing the race (its clock read, then others' appends landing before
        # its own) reaches a millisecond further ahead per loss after the third, so it gets through
        now = (millis + max(0, self._lost - 3), within)
        chosen = now if now > self._floor else (self._floor[0], self._floor[1] + 1)
        return f"{chosen[0]}-{chosen[1]}"

    def _plan(self, record: LogRecord, extra: list[Command]) -> tuple[list[Command], str]:
        self._ensure_chain()
        seq = self._seq + 1
        body = record.body()
        stream_id = self._next_stream_id()
        mac = chain_mac(self.ring.get(self._kid), self._chain, seq, self._prev, body, stream_id)
        expected = "" if self._seq == 0 else f"{self._seq}:{self._prev}"
        new_head = f"{seq}:{mac}"
        counted = counter_field(int(stream_id.partition("-")[0]), record.result, record.reason)
        day, counter = counted if counted and record.kind == "decision" else (EPOCH_DAY, "")
        expires = int(datetime.combine(day, datetime.min.time(), UTC).timestamp()) + (COUNTER_DAYS + 1) * 86400
        shard = self._shard
        script: Command = (
            "EVALSHA", APPEND_SHA, 6, shard.stream, shard.heads, shard.ids, shard.epoch, shard.day(day),
            shard.counted, self._chain, expected, new_head, record.id, seq, self._prev, mac, body, self._kid,
            stream_id, FORMAT, counter, expires,
        )
        return [script, *extra], new_head

    def _settle(self, replies: list[Any], new_head: str) -> str | None:
        """Apply the script's reply; returns the stream id, or None when the head moved, the log
        key epoch moved or the stream refused the id (the next plan re-chains, uses the key in
        force or picks a higher id).

        Every way a write can fail reports here as :class:`LogWriteError`: an error reply from
        the script (OOM, WRONGTYPE, a Lua error), a failed index write in the same round trip
        (the decision is then not ALLOW), and any reply that is not the script's own shape."""
        if not replies:
            raise LogWriteError("decision log append got no reply")
        reply = replies[0]
        if isinstance(reply, Exception):
            raise LogWriteError(f"decision log append failed: {reply}")
        if not isinstance(reply, list | tuple) or len(reply) != 2 or reply[0] not in (0, 1, 2, 3):
            raise LogWriteError(f"decision log append got an unexpected reply: {str(reply)[:80]}")
        status, value = reply[0], _text(reply[1])
        if status == 2:  # the log key epoch moved: write under the key now in force
            self._use_epoch(value)
            return None
        ok = status == 1
        if status != 0 and not value:
            raise LogWriteError("decision log append returned no stream id")
        if ok:
            seq, mac = new_head.split(":", 1)
            self._raise_floor(value)
            self._lost = 0
        elif status == 3:  # the stream's last id is above ours: same chain position, a higher id
            seq, mac = str(self._seq), self._prev
            self._raise_floor(value)
            self._lost += 1
        elif value:  # the stored head differs from ours: re-chain from it
            seq, mac = value.split(":", 1)
        else:
            seq, mac = "0", GENESIS
        self._seq, self._prev = int(seq), mac
        for extra in replies[1:]:
            if isinstance(extra, Exception):
                raise LogWriteError(f"decision log index write failed: {extra}")
        return value if ok else None

    def _raise_floor(self, stream_id: str) -> None:
        millis, _, sub = stream_id.partition("-")
        self._floor = max(self._floor, (int(millis), int(sub or 0)))

    def _use_epoch(self, kid: str) -> None:
        if kid not in self.ring:
            raise LogWriteError(f"the log key in force ({kid}) is not in this process's key ring: "
                                "add it to CALLSCREEN_LOG_KEY")
        self._kid = kid

    @property
    def key_id(self) -> str:
        """The log key epoch this writer last knew to be in force."""
        return self._kid

    def epochs(self) -> dict[int, str]:
        """The log key epoch in force in each shard: its own, else (before any rotation reached
        it) the ring's oldest key for a shard holding records, and for an empty shard shard 0's,
        which it adopts with its first writer."""
        def read(pipe: Any, shard: LogShard) -> None:
            pipe.get(shard.epoch)
            pipe.xlen(shard.stream)

        shards = self.shards()
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            read(pipe, shard)
        replies = pipe.execute()
        own = {shard.index: (replies[2 * n], replies[2 * n + 1]) for n, shard in enumerate(shards)}
        first = _text(own[0][0] or self.ring.oldest)
        return {index: _text(kid) if kid else (self.ring.oldest if length else first)
                for index, (kid, length) in own.items()}

    def epoch(self) -> str:
        """The log key epoch in force: the oldest key still in force in any shard (so a rotation
        cut short reads as not done yet, and running it again finishes it)."""
        order = {kid: n for n, kid in enumerate(self.ring.ids)}
        return min(self.epochs().values(), key=lambda kid: order.get(kid, -1))

    def rotate_key(self, new_kid: str) -> str:
        """Make ``new_kid`` the log key epoch of every shard; records written from now on use it,
        records of the old epoch still verify with it, and nothing more can be appended under
        it. Shard 0 moves first, then (the registry read again, so a shard that joined meanwhile
        adopted shard 0's new epoch or is moved here) every other shard in order; each move is
        atomic in its shard, a shard not yet moved goes on accepting only the old key, and a
        run cut short is finished by running it again. Returns the old epoch. Raises
        KeyringError if the ring lacks the key, ValueError if every shard already uses it."""
        self.ring.get(new_kid)
        old = self.epoch()
        moved = self._move_epoch(SHARD_0, new_kid)
        for shard in self.shards()[1:]:
            moved += self._move_epoch(shard, new_kid)
        if not moved:
            raise ValueError(f"log key {new_kid} is already in force")
        if self._pid == os.getpid():
            self._kid = new_kid
        return old

    def _move_epoch(self, shard: LogShard, new_kid: str) -> int:
        """Move one shard's epoch to ``new_kid``; 1 if it moved, 0 if it was there already."""
        current = _text(self.client.get(shard.epoch) or b"")
        if current == new_kid:
            return 0
        if not current and self.client.eval(ADOPT_EPOCH_SCRIPT, 3, shard.epoch, shard.epochs, shard.stream,
                                             new_kid):
            return 1  # nothing was ever written there: it starts under the new key
        ok, value = self.client.eval(ROTATE_EPOCH_SCRIPT, 3, shard.epoch, shard.epochs, shard.stream, current,
                                     new_kid, self.ring.oldest)
        if not ok:
            raise LogWriteError(f"the log key epoch moved meanwhile (now {_text(value)}); try again")
        return 1

    def append(self, record: LogRecord, extra: list[Command] = (), durable: Sequence[Command] = ()) -> str:
        """Append ``record`` (and run ``extra`` commands in the same round trip); returns the stream id.

        ``durable`` (``WAITAOF``/``WAIT``, see :mod:`callscreen.durability`) rides last in the same
        round trip, on the same connection; unless the replies confirm the record this raises
        :class:`~callscreen.durability.DurabilityUnconfirmed` (the record may still exist)."""
        with self._thread_lock:
            self._ensure_chain()
            self._join()
            for _attempt in range(APPEND_ATTEMPTS):
                commands, new_head = self._plan(record, list(extra))
                stream_id = self._settle_durable(*self._send(commands, durable), new_head)
                if stream_id is not None:
                    return stream_id
                extra = []  # already applied
        raise LogWriteError("decision log append kept conflicting with another writer")

    async def append_async(self, record: LogRecord, extra: list[Command] = (),
                           durable: Sequence[Command] = ()) -> str:
        """:meth:`append` over the asyncio client. An ALLOW decision it appended (and saw confirmed,
        when ``durable`` asks) is remembered for its outcome (see :meth:`record_outcome_async`);
        one that raised is not."""
        if self.aclient is None:
            raise LogWriteError("no asyncio client configured")
        if self._task_lock is None:
            self._task_lock = asyncio.Lock()
        async with self._task_lock:
            self._ensure_chain()
            await self._join_async()
            for _attempt in range(APPEND_ATTEMPTS):
                commands, new_head = self._plan(record, list(extra))
                stream_id = self._settle_durable(*await self._send_async(commands, durable), new_head)
                if stream_id is not None:
                    if record.kind == "decision" and record.result == Result.ALLOW.value:
                        self.recent_allows.keep(DecisionRef(record.id, self._shard.index, record.campaign_id,
                                                            record.number_digest))
                    return stream_id
                extra = []
        raise LogWriteError("decision log append kept conflicting with another writer")

    def _send(self, commands: list[Command], durable: Sequence[Command]) -> tuple[list[Any], Confirmations]:
        """One round trip: on a single server one pipeline, ``durable`` last on its connection;
        in a cluster one pipeline per node on that node's own connection, concurrently, each
        followed by ``durable`` (see :mod:`callscreen.log_cluster`). Returns the replies to
        ``commands`` and each connection's (durability commands, replies)."""
        if is_cluster_client(self.client):
            try:
                return log_cluster.send(self.client, commands, durable)
            except log_cluster.ClusterAppendError as exc:
                raise LogWriteError(f"decision log append failed: {exc}") from exc
        replies = run_pipeline(self.client, [*commands, *durable])
        split = len(replies) - len(durable)
        return replies[:split], [(durable, replies[split:])]

    async def _send_async(self, commands: list[Command],
                          durable: Sequence[Command]) -> tuple[list[Any], Confirmations]:
        """:meth:`_send` over the asyncio client."""
        if is_cluster_client(self.aclient):
            try:
                return await log_cluster.send_async(self.aclient, commands, durable)
            except log_cluster.ClusterAppendError as exc:
                raise LogWriteError(f"decision log append failed: {exc}") from exc
        replies = await run_pipeline_async(self.aclient, [*commands, *durable])
        split = len(replies) - len(durable)
        return replies[:split], [(durable, replies[split:])]

    def _settle_durable(self, replies: list[Any], confirmations: Confirmations, new_head: str) -> str | None:
        """:meth:`_settle`, then the durability confirmation of a record that was written (from
        every connection that wrote part of the append)."""
        stream_id = self._settle(replies, new_head)
        if stream_id is not None:
            for durable, got in confirmations:
                if durable:
                    confirm(durable, got)
        return stream_id

    def decision_index_commands(self, record: LogRecord, attempt: bool) -> list[Command]:
        """Per-number index writes that ride in the append's round trip."""
        if not record.number_digest:
            return []
        keys = (number_key(record.number_digest, "decisions"), number_key(record.number_digest, "attempts"))
        return [("EVALSHA", INDEX_SHA, 2, *keys, ms(record.at), record.id, ms(record.at - self.retention),
                 1 if attempt else 0, ms(record.at - ATTEMPT_HISTORY), TRIM_BATCH)]

    # --- outcomes and summaries -----------------------------------------------------------

    def outcome_record(self, decision: LogRecord | DecisionRef, dialstatus: str, answered_seconds: int,
                       hangup_cause: str, origin: str = "agi") -> tuple[LogRecord, list[Command]]:
        """Plan the record of what happened to an allowed (or blocked) call: it repeats the
        decision's id, campaign and digest, and its summary goes to the decision's shard."""
        outcome = {"decision_id": decision.id, "dialstatus": dialstatus,
                   "answered_seconds": answered_seconds, "hangup_cause": hangup_cause}
        record = LogRecord(
            id=new_id("o"), at=datetime.now(UTC), kind="outcome", campaign_id=decision.campaign_id,
            number_digest=decision.number_digest, origin=origin, extra=outcome,
        )
        # kept beside the decision, in its shard
        commands: list[Command] = [("HSET", LogShard(decision.shard).outcomes, decision.id, json.dumps(outcome))]
        # A call that never left (no Dial, or our own trunk unavailable) is not an attempt.
        if decision.number_digest and dialstatus in ("", "CHANUNAVAIL"):
            commands.append(("ZREM", number_key(decision.number_digest, "attempts"), decision.id))
        return record, commands

    def record_outcome(self, decision_id: str, dialstatus: str, answered_seconds: int,
                       hangup_cause: str) -> LogRecord:
        """Log the outcome of decision ``decision_id``, read back from the store (KeyError if it
        holds no readable record of it). The sync path never uses the memory of recent ALLOWs:
        only the asyncio path (the FastAGI server's) fills it."""
        decision = self.get(decision_id)
        if decision is None:
            raise KeyError(decision_id)
        record, commands = self.outcome_record(decision, dialstatus, answered_seconds, hangup_cause)
        self.append(record, commands)
        return record

    async def record_outcome_async(self, decision_id: str, dialstatus: str, answered_seconds: int,
                                   hangup_cause: str) -> LogRecord:
        """:meth:`record_outcome` over the asyncio client. The decision comes from the memory of
        the ALLOWs this process appended (taken: an outcome comes once), else, as for a decision
        another process logged, a BLOCK, an evicted entry or a second outcome, it is read back.
        A remembered decision is not looked at in the store: the outcome is the same record
        either way, but it is written even if the stored decision was since altered or removed."""
        decision: LogRecord | DecisionRef | None = self.recent_allows.take(decision_id)
        if decision is None:
            decision = await self.get_async(decision_id)
        if decision is None:
            raise KeyError(decision_id)
        record, commands = self.outcome_record(decision, dialstatus, answered_seconds, hangup_cause)
        await self.append_async(record, commands)
        return record

    def outcome_of(self, decision_id: str) -> dict[str, Any] | None:
        found = self._per_shard(lambda pipe, shard: pipe.hget(shard.outcomes, decision_id))
        raw = next((raw for _shard, raw in found if raw is not None), None)
        return None if raw is None else json.loads(raw)

    def append_summary(self, kind: str, extra: dict[str, Any], campaign_id: str = "",
                       origin: str = "cli") -> LogRecord:
        """One record standing for a batch (e.g. a scrub), instead of a record per number."""
        record = LogRecord(id=new_id(kind[:1] or "s"), at=datetime.now(UTC), kind=kind,
                           campaign_id=campaign_id, origin=origin, extra=extra)
        self.append(record)
        return record

    # --- reading ----------------------------------------------------------------------------
    # Application reads (get, for_number, scan, query) skip damaged entries: they answer with the
    # records that can be read, and `verify`, `tail` and `export` name the others as tampered.

    def get(self, record_id: str) -> LogRecord | None:
        """The record ``record_id``, from whichever shard holds it (two round trips)."""
        for shard, stream_id in self._per_shard(lambda pipe, shard: pipe.hget(shard.ids, record_id)):
            if stream_id is not None:
                return _only_record(self.client.xrange(shard.stream, stream_id, stream_id), shard)
        return None

    async def get_async(self, record_id: str) -> LogRecord | None:
        """:meth:`get` in one round trip: each shard's lookup script reads the id's entry."""
        for shard, entries in await self._per_shard_async(lambda shard: _lookup(shard, record_id)):
            if entries:
                stream_id, fields = entries[0]
                return _only_record([(stream_id, as_hash(fields))], shard)
        return None

    def get_many(self, record_ids: list[str]) -> list[LogRecord]:
        """The records of ``record_ids`` that exist, in that order, from whichever shards hold them."""
        if not record_ids:
            return []
        located: dict[str, tuple[LogShard, Any]] = {}
        for shard, stream_ids in self._per_shard(lambda pipe, shard: pipe.hmget(shard.ids, record_ids)):
            for record_id, stream_id in zip(record_ids, stream_ids, strict=True):
                if stream_id is not None:
                    located.setdefault(record_id, (shard, stream_id))
        wanted = [located[r] for r in record_ids if r in located]
        pipe = self.client.pipeline(transaction=False)
        for shard, sid in wanted:
            pipe.xrange(shard.stream, sid, sid)
        found = (_only_record(entries, shard) for (shard, _sid), entries in zip(wanted, pipe.execute(), strict=True))
        return [record for record in found if record is not None]

    def for_number(self, digest: str, limit: int = 100) -> list[LogRecord]:
        """The newest decisions about one number, newest first."""
        ids = self.client.zrevrange(number_key(digest, "decisions"), 0, limit - 1)
        return self.get_many([_text(i) for i in ids])

    def entries(self, start: datetime | None = None, end: datetime | None = None, newest_first: bool = True,
                batch: int = 500, before: str | None = None) -> Iterator[LogEntry]:
        """Every entry in a time range, records and damaged ones alike, streamed in batches, every
        shard merged in stream-id order (ties: by shard); ``before`` is an exclusive cursor
        (:func:`cursor_of`: a stream id, or one with its shard)."""
        low = f"{ms(start)}-0" if start else "-"
        high = f"{ms(end)}-18446744073709551615" if end else "+"
        cursor, cursor_shard = _parse_cursor(before) if before else ("", 0)
        streams = []
        for shard in self.shards():
            top = high
            if cursor:  # the merged order is (stream id, shard): lower shards keep the cursor's own id
                top = cursor if shard.index < cursor_shard else "(" + cursor
            streams.append(self._shard_entries(shard, low, top, newest_first, batch))
        if len(streams) == 1:
            yield from streams[0]
        else:
            yield from heapq.merge(*streams, key=_position, reverse=newest_first)

    def _shard_entries(self, shard: LogShard, low: str, high: str, newest_first: bool,
                       batch: int) -> Iterator[LogEntry]:
        while True:
            if newest_first:
                entries = self.client.xrevrange(shard.stream, high, low, count=batch)
            else:
                entries = self.client.xrange(shard.stream, low, high, count=batch)
            for entry in entries:
                yield read_entry(*entry, shard.index)
            if len(entries) < batch:
                return
            last = _text(entries[-1][0])
            if newest_first:
                high = "(" + last
            else:
                low = "(" + last

    def scan(self, start: datetime | None = None, end: datetime | None = None, newest_first: bool = True,
             batch: int = 500, before: str | None = None) -> Iterator[LogRecord]:
        """Every readable record in a time range (see :meth:`entries`)."""
        for entry in self.entries(start, end, newest_first, batch, before):
            if isinstance(entry, LogRecord):
                yield entry

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
                return found, cursor_of(found[-1])
            found.append(record)
        return found, None

    def tail(self, count: int = 20) -> list[LogEntry]:
        """The newest ``count`` entries of the whole log, oldest first, damaged ones included."""
        newest = self._per_shard(lambda pipe, shard: pipe.xrevrange(shard.stream, count=count))
        entries = [read_entry(*entry, shard.index) for shard, found in newest for entry in found]
        return sorted(entries, key=_position)[-count:]

    # --- verification and retention ---------------------------------------------------------

    def checker(self) -> EntryCheck:
        """A check of single entries against this log's key ring and each shard's epoch history
        (read once; an unreadable history counts as none, so records under later keys are reported)."""
        shards = self.shards()
        pipe = self.client.pipeline(transaction=False)
        for shard in shards:
            pipe.hgetall(shard.epochs)
        by_shard = {}
        for shard, raw in zip(shards, pipe.execute(raise_on_error=False), strict=True):
            try:
                if isinstance(raw, Exception):
                    raise ValueError(str(raw))
                by_shard[shard.index] = EpochHistory(self.ring, _text_hash(raw))
            except ValueError:
                by_shard[shard.index] = EpochHistory(self.ring, {})
        return EntryCheck(by_shard)

    def verify(self) -> VerifyReport:
        """Check every entry (readable, MAC matching its content and stream id) and every chain
        (contiguous sequence numbers across retention tombstones, ending at its head), shard by
        shard; with more than one shard each problem names its shard. Never raises on what it
        reads: each damaged entry is one problem, and the check goes on."""
        shards = self.shards()
        check = self.checker()
        report = VerifyReport(shards=len(shards))
        for shard in shards:
            found = VerifyReport()
            self._verify_shard(shard, check, found)
            report.records += found.records
            report.chains += found.chains
            prefix = f"shard {shard.index}: " if len(shards) > 1 else ""
            report.problems.extend(prefix + problem for problem in found.problems)
        return report

    def _verify_shard(self, shard: LogShard, check: EntryCheck, report: VerifyReport) -> None:
        last: dict[str, tuple[int, str]] = {}
        try:
            trimmed = _text_hash(self.client.hgetall(shard.trimmed))
            heads = _text_hash(self.client.hgetall(shard.heads))
            tombstones = self._tombstones(shard, report, check.by_shard[shard.index])
            for entry in self._shard_entries(shard, "-", "+", newest_first=False, batch=2000):
                report.records += 1
                report.problems.extend(check(entry))
                link = entry.link if isinstance(entry, DamagedEntry) else entry
                if link is not None:
                    _follow(link, last, _anchor(trimmed.get(link.chain)), tombstones.get(link.chain, {}),
                            report.problems)
        except redis.ResponseError as exc:  # a log key replaced by one of another type
            report.problems.append(f"the log's keys cannot be read: {exc}")
            return
        for chain, head in heads.items():
            seen = last.get(chain)
            seq, mac = _bridge(tombstones.get(chain, {}), seen or _anchor(trimmed.get(chain)), None)
            if f"{seq}:{mac}" != head:
                if seen is None:
                    report.problems.append(f"chain {chain}: head {head.split(':')[0]} but no records remain")
                else:
                    report.problems.append(f"chain {chain}: ends at seq {seq} but its head is {head.split(':')[0]}")
        report.chains = len(heads)

    def _tombstones(self, shard: LogShard, report: VerifyReport,
                    epochs: EpochHistory) -> dict[str, dict[int, tuple[str, str]]]:
        """chain -> seq -> (prev, mac) of every tombstone whose tag verifies; forged ones are problems."""
        found: dict[str, dict[int, tuple[str, str]]] = {}
        for name, value in self.client.hscan_iter(shard.purged, count=1000):
            try:
                chain, seq_text = _strict_text(name, "tombstone").rsplit(" ", 1)
                prev, mac, tag, *kid = _strict_text(value, "tombstone").split(" ")
                seq = int(seq_text)
            except (ValueError, UnreadableRecord):
                report.problems.append(f"tombstone {_lenient_text(name)!r} is unreadable")
                continue
            key = epochs.key(kid[0] if kid else "")
            if key is None or not hmac.compare_digest(tombstone_tag(key, chain, seq, prev, mac), tag):
                report.problems.append(f"chain {chain}: tombstone for seq {seq} was not left by retention")
                continue
            found.setdefault(chain, {})[seq] = (prev, mac)
        return found

    def purge(self, now: datetime | None = None) -> int:
        """Drop every record older than ``retention_days`` from every shard, whatever its
        jurisdiction (the packs' periods are applied by :mod:`callscreen.retention`). A damaged
        entry goes too, without a tombstone: verify goes on reporting the gap it leaves."""
        cutoff = (now or datetime.now(UTC)) - self.retention
        removed = 0
        for shard in self.shards():
            while True:
                entries = self.client.xrange(shard.stream, "-", f"({ms(cutoff)}-0", count=1000)
                if not entries:
                    break
                read = [read_entry(*entry, shard.index) for entry in entries]
                damaged = [entry for entry in read if isinstance(entry, DamagedEntry)]
                if damaged:
                    pipe = self.client.pipeline(transaction=False)
                    for entry in damaged:
                        pipe.xdel(shard.stream, entry.stream_id)
                        if entry.record_id:
                            pipe.hdel(shard.ids, entry.record_id)
                    pipe.execute()
                removed += len(damaged) + self.remove([entry for entry in read if isinstance(entry, LogRecord)])
        return removed

    def remove(self, records: list[LogRecord]) -> int:
        """Delete ``records`` (retention), each from its shard, leaving a tombstone for each so its
        chain still verifies, and their per-number index entries and outcomes with them; returns
        how many were deleted.

        The tombstones are written before the records go, so an interrupted run leaves a chain
        that verifies; tombstones at the start of a chain are then folded into its anchor."""
        if not records:
            return 0
        shards = self.shards()
        epochs = self.epochs()
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            kid = epochs.get(record.shard, self.ring.oldest)
            if kid not in self.ring:
                raise LogWriteError(f"the log key in force ({kid}) is not in this process's key ring: "
                                    "add it to CALLSCREEN_LOG_KEY")
            tag = tombstone_tag(self.ring.get(kid), record.chain, record.seq, record.prev, record.mac)
            pipe.hset(LogShard(record.shard).purged, _tombstone_field(record.chain, record.seq),
                      f"{record.prev} {record.mac} {tag} {kid}")
        pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for record in records:
            shard = LogShard(record.shard)
            pipe.xdel(shard.stream, record.stream_id)
            pipe.hdel(shard.ids, record.id)
            if record.kind == "decision":
                pipe.hdel(shard.outcomes, record.id)
                if record.number_digest:
                    pipe.zrem(number_key(record.number_digest, "decisions"), record.id)
            elif record.kind == "outcome" and record.extra.get("decision_id"):
                for each in shards:  # the outcome summary sits beside its decision, in its shard
                    pipe.hdel(each.outcomes, record.extra["decision_id"])
        pipe.execute()
        for index in sorted({record.shard for record in records}):
            self._fold(LogShard(index), {record.chain for record in records if record.shard == index})
        return len(records)

    def _fold(self, shard: LogShard, chains: set[str]) -> None:
        """Move each chain's anchor over the tombstones that directly follow it."""
        for chain in chains:
            seq, mac = _anchor(_text(self.client.hget(shard.trimmed, chain) or b""))
            start, folded, ahead = seq, [], True
            while ahead:  # read the tombstones ahead of the anchor 500 at a time
                names = [_tombstone_field(chain, seq + n) for n in range(1, 501)]
                ahead = False
                for name, value in zip(names, self.client.hmget(shard.purged, names), strict=True):
                    if value is None or _text(value).split(" ")[0] != mac:
                        break
                    seq, mac = seq + 1, _text(value).split(" ")[1]
                    folded.append(name)
                else:
                    ahead = True
            if seq != start:
                pipe = self.client.pipeline(transaction=True)
                pipe.hset(shard.trimmed, chain, f"{seq}:{mac}")
                pipe.hdel(shard.purged, *folded)
                pipe.execute()


def _no_errors(replies: list[Any], what: str, error: type[StoreError] = LogWriteError) -> None:
    """Raise ``error`` (a failed write by default) naming ``what`` for the first error reply."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise error(f"{what}: {reply}")


def _shard_list(configured: int, registered: Any) -> list[LogShard]:
    """The configured shards and the registered ones (unreadable registry members are skipped)."""
    known = set(range(configured))
    for member in registered or ():
        text = _lenient_text(member)
        if text.isdigit():
            known.add(int(text))
    return [LogShard(index) for index in sorted(known)]


def _lookup(shard: LogShard, record_id: str) -> Command:
    """The command that reads the stream entry of ``record_id`` in ``shard`` (empty if none)."""
    return ("EVALSHA", LOOKUP_SHA, 2, shard.ids, shard.stream, record_id)


def _only_record(entries: list[Any], shard: LogShard = SHARD_0) -> LogRecord | None:
    entry = read_entry(*entries[0], shard.index) if entries else None
    return entry if isinstance(entry, LogRecord) else None


def _text_hash(raw: dict[Any, Any]) -> dict[str, str]:
    return {_lenient_text(k): _lenient_text(v) for k, v in raw.items()}



def _bridge(gaps: dict[int, tuple[str, str]], state: tuple[int, str], until: int | None) -> tuple[int, str]:
    """Walk a chain from ``state`` over the retention tombstones that continue it (up to ``until``)."""
    seq, mac = state
    while (until is None or seq + 1 < until) and seq + 1 in gaps and gaps[seq + 1][0] == mac:
        seq, mac = seq + 1, gaps[seq + 1][1]
    return seq, mac


def _follow(link: LogRecord | ChainLink, last: dict[str, tuple[int, str]], anchor: tuple[int, str],
            gaps: dict[int, tuple[str, str]], problems: list[str]) -> None:
    """Check that ``link`` continues its chain (from its genesis or retention anchor, or the
    chain's previous entry, across tombstones) and make it the chain's newest."""
    previous = last.get(link.chain)
    seq, mac = _bridge(gaps, previous or anchor, link.seq)
    if link.seq != seq + 1 or link.prev != mac:
        if previous is None:
            problems.append(f"chain {link.chain} starts at seq {link.seq}: earlier records missing")
        else:
            problems.append(f"chain {link.chain}: seq {seq} is followed by seq {link.seq} "
                            f"({link.seq - seq - 1} records missing or reordered)")
    last[link.chain] = (link.seq, link.mac)
