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
- Like the decision log, the journal follows the log key's *epochs*: each entry names the key
  its MAC was made with, the append script refuses any key but the one in force
  (``cs:{journal}:epoch``, moved by ``callscreen keys rotate log``), and verify checks each entry
  with its key and reports one made with a key that was not in force where it stands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from callscreen.keys import ROTATE_EPOCH_SCRIPT, EpochHistory, Keyring
from callscreen.store import _check, run_pipeline, script

JOURNAL_KEY = "cs:{journal}:entries"
HEAD_KEY = "cs:{journal}:head"
ANCHOR_KEY = "cs:{journal}:trimmed"  # seq:mac of the last entry removed by retention
EPOCH_KEY = "cs:{journal}:epoch"  # the log key in force for the journal
EPOCHS_KEY = "cs:{journal}:epochs"  # log key id -> stream id after which it is in force
LEGACY_KEY = "cs:journal:access"  # the unchained stream of earlier versions (``callscreen migrate``)
GENESIS = "genesis"
ACTIONS = (
    "reveal", "dossier_export", "access_export", "log_export", "erasure_request", "erasure",
    "suppression_lifted",
)
FIELDS = ("at", "user", "role", "action", "digest", "reason", "subject")

APPEND_SHA = script("""
local epoch = redis.call('GET', KEYS[3])
if epoch and epoch ~= ARGV[3] then return {2, epoch} end
local head = redis.call('GET', KEYS[2])
if not head then head = '' end
if head ~= ARGV[1] then return {0, head} end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 4))
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

    def __init__(self, client: redis.Redis, key: bytes | Keyring | None = None, stream: str = JOURNAL_KEY) -> None:
        ring = key if isinstance(key, Keyring) else Keyring.single("log_key", key or b"")
        if any(len(material) < 32 for _kid, material in ring):
            raise ValueError("the journal key must be at least 32 bytes")
        self.client = client
        self.ring = ring
        self._kid = ring.oldest if ring else ""  # until the store names the epoch in force
        self.stream = stream

    def epoch(self) -> str:
        """The log key in force for the journal (the ring's oldest before any rotation)."""
        return _text(self.client.get(EPOCH_KEY) or self.ring.oldest)

    def rotate_key(self, new_kid: str) -> str:
        """Put log key ``new_kid`` in force for the journal (see :meth:`DecisionLog.rotate_key`)."""
        self.ring.get(new_kid)
        current = _text(self.client.get(EPOCH_KEY) or b"")
        old = current or self.ring.oldest
        if old == new_kid:
            return old
        ok, value = self.client.eval(ROTATE_EPOCH_SCRIPT, 3, EPOCH_KEY, EPOCHS_KEY, self.stream, current, new_kid,
                                     self.ring.oldest)
        if not ok:
            raise redis.RedisError(f"the journal's key epoch moved meanwhile (now {_text(value)}); try again")
        self._kid = new_kid
        return old

    def record(self, *, user: str, role: str, action: str, number_digest: str, reason: str,
               subject: str = "", at: datetime | None = None) -> str:
        """Append one entry; returns its stream id. Raises ValueError for a bad action or no reason."""
        if not self.ring:
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
            mac = _mac(self.ring.get(self._kid), seq + 1, prev, data)
            flat = [x for name in FIELDS for x in (name, data[name])]
            reply = _check(run_pipeline(self.client, [(
                "EVALSHA", APPEND_SHA, 3, self.stream, HEAD_KEY, EPOCH_KEY, head, f"{seq + 1}:{mac}", self._kid,
                *flat, "seq", seq + 1, "prev", prev, "mac", mac, "kid", self._kid)])[0])
            if int(reply[0]) == 2:  # the log key was rotated: write under the key now in force
                if _text(reply[1]) not in self.ring:
                    raise ValueError(f"the log key in force ({_text(reply[1])}) is not in this process's key ring")
                self._kid = _text(reply[1])
                continue
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
        if not self.ring:
            raise ValueError("verifying the journal needs the log key")
        report = JournalReport()
        epochs = EpochHistory(self.ring, {_text(k): _text(v) for k, v in self.client.hgetall(EPOCHS_KEY).items()})
        anchor = _text(self.client.get(ANCHOR_KEY) or b"")
        seq, prev = (int(anchor.split(":", 1)[0]), anchor.split(":", 1)[1]) if anchor else (0, GENESIS)
        for entry_id, fields in self.client.xrange(self.stream):
            data = {_text(k): _text(v) for k, v in fields.items()}
            report.entries += 1
            sid = _text(entry_id)
            if int(data.get("seq", 0)) != seq + 1 or data.get("prev") != prev:
                report.problems.append(f"{sid}: follows seq {seq} but claims seq {data.get('seq')} (entries missing)")
            misplaced = epochs.misplaced(data.get("kid", ""), sid)
            if misplaced:
                report.problems.append(f"{sid}: {misplaced}")
            key = epochs.key(data.get("kid", ""))
            if key is None or not hmac.compare_digest(_mac(key, int(data.get("seq", 0)), data.get("prev", ""), data),
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
