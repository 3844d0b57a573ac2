"""Erasure of a data subject: crypto-shredding plus a keyed suppression.

Invariants, in the order :meth:`Eraser.erase` establishes them:
1. the erasure marker ``cs:n:{D}:erased`` is set first, so the very next screening (any
   campaign) blocks with ``erased_subject`` even if a later step fails; it holds only the
   time and the erasure id, and the digest is keyed, so nothing in it names the number;
2. what can be rewritten is rewritten without personal fields: consents keep id, basis,
   purposes, source and times (evidence that a basis existed); complaints keep id, times,
   channel, status and history; opt-outs and objections lose their notes; the contact hash
   and the attempts index are deleted;
3. the subject's wrapped data key is deleted: every copy sealed under it — in the decision
   log (whose MACs cover the ciphertext, so the chains still verify), in old AOF files,
   in backups — can no longer be opened by anyone;
4. the erasure is recorded, never with the number: an access-journal entry (who, why, the keyed
   digest and the erasure id) written right after the marker, before anything is deleted, and
   a decision-log record (kind ``erasure``: the erasure id and the counts) at the end.

Erasure refuses to run while data sealed the legacy way (under the master key directly) may
remain: ``callscreen migrate`` must have finished, or the shredding would not reach it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import redis

from callscreen import codec
from callscreen.cluster import is_cluster_client
from callscreen.crypto import is_subject_sealed
from callscreen.dsr import RequestBook
from callscreen.numbers import PhoneNumber
from callscreen.store import STORE_ERRORS, Store, new_id, number_key, subject_key_key

MIGRATED_KEY = "cs:migrated"  # set by ``callscreen migrate`` once no legacy seal remains

REWRITE_WAIT_SECONDS = 30.0  # how long an erasure waits for a rewrite that was already running


def rewrite_files(server: Any, wait: float = REWRITE_WAIT_SECONDS) -> bool:
    """``BGREWRITEAOF`` then ``BGSAVE SCHEDULE`` on one server; False if it refuses.

    A rewrite already running started before the erasure and may still copy the erased key, and
    the server refuses a second one meanwhile: wait (at most ``wait`` seconds) for it to end, then
    start ours."""
    deadline = time.monotonic() + wait
    while True:
        try:
            server.execute_command("BGREWRITEAOF")
            break
        except redis.ResponseError as exc:
            if "in progress" not in str(exc) or time.monotonic() > deadline:
                return False
        except STORE_ERRORS:
            return False
        time.sleep(0.05)
    try:
        server.execute_command("BGSAVE", "SCHEDULE")  # runs once the rewrite ends
    except STORE_ERRORS:
        return False
    return True


class ErasureError(RuntimeError):
    """The erasure cannot be carried out safely; the message says why."""


@dataclass(frozen=True, slots=True)
class ErasureReport:
    erasure_id: str
    digest: str
    at: datetime
    already_erased: bool
    consents: int
    complaints: int
    decisions: int
    legacy_records_removed: int = 0
    persistence_rewritten: bool = False

    def to_dict(self) -> dict[str, Any]:
        return codec.to_dict(self)


def erased_marker(digest: str) -> str:
    return number_key(digest, "erased")


class Eraser:
    """Carries out erasures. ``log`` is the decision log; ``journal`` the access journal;
    ``complaints`` the complaint book (its records are redacted too)."""

    def __init__(self, store: Store, log: Any, journal: Any, complaints: Any) -> None:
        self.store = store
        self.client = store.client
        self.log = log
        self.journal = journal
        self.complaints = complaints

    def erase(self, number: PhoneNumber, *, reason: str, by: str, role: str = "cli") -> ErasureReport:
        return self.erase_digest(self.store.vault.digest(number.e164), reason=reason, by=by, role=role)

    def erase_digest(self, digest: str, *, reason: str, by: str, role: str = "cli",
                     request_id: str = "") -> ErasureReport:
        if not reason.strip():
            raise ErasureError("an erasure needs a reason (the request's reference)")
        if not self.client.exists(MIGRATED_KEY):
            raise ErasureError("data sealed before per-number keys may remain: run `callscreen migrate` first")
        if self.store.rekeying():  # the person's records may be between two digests
            raise ErasureError("the hash key is being rotated: erase once `callscreen keys status` shows it done")
        at = datetime.now(UTC)
        existing = self.client.get(erased_marker(digest))
        if existing is not None:
            previous = json.loads(existing)
            erasure_id, already = previous["erasure_id"], True
        else:
            erasure_id, already = new_id("er"), False
            marker = json.dumps({"at": codec.iso(at), "erasure_id": erasure_id})
            self.client.set(erased_marker(digest), marker, nx=True)  # 1: never call again
        self.journal.record(user=by, role=role, action="erasure", number_digest=digest, reason=reason,
                            subject=erasure_id)  # on record before anything is deleted
        consents = self._redact_consents(digest)  # 2: rewrite what can be rewritten
        complaints = self._redact_complaints(digest)
        self._redact_notes(digest)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(number_key(digest, "contact"), number_key(digest, "attempts"))
        pipe.delete(subject_key_key(digest))  # 3: crypto-shredding
        pipe.zcard(number_key(digest, "decisions"))
        decisions = int(pipe.execute()[-1])
        # Records written before per-number keys hold a master-key seal that shredding cannot
        # reach: they are removed the way retention removes records (tombstones keep the chain).
        legacy = [r for r in self.log.for_number(digest, 1_000_000)
                  if r.number_sealed and not is_subject_sealed(r.number_sealed)]
        removed = self.log.remove(legacy) if legacy else 0
        report = ErasureReport(erasure_id, digest, at, already, consents, complaints, decisions, removed)
        extra = {"erasure_id": erasure_id, "consents": consents, "complaints": complaints,
                 "decisions_shredded": decisions, "legacy_records_removed": removed, "repeat": already,
                 "request": request_id}
        self.log.append_summary("erasure", extra, origin=role)  # 4: on record, without the number
        RequestBook(self.client).close_for(digest, by, erasure_id)
        return replace(report, persistence_rewritten=self._compact())

    def _compact(self) -> bool:
        """Have the server rewrite its append-only file and snapshot from the current data, so the
        erased person's wrapped key is no longer in any file the server keeps (older backups are
        dealt with by rotating the master key). False if the server refused (e.g. a managed
        service that disables these commands): the operator must then compact by hand. On a
        cluster every node does, replicas too (each keeps its own files)."""
        if is_cluster_client(self.client):
            servers = [self.client.get_redis_connection(node) for node in self.client.get_nodes()]
        else:
            servers = [self.client]
        return all([rewrite_files(server) for server in servers])

    def _redact_consents(self, digest: str) -> int:
        key = number_key(digest, "consents")
        raw = self.client.hgetall(key)
        redacted = {}
        for consent_id, value in raw.items():
            data = json.loads(value)
            for name in ("number_sealed", "proof_sealed", "proof_held", "withdrawn_how"):
                data.pop(name, None)
            data["proof"] = {"form_version": (data.get("proof") or {}).get("form_version", "")}
            data["erased"] = True
            redacted[consent_id] = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        if redacted:
            self.client.hset(key, mapping=redacted)
        return len(redacted)

    def _redact_complaints(self, digest: str) -> int:
        if self.complaints is None:
            return 0
        found = self.complaints.for_number(digest)
        for complaint in found:
            self.complaints.save(replace(complaint, number_sealed="", caller_name="", said=""))
        return len(found)

    def _redact_notes(self, digest: str) -> None:
        for kind in ("optouts",):
            key = number_key(digest, kind)
            raw = self.client.hgetall(key)
            cleaned = {}
            for field, value in raw.items():
                data = json.loads(value)
                if data.get("note"):
                    data["note"] = ""
                    cleaned[field] = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            if cleaned:
                self.client.hset(key, mapping=cleaned)

    def erased_at(self, digest: str) -> datetime | None:
        raw = self.client.get(erased_marker(digest))
        return None if raw is None else codec.parse_time(json.loads(raw)["at"])
