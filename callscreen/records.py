"""Everything callscreen holds about one number, gathered for the lookup page and for a data
subject's access request (dashboard and ``callscreen dsr export``). The number is named only by
its keyed digest."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from callscreen import codec
from callscreen.complaints import Complaint, complaint_to_dict, consent_to_dict, record_to_dict
from callscreen.models import Consent, Objection, OptOut, Suppression
from callscreen.store import Store, number_key

DIGEST = re.compile(r"^[0-9a-f]{32}$")
DECISIONS_SHOWN = 100


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class NumberFile:
    digest: str
    known: bool
    consents: list[Consent]
    opt_outs: list[OptOut]
    objections: list[Objection]
    suppressions: list[Suppression]
    contact: dict[str, str]
    attempts: int
    complaints: list[Complaint]
    decisions: list[Any]
    erased_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The access export: plain JSON data, sealed copies left out."""
        return {
            "generated_at": codec.iso(datetime.now(UTC)),
            "number_digest": self.digest,
            "erased_at": codec.iso(self.erased_at),
            "consents": [consent_to_dict(c) for c in self.consents],
            "opt_outs": [codec.to_dict(o) for o in self.opt_outs],
            "objections": [codec.to_dict(o) for o in self.objections],
            "suppressions": [codec.to_dict(s) for s in self.suppressions],
            "contact": self.contact,
            "calls_in_last_8_days": self.attempts,
            "complaints": [complaint_to_dict(c) for c in self.complaints],
            "decisions": [record_to_dict(r) for r in self.decisions],
        }


def gather(store: Store, complaints: Any, log: Any, digest: str, decisions: int = DECISIONS_SHOWN) -> NumberFile:
    """``complaints`` is the complaint book, ``log`` the decision log."""
    pipe = store.client.pipeline(transaction=False)
    for kind in ("optouts", "objections", "suppressions", "contact"):
        pipe.hgetall(number_key(digest, kind))
    pipe.zcard(number_key(digest, "attempts"))
    pipe.get(number_key(digest, "erased"))
    optouts, objections, suppressions, contact, attempts, erased = pipe.execute()
    contact_map = {_text(k): _text(v) for k, v in contact.items()}
    known = bool(contact_map.get("sealed"))
    contact_map.pop("sealed", None)
    return NumberFile(
        digest=digest,
        known=known,
        consents=store.consents_for(digest),
        opt_outs=[codec.opt_out_from(json.loads(v)) for v in optouts.values()],
        objections=[codec.objection_from(json.loads(v)) for v in objections.values()],
        suppressions=sorted((codec.suppression_from(json.loads(v)) for v in suppressions.values()),
                            key=lambda s: s.at),
        contact=contact_map,
        attempts=int(attempts),
        complaints=complaints.for_number(digest),
        decisions=log.for_number(digest, decisions),
        erased_at=codec.parse_time(json.loads(erased)["at"]) if erased else None,
    )


def with_current_ids(store: Store, record: Any) -> Any:
    """A decision-log record as shown: a consent id retired by the migration (in the basis and
    in the trace) replaced by the id it goes by now. The stored record is not changed."""
    old = (record.basis or {}).get("consent_id", "")
    new = store.current_consent_id(old) if old else old
    if new == old:
        return record
    checks = [[name, passed, str(detail).replace(old, new)] for name, passed, detail in record.checks]
    return replace(record, basis={**record.basis, "consent_id": new}, checks=checks)
