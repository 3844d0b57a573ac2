"""Complaints: intake, immediate suppression, linked decisions, status and the dossier.

Invariants:
- filing a complaint suppresses the number *before* anything else is written, through
  :meth:`Store.suppress`, so the very next screening blocks with ``complaint_suppressed``
  even if the rest of the intake fails;
- a complaint keeps its number only as a keyed digest plus a sealed copy;
- status moves only along :data:`TRANSITIONS`; every change is appended to its history
  with who made it and why, and an escalation names the regulator;
- lifting the suppression is a separate, explicit act and never a side effect of resolving.

Storage: ``cs:complaint:<id>`` (JSON), ``cs:complaints`` (sorted set by receipt time),
``cs:complaints:open`` (set of ids not yet resolved), ``cs:n:{digest}:complaints`` (set of
the number's complaint ids, in the number's cluster slot).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import redis

from callscreen import codec
from callscreen.cluster import write_pipeline
from callscreen.models import Suppression
from callscreen.numbers import PhoneNumber, mask
from callscreen.store import PREFIX, Store, Subject, new_id, number_key

COMPLAINTS_KEY = PREFIX + "complaints"
OPEN_KEY = PREFIX + "complaints:open"
LINK_WINDOW = timedelta(hours=6)
LINK_SCAN = 500

CHANNELS = ("phone", "email", "letter", "web_form", "in_person", "sms", "regulator", "api")
REGULATORS = (
    "roskomnadzor",  # RU: personal data (152-FZ)
    "fas",  # RU: advertising law (38-FZ art. 18)
    "ftc",  # US: Telemarketing Sales Rule, National DNC Registry
    "fcc",  # US: TCPA
    "state_ag",  # US: state attorneys general
    "ico",  # UK: PECR and UK GDPR
    "ofcom",  # UK: persistent misuse of a network
    "dpa",  # an EU/EEA data protection authority (GDPR)
    "other",
)


class ComplaintError(ValueError):
    """A complaint cannot be filed or changed as asked; the message says why."""


class Status(StrEnum):
    NEW = "new"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset({Status.INVESTIGATING, Status.ESCALATED}),
    Status.INVESTIGATING: frozenset({Status.RESOLVED, Status.ESCALATED}),
    Status.ESCALATED: frozenset({Status.RESOLVED}),
    Status.RESOLVED: frozenset(),
}


class DecisionSource(Protocol):
    """What the complaint book needs from the decision log."""

    def for_number(self, digest: str, limit: int = ...) -> Sequence[Any]: ...

    def get(self, decision_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class StatusChange:
    at: datetime
    by: str
    from_status: str
    to_status: str
    note: str = ""
    regulator: str = ""
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Complaint:
    """A callee's complaint about a call. ``call_at`` is when they say the call came."""

    id: str
    number_digest: str
    number_sealed: str
    call_at: datetime
    received_at: datetime
    channel: str
    caller_name: str = ""
    said: str = ""
    filed_by: str = ""
    status: Status = Status.NEW
    regulator: str = ""
    regulator_reference: str = ""
    linked_decisions: tuple[str, ...] = ()
    campaign_id: str = ""
    history: tuple[StatusChange, ...] = field(default=())

    @property
    def open(self) -> bool:
        return self.status is not Status.RESOLVED


def complaint_key(complaint_id: str) -> str:
    return f"{PREFIX}complaint:{complaint_id}"


PERSONAL_FIELDS = ("number_sealed", "caller_name", "said")  # sealed under the subject's data key


def encode(complaint: Complaint, subject: Subject) -> str:
    """Complaint JSON as stored: what the caller said and their name sealed under the number's
    data key (the number itself already is)."""
    data = codec.to_dict(complaint)
    for name in ("caller_name", "said"):
        data[name] = subject.seal("complaint." + name, data[name]) if subject.key is not None else ""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def decode(raw: bytes | str, subject: Subject | None = None) -> Complaint:
    """A stored complaint; with ``subject``, its personal fields opened (``[erased]`` if shredded)."""
    data = json.loads(raw)
    if subject is not None:
        for name in ("caller_name", "said"):
            data[name] = subject.show("complaint." + name, data.get(name, ""))
    history = tuple(
        StatusChange(**{**h, "at": codec.parse_time(h["at"])}) for h in data.get("history", ())
    )
    return Complaint(
        id=data["id"],
        number_digest=data["number_digest"],
        number_sealed=data.get("number_sealed", ""),
        call_at=codec.parse_time(data["call_at"]),  # type: ignore[arg-type]
        received_at=codec.parse_time(data["received_at"]),  # type: ignore[arg-type]
        channel=data["channel"],
        caller_name=data.get("caller_name", ""),
        said=data.get("said", ""),
        filed_by=data.get("filed_by", ""),
        status=Status(data.get("status", "new")),
        regulator=data.get("regulator", ""),
        regulator_reference=data.get("regulator_reference", ""),
        linked_decisions=tuple(data.get("linked_decisions", ())),
        campaign_id=data.get("campaign_id", ""),
        history=history,
    )


def _attr(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, dict):
        return record.get(name, default)
    return getattr(record, name, default)


def _moment(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
    if isinstance(value, str):
        try:
            return codec.parse_time(value)
        except ValueError:
            return None
    return None


def near_call(records: Iterable[Any], call_at: datetime, window: timedelta = LINK_WINDOW) -> list[Any]:
    """Decisions within ``window`` of the reported call time, nearest first, ALLOWs before BLOCKs.

    An ALLOW is a call that was actually placed, so it is the likeliest match.
    """
    scored = []
    for record in records:
        at = _moment(_attr(record, "at"))
        if at is None or abs(at - call_at) > window:
            continue
        allowed = str(_attr(record, "result", "")) == "ALLOW"
        scored.append((0 if allowed else 1, abs(at - call_at), record))
    scored.sort(key=lambda item: (item[0], item[1]))
    return [record for *_, record in scored]


class ComplaintBook:
    """Files, reads and moves complaints. The web pages and the API both go through here."""

    def __init__(self, store: Store, decisions: DecisionSource | None = None) -> None:
        self.store = store
        self.client: redis.Redis = store.client
        self.decisions = decisions

    # intake --------------------------------------------------------------------------
    def file(
        self,
        number: PhoneNumber,
        call_at: datetime,
        channel: str,
        *,
        caller_name: str = "",
        said: str = "",
        filed_by: str = "",
        received_at: datetime | None = None,
    ) -> Complaint:
        """Record a complaint; the number is suppressed first, at once, for every campaign."""
        if channel not in CHANNELS:
            raise ComplaintError(f"channel must be one of {', '.join(CHANNELS)}")
        if call_at.tzinfo is None:
            raise ComplaintError("call time must carry a timezone")
        received = received_at or datetime.now(UTC)
        complaint_id = new_id("cmp")
        digest = self.store.vault.digest(number.e164)
        self.store.suppress(digest, Suppression(complaint_id=complaint_id, at=received))
        subject = self.store.subject(digest, create=True)
        linked = self._link(digest, call_at)
        complaint = Complaint(
            id=complaint_id,
            number_digest=digest,
            number_sealed=subject.seal("number", number.e164) if subject.key is not None else "",
            call_at=call_at.astimezone(UTC),
            received_at=received,
            channel=channel,
            caller_name=caller_name,
            said=said,
            filed_by=filed_by,
            linked_decisions=tuple(str(_attr(r, "id")) for r in linked),
            campaign_id=str(_attr(linked[0], "campaign_id", "") or "") if linked else "",
            history=(StatusChange(at=received, by=filed_by, from_status="", to_status=Status.NEW.value),),
        )
        pipe = write_pipeline(self.client)
        self.store.remember_number(number, pipe, subject)
        pipe.set(complaint_key(complaint_id), encode(complaint, subject))
        pipe.zadd(COMPLAINTS_KEY, {complaint_id: int(received.timestamp() * 1000)})
        pipe.sadd(OPEN_KEY, complaint_id)
        pipe.sadd(number_key(digest, "complaints"), complaint_id)
        pipe.execute()
        return complaint

    def _link(self, digest: str, call_at: datetime) -> list[Any]:
        if self.decisions is None:
            return []
        return near_call(self.decisions.for_number(digest, LINK_SCAN), call_at)

    def relink(self, complaint_id: str) -> Complaint:
        """Look for matching decisions again (e.g. after the log caught up)."""
        complaint = self.require(complaint_id)
        linked = self._link(complaint.number_digest, complaint.call_at)
        updated = replace(
            complaint,
            linked_decisions=tuple(str(_attr(r, "id")) for r in linked),
            campaign_id=str(_attr(linked[0], "campaign_id", "") or "") if linked else complaint.campaign_id,
        )
        self.save(updated)
        return updated

    def save(self, complaint: Complaint) -> None:
        """Write a complaint back (its personal fields sealed under the number's data key)."""
        self.client.set(complaint_key(complaint.id), encode(complaint, self.store.subject(complaint.number_digest)))

    # reading -----------------------------------------------------------------------------
    def get(self, complaint_id: str) -> Complaint | None:
        raw = self.client.get(complaint_key(complaint_id))
        if raw is None:
            return None
        return decode(raw, self.store.subject(json.loads(raw)["number_digest"]))

    def require(self, complaint_id: str) -> Complaint:
        complaint = self.get(complaint_id)
        if complaint is None:
            raise KeyError(complaint_id)
        return complaint

    def _many(self, ids: Sequence[Any]) -> list[Complaint]:
        if not ids:
            return []
        raws = [r for r in self.client.mget([complaint_key(codec_text(i)) for i in ids]) if r is not None]
        datas = [json.loads(r) for r in raws]
        subjects = self.store.subjects([d["number_digest"] for d in datas])
        return [decode(r, subjects[d["number_digest"]]) for r, d in zip(raws, datas, strict=True)]

    def recent(self, offset: int = 0, limit: int = 50, status: Status | None = None) -> list[Complaint]:
        """Newest first. With ``status``, filters that page of results only after reading it."""
        if status is None:
            ids = self.client.zrevrange(COMPLAINTS_KEY, offset, offset + limit - 1)
            return self._many(ids)
        found: list[Complaint] = []
        start = 0
        skipped = 0
        while len(found) < limit:
            ids = self.client.zrevrange(COMPLAINTS_KEY, start, start + 199)
            if not ids:
                break
            for complaint in self._many(ids):
                if complaint.status is status:
                    if skipped < offset:
                        skipped += 1
                    elif len(found) < limit:
                        found.append(complaint)
            start += 200
        return found

    def open_complaints(self) -> list[Complaint]:
        found = self._many(sorted(self.client.smembers(OPEN_KEY)))
        return sorted(found, key=lambda c: c.received_at, reverse=True)

    def open_count(self) -> int:
        return int(self.client.scard(OPEN_KEY))

    def resolved_at(self, complaint: Complaint) -> datetime | None:
        """When the complaint was (last) resolved, from its history; None while it is open."""
        if complaint.open:
            return None
        moments = [h.at for h in complaint.history if h.to_status == Status.RESOLVED.value]
        return max(moments) if moments else complaint.received_at

    def forget(self, complaint: Complaint) -> None:
        """Delete a resolved complaint (retention). Its suppression, a blocking fact like an
        opt-out, stays until lifted on purpose (:meth:`Store.lift_suppression`)."""
        if complaint.open:
            raise ComplaintError(f"complaint {complaint.id} is not resolved")
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(complaint_key(complaint.id))
        pipe.zrem(COMPLAINTS_KEY, complaint.id)
        pipe.srem(OPEN_KEY, complaint.id)
        pipe.srem(number_key(complaint.number_digest, "complaints"), complaint.id)
        pipe.execute()

    def for_number(self, digest: str) -> list[Complaint]:
        found = self._many(sorted(self.client.smembers(number_key(digest, "complaints"))))
        return sorted(found, key=lambda c: c.received_at, reverse=True)

    def suppression_active(self, complaint: Complaint) -> bool:
        return bool(self.client.hexists(number_key(complaint.number_digest, "suppressions"), complaint.id))

    # changes -------------------------------------------------------------------------------
    def move(
        self,
        complaint_id: str,
        to: Status | str,
        by: str,
        note: str = "",
        regulator: str = "",
        reference: str = "",
    ) -> Complaint:
        """Change status along :data:`TRANSITIONS`; escalation needs a regulator, resolution a note."""
        try:
            target = Status(to)
        except ValueError as exc:
            raise ComplaintError(f"unknown status {to!r}") from exc
        complaint = self.require(complaint_id)
        if target not in TRANSITIONS[complaint.status]:
            raise ComplaintError(f"cannot move a complaint from {complaint.status.value} to {target.value}")
        if target is Status.ESCALATED and regulator not in REGULATORS:
            raise ComplaintError("escalation needs a regulator: " + ", ".join(REGULATORS))
        if target is Status.RESOLVED and not note.strip():
            raise ComplaintError("say how the complaint was resolved")
        change = StatusChange(
            at=datetime.now(UTC), by=by, from_status=complaint.status.value, to_status=target.value,
            note=note, regulator=regulator if target is Status.ESCALATED else "", reference=reference,
        )
        updated = replace(
            complaint,
            status=target,
            regulator=regulator if target is Status.ESCALATED else complaint.regulator,
            regulator_reference=reference if target is Status.ESCALATED else complaint.regulator_reference,
            history=(*complaint.history, change),
        )
        pipe = write_pipeline(self.client)
        pipe.set(complaint_key(complaint_id), encode(updated, self.store.subject(complaint.number_digest)))
        if updated.open:
            pipe.sadd(OPEN_KEY, complaint_id)
        else:
            pipe.srem(OPEN_KEY, complaint_id)
        pipe.execute()
        return updated

    def lift_suppression(self, complaint_id: str, by: str, reason: str) -> Complaint:
        """Let the number be called again (only on an explicit, reasoned decision)."""
        if not reason.strip():
            raise ComplaintError("lifting a suppression needs a reason")
        complaint = self.require(complaint_id)
        self.store.lift_suppression(complaint.number_digest, complaint_id)
        change = StatusChange(
            at=datetime.now(UTC), by=by, from_status=complaint.status.value,
            to_status=complaint.status.value, note="suppression lifted: " + reason,
        )
        updated = replace(complaint, history=(*complaint.history, change))
        self.save(updated)
        return updated

    # the answer to "where did you get my number" -------------------------------------------
    def linked_records(self, complaint: Complaint) -> list[Any]:
        if self.decisions is None:
            return []
        records = [self.decisions.get(i) for i in complaint.linked_decisions]
        return [r for r in records if r is not None]

    def provenance(self, complaint: Complaint) -> list[dict[str, Any]]:
        """For each linked decision that rested on a basis: the decision, its basis and the
        consent record with its proof (source, form text and version, page, IP, recording)."""
        answers = []
        for record in self.linked_records(complaint):
            basis = _attr(record, "basis")
            consent_id = _attr(basis, "consent_id") if basis else None
            consent = self.store.get_consent(consent_id) if consent_id else None
            answers.append({"decision": record, "basis": basis, "consent": consent})
        return answers

    def dossier(self, complaint_id: str, *, serialize_record: Any = None) -> dict[str, Any]:
        """Everything needed to answer the complainant or a regulator, as plain JSON data.

        The number appears masked; ``serialize_record`` turns a decision-log record into a dict
        (defaults to the record's own fields minus the sealed number).
        """
        complaint = self.require(complaint_id)
        number = self.store.reveal(complaint.number_digest) or ""
        serialize = serialize_record or record_to_dict
        consents = self.store.consents_for(complaint.number_digest)
        return {
            "generated_at": codec.iso(datetime.now(UTC)),
            "complaint": complaint_to_dict(complaint),
            "number_masked": mask(number) if number else "",
            "suppression_active": self.suppression_active(complaint),
            "linked_decisions": [serialize(r) for r in self.linked_records(complaint)],
            "provenance": [
                {
                    "decision_id": str(_attr(p["decision"], "id")),
                    "basis": _plain_basis(p["basis"]),
                    "consent": consent_to_dict(p["consent"]) if p["consent"] else None,
                }
                for p in self.provenance(complaint)
            ],
            "consents": [consent_to_dict(c) for c in consents],
            "opt_outs": [codec.to_dict(o) for o in self.store.opt_outs_for(complaint.number_digest)],
        }


def codec_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def complaint_to_dict(complaint: Complaint) -> dict[str, Any]:
    """Plain data for JSON output; never includes the sealed number."""
    data = codec.to_dict(complaint)
    data.pop("number_sealed", None)
    data["open"] = complaint.open
    return data


def consent_to_dict(consent: Any) -> dict[str, Any]:
    data = codec.to_dict(consent)
    data.pop("number_sealed", None)
    return data


def _plain_basis(basis: Any) -> Any:
    if basis is None or isinstance(basis, dict):
        return basis
    return codec.to_dict(basis)


def record_to_dict(record: Any) -> dict[str, Any]:
    """A decision-log record as plain data, without its sealed number."""
    if isinstance(record, dict):
        data = dict(record)
    else:
        try:
            data = codec.to_dict(record)
        except TypeError:
            data = {k: getattr(record, k) for k in getattr(record, "__slots__", ())}
            data = {k: codec._plain(v) for k, v in data.items()}
    data.pop("number_sealed", None)
    return data
