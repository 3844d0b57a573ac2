"""The access journal: every reveal of a full number and every export of personal data.

Invariant: append-only. Entries go to the Redis stream ``cs:journal:access`` with XADD and
are removed only by retention, when the longest journal period of the policy packs is over
(:mod:`callscreen.retention`); the entry is written *before* the data is shown
or sent, so a failure to journal means nothing is revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import redis

JOURNAL_KEY = "cs:journal:access"
ACTIONS = ("reveal", "dossier_export", "access_export", "erasure_request", "suppression_lifted")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: str
    at: datetime
    user: str
    role: str
    action: str
    number_digest: str
    reason: str
    subject: str = ""  # e.g. the complaint id an export was for


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class AccessJournal:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def record(self, *, user: str, role: str, action: str, number_digest: str, reason: str,
               subject: str = "") -> str:
        if action not in ACTIONS:
            raise ValueError(f"unknown journal action {action!r}")
        if not reason.strip():
            raise ValueError("a journal entry needs a reason")
        entry_id = self.client.xadd(JOURNAL_KEY, {
            "at": datetime.now(UTC).isoformat(), "user": user, "role": role, "action": action,
            "digest": number_digest, "reason": reason, "subject": subject,
        })
        return _text(entry_id)

    def recent(self, count: int = 100, digest: str | None = None) -> list[JournalEntry]:
        """Newest first; with ``digest``, only that number's entries (scans the newest 10 000)."""
        scan = count if digest is None else 10_000
        entries = []
        for entry_id, fields in self.client.xrevrange(JOURNAL_KEY, count=scan):
            data = {_text(k): _text(v) for k, v in fields.items()}
            if digest is not None and data.get("digest") != digest:
                continue
            entries.append(JournalEntry(
                id=_text(entry_id), at=datetime.fromisoformat(data["at"]), user=data["user"],
                role=data["role"], action=data["action"], number_digest=data["digest"],
                reason=data["reason"], subject=data.get("subject", ""),
            ))
            if len(entries) >= count:
                break
        return entries

    def count(self) -> int:
        return int(self.client.xlen(JOURNAL_KEY))
