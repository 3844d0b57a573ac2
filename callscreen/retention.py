"""Retention: delete what the law no longer lets callscreen keep, jurisdiction by jurisdiction.

The periods come from each policy pack's ``[retention]`` section (see ``docs/privacy.md``). A run
deletes, per kind:

- ``decisions`` and ``outcomes``: decision-log records older than their pack's period (shard by
  shard), through
  :meth:`DecisionLog.remove` (tombstones keep every chain verifiable), with their per-number
  index entries and outcome summaries;
- ``consents``: consent records withdrawn or expired longer ago than the period;
- ``unverified_consents``: consents still awaiting the confirmation their pack requires, captured
  longer ago than the period;
- ``complaints``: complaints resolved longer ago than the period (their suppression stays);
- ``journal``: access-journal entries older than the longest journal period of any pack.

A record's pack is its campaign's; a consent's or complaint's without one is the pack of the
number's country (opened from its sealed copy), else the ``default_region`` pack.

Invariants: one run at a time across every host (a Redis lock with a token and an expiry, renewed
as the run goes); deleting never weakens a block: opt-outs, objections and suppressions are never
deleted, and a consent is deleted only if it still reads as it did when judged. Progress through
the log is kept per period in Redis, so an interrupted run resumes and each record is read once
per period it can expire under. A dry run counts and deletes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from redis.exceptions import LockError

from callscreen import codec
from callscreen.cluster import scan_keys
from callscreen.complaints import COMPLAINTS_KEY, ComplaintBook, decode
from callscreen.crypto import SealError
from callscreen.decision_log import DecisionLog, LogRecord, read_entry
from callscreen.journal import JOURNAL_KEY, AccessJournal
from callscreen.log_shards import LogShard
from callscreen.models import Consent, LegalBasis
from callscreen.numbers import InvalidNumber, normalize
from callscreen.policy import PolicyBook, PolicyPack
from callscreen.store import PREFIX, Store, ms

KINDS = ("decisions", "outcomes", "consents", "unverified_consents", "complaints", "journal")
LOCK_KEY = PREFIX + "retention:lock"
LAST_RUN_KEY = PREFIX + "retention:last"
CURSORS_KEY = PREFIX + "retention:cursors"
LOCK_SECONDS = 300  # renewed after every batch; a crashed run frees the lock after this
BATCH = 500


class RetentionBusy(RuntimeError):
    """Another process holds the retention lock."""


@dataclass
class RetentionReport:
    """What a run deleted (or, dry, would delete): counts per kind and per kind and jurisdiction."""

    started_at: datetime
    dry_run: bool = False
    finished_at: datetime | None = None
    interrupted: bool = False
    deleted: Counter[str] = field(default_factory=Counter)
    by_jurisdiction: Counter[tuple[str, str]] = field(default_factory=Counter)

    def count(self, kind: str, jurisdiction: str, n: int = 1) -> None:
        if n:
            self.deleted[kind] += n
            self.by_jurisdiction[(kind, jurisdiction)] += n

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": codec.iso(self.started_at), "finished_at": codec.iso(self.finished_at),
            "duration_seconds": round(self.duration_seconds, 3), "dry_run": self.dry_run,
            "interrupted": self.interrupted, "deleted": {k: self.deleted.get(k, 0) for k in KINDS},
            "by_jurisdiction": {f"{k}:{j}": n for (k, j), n in sorted(self.by_jurisdiction.items())},
        }


def last_run(client: redis.Redis) -> dict[str, Any] | None:
    """The report of the last completed (not dry) run, as stored; None if there was none."""
    raw = client.get(LAST_RUN_KEY)
    return None if raw is None else json.loads(raw)


def due(client: redis.Redis, every: timedelta, now: datetime | None = None) -> bool:
    """Whether the last run finished longer than ``every`` ago (or never ran)."""
    last = last_run(client)
    if last is None or not last.get("finished_at"):
        return True
    return (now or datetime.now(UTC)) - codec.parse_time(last["finished_at"]) >= every


class RetentionJob:
    """Applies the packs' retention periods to the store, the decision log and the journal."""

    def __init__(self, store: Store, log: DecisionLog, policies: PolicyBook, default_region: str,
                 journal_key: str | None = None) -> None:
        self.store = store
        self.client: redis.Redis = store.client
        self.log = log
        self.policies = policies
        self.complaints = ComplaintBook(store)
        self.journal = AccessJournal(self.client, stream=journal_key or JOURNAL_KEY)
        packs = policies.packs()
        if not packs:
            raise ValueError("no policy pack is loaded")
        self.fallback = policies.for_region(default_region) or max(
            packs, key=lambda p: p.retention.decisions_days)
        self._campaign_packs: dict[str, PolicyPack] = {}

    # --- running ------------------------------------------------------------------------------

    def run(self, now: datetime | None = None, *, dry_run: bool = False, stop: threading.Event | None = None,
            if_due: timedelta | None = None) -> RetentionReport | None:
        """One run under the lock; raises :class:`RetentionBusy` if another holds it. ``stop``
        ends the run after the current batch (``interrupted`` is then set; nothing is lost).
        With ``if_due``, returns None without running unless the last run is that old (checked
        under the lock, so processes that wake together run once)."""
        now = now or datetime.now(UTC)
        lock = self.client.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking=False, thread_local=False)
        if not lock.acquire(blocking=False):
            raise RetentionBusy("another retention run holds the lock")
        try:
            if if_due is not None and not due(self.client, if_due):
                return None
            report = RetentionReport(started_at=datetime.now(UTC), dry_run=dry_run)
            self._campaign_packs.clear()
            for phase in (self._log, self._consents, self._complaints, self._journal):
                if stop is not None and stop.is_set():
                    report.interrupted = True
                    break
                phase(now, report, dry_run, lambda: self._keep_going(lock, stop, report))
            report.finished_at = datetime.now(UTC)
            if not dry_run:
                self._record(report)
            return report
        finally:
            with contextlib.suppress(LockError):  # expired: another's lock has another token
                lock.release()

    def _keep_going(self, lock: Any, stop: threading.Event | None, report: RetentionReport) -> bool:
        """Renew the lock between batches; False once asked to stop."""
        if stop is not None and stop.is_set():
            report.interrupted = True
            return False
        lock.reacquire()  # raises LockNotOwnedError if the lock was lost: never run two at once
        return True

    def _record(self, report: RetentionReport) -> None:
        """Every deletion is accounted for in the log; only a complete run counts as the last run."""
        summary = report.as_dict()
        if sum(report.deleted.values()):
            self.log.append_summary("retention", summary, origin="retention")
        if not report.interrupted:
            self.client.set(LAST_RUN_KEY, json.dumps(summary | {"host": socket.gethostname(), "pid": os.getpid()}))

    # --- which pack governs a record ---------------------------------------------------------------

    def _campaign_pack(self, campaign_id: str) -> PolicyPack | None:
        if not campaign_id:
            return None
        if campaign_id not in self._campaign_packs:
            campaign = self.store.get_campaign(campaign_id)
            pack = self.policies.for_campaign(campaign) if campaign else None
            self._campaign_packs[campaign_id] = pack or self.fallback
        return self._campaign_packs[campaign_id]

    def _number_pack(self, sealed: str, digest: str) -> PolicyPack:
        try:
            number = self.store.open_number(digest, sealed)  # None once the subject is erased
            region = normalize(number).region if number else ""
        except (SealError, InvalidNumber, ValueError):
            region = ""
        return self.policies.for_region(region) or self.fallback

    # --- the decision log ---------------------------------------------------------------------------

    def _log_class(self, record: LogRecord) -> tuple[str, str]:
        kind = "outcomes" if record.kind == "outcome" else "decisions"
        pack = self._campaign_pack(record.campaign_id) or self.fallback
        return kind, pack.jurisdiction

    def _log(self, now: datetime, report: RetentionReport, dry_run: bool, keep_going: Any) -> None:
        """For each distinct period and each shard, walk the shard's stream from that period's
        cursor up to its cut-off (shard 0's cursors keep the names they had before shards)."""
        by_days: dict[int, set[tuple[str, str]]] = {}
        for pack in self.policies.packs():
            by_days.setdefault(pack.retention.decisions_days, set()).add(("decisions", pack.jurisdiction))
            by_days.setdefault(pack.retention.outcomes_days, set()).add(("outcomes", pack.jurisdiction))
        for days, classes in sorted(by_days.items()):
            period = f"log {days} " + hashlib.sha1(repr(sorted(classes)).encode()).hexdigest()[:12]
            for shard in self.log.shards():
                name = period if shard.index == 0 else f"{period} shard {shard.index}"
                if not self._log_shard(shard, name, now - timedelta(days=days), classes, report, dry_run,
                                       keep_going):
                    return

    def _log_shard(self, shard: LogShard, name: str, cutoff: datetime, classes: set[tuple[str, str]],
                   report: RetentionReport, dry_run: bool, keep_going: Any) -> bool:
        """One shard's records before ``cutoff`` of the given classes; False once asked to stop."""
        cursor = self.client.hget(CURSORS_KEY, name)
        low = "(" + cursor.decode() if cursor else "-"
        high = f"({ms(cutoff)}-0"
        while True:
            entries = self.client.xrange(shard.stream, low, high, count=BATCH)
            if not entries:
                return True
            # a damaged entry stays where it is, for `log verify` to report
            records = [r for r in (read_entry(*entry, shard.index) for entry in entries) if isinstance(r, LogRecord)]
            last_id = entries[-1][0].decode() if isinstance(entries[-1][0], bytes) else str(entries[-1][0])
            expired = [(r, self._log_class(r)) for r in records]
            expired = [(r, c) for r, c in expired if c in classes]
            for _record, (kind, jurisdiction) in expired:
                report.count(kind, jurisdiction)
            if not dry_run:
                self.log.remove([r for r, _c in expired])
                self.client.hset(CURSORS_KEY, name, last_id)
            low = "(" + last_id
            if not keep_going():
                return False

    # --- consents ------------------------------------------------------------------------------------

    def _consent_expired(self, consent: Consent, pack: PolicyPack, now: datetime) -> str | None:
        """The kind under which ``consent`` is past its period, or None."""
        ended = consent.withdrawn_at or (consent.expires_at if consent.expires_at and consent.expires_at <= now
                                         else None)
        if ended is not None:
            return "consents" if now - ended > timedelta(days=pack.retention.consents_days) else None
        unverified_days = pack.retention.unverified_consents_days
        if (unverified_days is not None and consent.basis is LegalBasis.CONSENT and consent.verified_at is None
                and consent.source in pack.verification_required_for
                and now - consent.captured_at > timedelta(days=unverified_days)):
            return "unverified_consents"
        return None

    def _consents(self, now: datetime, report: RetentionReport, dry_run: bool, keep_going: Any) -> None:
        batch: list[bytes] = []
        for key in scan_keys(self.client, PREFIX + "n:*:consents", count=BATCH):
            batch.append(key)
            if len(batch) >= BATCH:
                self._consent_batch(batch, now, report, dry_run)
                batch = []
                if not keep_going():
                    return
        self._consent_batch(batch, now, report, dry_run)

    def _consent_batch(self, keys: list[bytes], now: datetime, report: RetentionReport, dry_run: bool) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        for key, fields in zip(keys, pipe.execute(), strict=True):
            digest = key.decode().split("{", 1)[1].split("}", 1)[0]
            doomed: list[tuple[str, bytes]] = []
            for consent_id, raw in fields.items():
                consent = codec.consent_from(json.loads(raw))
                pack = self._number_pack(consent.number_sealed, consent.number_digest or digest)
                kind = self._consent_expired(consent, pack, now)
                if kind is not None:
                    report.count(kind, pack.jurisdiction)
                    doomed.append((consent_id.decode(), raw))
            if doomed and not dry_run:
                self.store.forget_consents(digest, doomed)

    # --- complaints and the journal -------------------------------------------------------------------

    def _complaints(self, now: datetime, report: RetentionReport, dry_run: bool, keep_going: Any) -> None:
        shortest = min(p.retention.complaints_days for p in self.policies.packs())
        newest = ms(now - timedelta(days=shortest))  # received later than this cannot be due yet
        offset = 0
        while True:
            ids = self.client.zrangebyscore(COMPLAINTS_KEY, "-inf", newest, start=offset, num=BATCH)
            if not ids:
                return
            raws = self.client.mget([PREFIX + "complaint:" + i.decode() for i in ids])
            for raw in raws:
                if raw is None:
                    continue
                complaint = decode(raw)
                resolved = self.complaints.resolved_at(complaint)
                if resolved is None:
                    continue
                pack = self._campaign_pack(complaint.campaign_id) or self._number_pack(
                    complaint.number_sealed, complaint.number_digest)
                if now - resolved > timedelta(days=pack.retention.complaints_days):
                    report.count("complaints", pack.jurisdiction)
                    if not dry_run:
                        self.complaints.forget(complaint)
                        offset -= 1
            offset += len(ids)
            if not keep_going():
                return

    def _journal(self, now: datetime, report: RetentionReport, dry_run: bool, keep_going: Any) -> None:
        """The journal names digests, not countries: it is kept for the longest journal period."""
        pack = max(self.policies.packs(), key=lambda p: p.retention.journal_days)
        cutoff = f"{ms(now - timedelta(days=pack.retention.journal_days))}-0"
        if dry_run:
            low = "-"
            while entries := self.client.xrange(self.journal.stream, low, "(" + cutoff, count=BATCH):
                report.count("journal", pack.jurisdiction, len(entries))
                low = "(" + entries[-1][0].decode()
            return
        report.count("journal", pack.jurisdiction, self.journal.trim_before(cutoff))

