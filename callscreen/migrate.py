"""``callscreen migrate``: bring data written by earlier versions up to the privacy invariants.

What it changes, step by step (each step resumable, the whole idempotent):
- ``journal``: entries of the unchained access journal (``cs:journal:access``) are appended, in
  order and with their original times, to the HMAC-chained journal; the old stream goes.
- ``contacts``: a number sealed under the master key directly is re-sealed under its
  person's data key.
- ``consents``: an id derived *without a key* (``c-`` + 20 hex of SHA-256 over the number,
  purposes, source and capture time — reversible by brute force) is replaced by the keyed id;
  the old id stays resolvable through ``cs:consent-alias:<keyed alias>`` (the old id itself is
  not stored). The number and the proof are sealed under the person's data key.
- ``complaints``: the number, the caller's name and what they said are sealed under the
  person's data key.

Progress lives in ``cs:migration`` (per step: the SCAN cursor reached, or ``done``); a run
that stops resumes where it was. When every step is done, ``cs:migrated`` is set (erasure
requires it: until then a legacy seal could escape crypto-shredding).

Decision-log records are evidence under a MAC chain and are not rewritten: records written
before per-person keys keep their master-key seal until retention removes them, or until the
person is erased — erasure removes that person's legacy records, leaving retention tombstones
so every chain still verifies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import redis

from callscreen import codec
from callscreen.cluster import is_cluster_client, scan_keys, write_pipeline
from callscreen.complaints import ComplaintBook
from callscreen.consent_import import derived_id, legacy_derived_id
from callscreen.crypto import SealError, is_subject_sealed
from callscreen.erasure import MIGRATED_KEY
from callscreen.journal import LEGACY_KEY, AccessJournal
from callscreen.numbers import InvalidNumber, normalize
from callscreen.store import (
    PREFIX,
    Store,
    consent_alias_key,
    consent_pointer_key,
    dump_consent,
    load_consent,
    number_key,
    subject_digest,
)

PROGRESS_KEY = "cs:migration"
STEPS = ("journal", "contacts", "consents", "complaints")
LEGACY_ID = re.compile(r"^c-[0-9a-f]{20}$")
BATCH = 200


@dataclass
class MigrationReport:
    changed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEPS, 0))
    skipped_steps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Migration:
    def __init__(self, store: Store, journal: AccessJournal, complaints: ComplaintBook,
                 progress: Callable[[str], None] = lambda message: None) -> None:
        self.store = store
        self.client: redis.Redis = store.client
        self.vault = store.vault
        self.journal = journal
        self.complaints = complaints
        self.say = progress

    def status(self) -> dict[str, str]:
        raw = {_text(k): _text(v) for k, v in self.client.hgetall(PROGRESS_KEY).items()}
        return {step: raw.get(step, "pending") for step in STEPS}

    def run(self) -> MigrationReport:
        report = MigrationReport()
        for step in STEPS:
            if self.status()[step] == "done":
                report.skipped_steps.append(step)
                continue
            self.say(f"migrating {step}")
            getattr(self, "_" + step)(report)
            self.client.hset(PROGRESS_KEY, step, "done")
        self.client.set(MIGRATED_KEY, codec.iso(datetime.now(UTC)) or "")
        return report

    # --- the steps ---------------------------------------------------------------------------

    def _scan(self, step: str, match: str) -> Any:
        """SCAN ``match``, saving the cursor after each batch so an interrupted run resumes. A cluster
        is scanned node by node without a saved cursor: an interrupted step starts over (every
        step skips what it already changed)."""
        if is_cluster_client(self.client):
            batch: list[str] = []
            for key in scan_keys(self.client, match, count=BATCH):
                batch.append(_text(key))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
            yield batch
            return
        saved = self.client.hget(PROGRESS_KEY, step)
        cursor = int(saved) if saved and _text(saved).isdigit() else 0
        while True:
            cursor, keys = self.client.scan(cursor, match=match, count=BATCH)
            yield [_text(k) for k in keys]
            if cursor == 0:
                return
            self.client.hset(PROGRESS_KEY, step, cursor)

    def _journal(self, report: MigrationReport) -> None:
        while entries := self.client.xrange(LEGACY_KEY, count=BATCH):
            for entry_id, fields in entries:
                data = {_text(k): _text(v) for k, v in fields.items()}
                self.journal.record(user=data.get("user", "?"), role=data.get("role", "?"),
                                    action=data.get("action", "reveal"), number_digest=data.get("digest", ""),
                                    reason=data.get("reason") or "(none recorded)", subject=data.get("subject", ""),
                                    at=datetime.fromisoformat(data["at"]) if data.get("at") else None)
                self.client.xdel(LEGACY_KEY, entry_id)  # moved: at most one entry repeats after a crash
                report.changed["journal"] += 1
        self.client.delete(LEGACY_KEY)

    def _contacts(self, report: MigrationReport) -> None:
        for keys in self._scan("contacts", PREFIX + "n:*:contact"):
            for key in keys:
                sealed = self.client.hget(key, "sealed")
                if sealed is None or is_subject_sealed(_text(sealed)):
                    continue
                digest = subject_digest(key)
                subject = self.store.subject(digest, create=True)
                number = self.store.open_number(digest, _text(sealed), subject)
                if number is None or subject.key is None:
                    report.problems.append(f"{key}: sealed number does not open; left as it is")
                    continue
                self.client.hset(key, "sealed", subject.seal("number", number))
                report.changed["contacts"] += 1

    def _consents(self, report: MigrationReport) -> None:
        for keys in self._scan("consents", PREFIX + "n:*:consents"):
            for key in keys:
                digest = subject_digest(key)
                subject = self.store.subject(digest, create=True)
                if subject.key is None:
                    continue
                for consent_id, raw in self.client.hgetall(key).items():
                    if self._consent(digest, subject, _text(consent_id), raw):
                        report.changed["consents"] += 1

    def _consent(self, digest: str, subject: Any, consent_id: str, raw: bytes) -> bool:
        data = json.loads(raw)
        sealed = data.get("number_sealed", "")
        private = {k: v for k, v in (data.get("proof") or {}).items() if k != "form_version" and v}
        legacy_id = bool(LEGACY_ID.match(consent_id))
        if not legacy_id and (not sealed or is_subject_sealed(sealed)) and not private:
            return False
        consent = load_consent(raw, subject)
        number = self.store.open_number(digest, sealed, subject) if sealed else self.store.reveal(digest)
        new_id = consent_id
        if legacy_id and number:
            try:
                phone = normalize(number)
            except InvalidNumber:
                phone = None
            if phone is not None and consent_id == legacy_derived_id(phone, consent.purposes, consent.source,
                                                                     consent.captured_at):
                new_id = derived_id(self.vault, phone, consent.purposes, consent.source, consent.captured_at)
        updated = replace(consent, id=new_id, number_sealed=subject.seal("number", number) if number else "")
        if new_id != consent_id:  # first the ways to the new id, so a crash loses no consent
            pipe = write_pipeline(self.client)
            pipe.set(consent_alias_key(self.vault.alias(consent_id)), new_id)
            pipe.set(consent_pointer_key(new_id), digest)
            pipe.execute()
        pipe = self.client.pipeline(transaction=True)  # the number's keys: one slot
        pipe.hset(number_key(digest, "consents"), new_id, dump_consent(updated, subject))
        if new_id != consent_id:
            pipe.hdel(number_key(digest, "consents"), consent_id)
        pipe.execute()
        if new_id != consent_id:
            self.client.delete(consent_pointer_key(consent_id))
        return True

    def _complaints(self, report: MigrationReport) -> None:
        for keys in self._scan("complaints", PREFIX + "complaint:*"):
            for key in keys:
                raw = self.client.get(key)
                if raw is None or self.client.type(key) != b"string":
                    continue
                data = json.loads(raw)
                sealed = data.get("number_sealed", "")
                if (not sealed or is_subject_sealed(sealed)) and all(
                        not data.get(n) or is_subject_sealed(data[n]) for n in ("caller_name", "said")):
                    continue
                complaint = self.complaints.get(data["id"])
                if complaint is None:
                    continue
                subject = self.store.subject(complaint.number_digest, create=True)
                try:
                    number = subject.open("number", sealed) if sealed else ""
                except SealError:
                    report.problems.append(f"{key}: sealed number does not open; left as it is")
                    continue
                resealed = subject.seal("number", number) if number and subject.key is not None else ""
                self.complaints.save(replace(complaint, number_sealed=resealed))
                report.changed["complaints"] += 1
