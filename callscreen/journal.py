"""The access journal: every reveal of a full number, every export of personal data (from the
dashboard or the command line), every erasure and lifted suppression — who, when, why, what.

Invariants:
- Written *before* the data is shown or sent, so a failure to journal means nothing is revealed.
- Append-only and tamper-evident: entries go to the stream ``cs:{journal}:entries`` as one
  HMAC chain under ``log_key`` (``seq``, ``prev`` MAC, ``mac`` over both and the entry). An
  append is compare-and-set on the head ``cs:{journal}:head`` (a Lua script), callscreen has
  no code path that trims or deletes entries, and :meth:`AccessJournal.verify` detects an
  altered, removed or reordered entry and a cut tail. Without the log key no one can write
  entries that verify. Retention removes old entries only through :meth:`AccessJournal.trim_before`,
  which first anchors the chain at the last removed entry, so the rest still verifies.
- An entry names a number only by its keyed digest, never in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from callscreen.store import _check, run_pipeline, script

JOURNAL_KEY = "cs:{journal}:entries"
HEAD_KEY = "cs:{journal}:head"
ANCHOR_KEY = "cs:{journal}:trimmed"  # seq:mac of the last entry removed by retention
LEGACY_KEY = "cs:journal:access"  # the unchained stream of earlier versions (``callscreen migrate``)
GENESIS = "genesis"
ACTIONS = (
    "reveal", "dossier_export", "access_export", "log_export", "erasure_request", "erasure",
    "suppression_lifted",
)
FIELDS = ("at", "user", "role", "action", "digest", "reason", "subject")

APPEND_SHA = script("""
local head = redis.call('GET', KEYS[2])
if not head then head = '' end
if head ~= ARGV[1] then return {0, head} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[2])
return {1, id}
""")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: str
    at: datetime
    user: str
    role: str
    action: str
    number_digest: str
    reason: str
    subject: str = ""  # e.g. the complaint id an export was for, or the erasure id


@dataclass
class JournalReport:
    entries: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _mac(key: bytes, seq: int, prev: str, data: dict[str, str]) -> str:
    body = json.dumps([data.get(name, "") for name in FIELDS], ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, f"journal\n{seq}\n{prev}\n{body}".encode(), hashlib.sha256).hexdigest()


# Retention: anchor the chain at the last entry older than the cut-off, then trim up to it.
# KEYS: stream, anchor. ARGV: the cut-off stream id (entries before it go), "seq:mac" of the
# last entry before it.
TRIM_SHA = script("""
redis.call('SET', KEYS[2], ARGV[2])
local before = redis.call('XLEN', KEYS[1])
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[1])
return before - redis.call('XLEN', KEYS[1])
""")


class AccessJournal:
    """The journal in ``stream``; ``key`` (the log key) is needed to append and verify."""

    def __init__(self, client: redis.Redis, key: bytes | None = None, stream: str = JOURNAL_KEY) -> None:
        if key is not None and len(key) < 32:
            raise ValueError("the journal key must be at least 32 bytes")
        self.client = client
        self._key = key
        self.stream = stream

    def record(self, *, user: str, role: str, action: str, number_digest: str, reason: str,
               subject: str = "", at: datetime | None = None) -> str:
        """Append one entry; returns its stream id. Raises ValueError for a bad action or no reason."""
        if self._key is None:
            raise ValueError("appending to the journal needs the log key")
        if action not in ACTIONS:
            raise ValueError(f"unknown journal action {action!r}")
        if not reason.strip():
            raise ValueError("a journal entry needs a reason")
        data = {"at": (at or datetime.now(UTC)).isoformat(), "user": user, "role": role, "action": action,
                "digest": number_digest, "reason": reason, "subject": subject}
        head = _text(self.client.get(HEAD_KEY) or b"")
        for _attempt in range(5):
            seq, prev = (int(head.split(":", 1)[0]), head.split(":", 1)[1]) if head else (0, GENESIS)
            mac = _mac(self._key, seq + 1, prev, data)
            flat = [x for name in FIELDS for x in (name, data[name])]
            reply = _check(run_pipeline(self.client, [(
                "EVALSHA", APPEND_SHA, 2, self.stream, HEAD_KEY, head, f"{seq + 1}:{mac}",
                *flat, "seq", seq + 1, "prev", prev, "mac", mac)])[0])
            if int(reply[0]):
                return _text(reply[1])
            head = _text(reply[1])
        raise redis.RedisError("the access journal kept conflicting with other writers")

    def recent(self, count: int = 100, digest: str | None = None, action: str | None = None) -> list[JournalEntry]:
        """Newest first; with ``digest`` or ``action``, only matching entries (scans the newest 10 000)."""
        scan = count if digest is None and action is None else 10_000
        entries = []
        for entry_id, fields in self.client.xrevrange(self.stream, count=scan):
            data = {_text(k): _text(v) for k, v in fields.items()}
            if (digest is not None and data.get("digest") != digest) or (action and data.get("action") != action):
                continue
            entries.append(_entry(entry_id, data))
            if len(entries) >= count:
                break
        return entries

    def count(self) -> int:
        return int(self.client.xlen(self.stream))

    def trim_before(self, cutoff: str) -> int:
        """Remove entries with stream ids before ``cutoff`` (retention); returns how many went."""
        last = self.client.xrevrange(self.stream, "(" + cutoff, "-", count=1)
        if not last:
            return 0
        _entry_id, fields = last[0]
        data = {_text(k): _text(v) for k, v in fields.items()}
        return int(_check(run_pipeline(self.client, [(
            "EVALSHA", TRIM_SHA, 2, self.stream, ANCHOR_KEY, cutoff,
            f"{data.get('seq', 0)}:{data.get('mac', '')}")])[0]))

    def verify(self) -> JournalReport:
        """Recompute every MAC and check the chain runs unbroken from genesis (or from the
        retention anchor) to the head."""
        if self._key is None:
            raise ValueError("verifying the journal needs the log key")
        report = JournalReport()
        anchor = _text(self.client.get(ANCHOR_KEY) or b"")
        seq, prev = (int(anchor.split(":", 1)[0]), anchor.split(":", 1)[1]) if anchor else (0, GENESIS)
        for entry_id, fields in self.client.xrange(self.stream):
            data = {_text(k): _text(v) for k, v in fields.items()}
            report.entries += 1
            sid = _text(entry_id)
            if int(data.get("seq", 0)) != seq + 1 or data.get("prev") != prev:
                report.problems.append(f"{sid}: follows seq {seq} but claims seq {data.get('seq')} (entries missing)")
            if not hmac.compare_digest(_mac(self._key, int(data.get("seq", 0)), data.get("prev", ""), data),
                                       data.get("mac", "")):
                report.problems.append(f"{sid}: MAC does not match its content")
            seq, prev = int(data.get("seq", 0)), data.get("mac", "")
        head = _text(self.client.get(HEAD_KEY) or b"")
        if head != (f"{seq}:{prev}" if seq else ""):
            report.problems.append(f"the journal ends at seq {seq} but its head is {head.split(':')[0] or 0}")
        return report


def _entry(entry_id: bytes | str, data: dict[str, str]) -> JournalEntry:
    return JournalEntry(
        id=_text(entry_id), at=datetime.fromisoformat(data["at"]), user=data["user"], role=data["role"],
        action=data["action"], number_digest=data["digest"], reason=data["reason"],
        subject=data.get("subject", ""),
    )
