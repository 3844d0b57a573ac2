"""JSON encoding of the domain values, as stored in Redis and printed by ``--json``.

Invariant: ``decode_X(encode_X(v)) == v`` for every value type here; unknown fields in
stored JSON are ignored so older processes can read records written by newer ones.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from functools import cache
from typing import Any

from callscreen.models import (
    Basis,
    Campaign,
    Check,
    Consent,
    Contact,
    Decision,
    LegalBasis,
    Objection,
    OptOut,
    Proof,
    Reason,
    Result,
    Suppression,
)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    """Parse ISO 8601; a naive time is taken as UTC. Raises ValueError on garbage."""
    if text in (None, ""):
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if hasattr(value, "__dataclass_fields__"):
        return to_dict(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value.value, str):  # StrEnum
        return value.value
    return value


@cache
def field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, read once per class (``fields()`` rebuilds them every call)."""
    return tuple(f.name for f in fields(cls))


def to_dict(value: Any) -> dict[str, Any]:
    """Plain JSON-ready dict of a dataclass (nested dataclasses included), without deep copies."""
    return {name: _plain(getattr(value, name)) for name in field_names(type(value))}


def dumps(value: Any) -> str:
    return json.dumps(to_dict(value), ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = field_names(cls)
    return {k: v for k, v in data.items() if k in names}


def campaign_from(data: dict[str, Any]) -> Campaign:
    data = _known(Campaign, data)
    data["created_at"] = parse_time(data.get("created_at"))
    return Campaign(**data)


def consent_from(data: dict[str, Any]) -> Consent:
    data = _known(Consent, data)
    data["purposes"] = tuple(data.get("purposes", ()))
    data["basis"] = LegalBasis(data["basis"])
    data["proof"] = Proof(**_known(Proof, data.get("proof") or {}))
    for name in ("captured_at", "verified_at", "expires_at", "withdrawn_at", "recorded_at"):
        data[name] = parse_time(data.get(name))
    return Consent(**data)


def opt_out_from(data: dict[str, Any]) -> OptOut:
    data = _known(OptOut, data)
    data["at"] = parse_time(data["at"])
    return OptOut(**data)


def objection_from(data: dict[str, Any]) -> Objection:
    data = _known(Objection, data)
    data["at"] = parse_time(data["at"])
    return Objection(**data)


def suppression_from(data: dict[str, Any]) -> Suppression:
    data = _known(Suppression, data)
    data["at"] = parse_time(data["at"])
    return Suppression(**data)


def contact_from(data: dict[str, Any]) -> Contact:
    return Contact(**_known(Contact, data))


def basis_from(data: dict[str, Any] | None) -> Basis | None:
    if not data:
        return None
    data = _known(Basis, data)
    data["kind"] = LegalBasis(data["kind"])
    data["captured_at"] = parse_time(data["captured_at"])
    return Basis(**data)


def decision_from(data: dict[str, Any]) -> Decision:
    data = _known(Decision, data)
    data["result"] = Result(data["result"])
    data["reason"] = Reason(data["reason"])
    data["basis"] = basis_from(data.get("basis"))
    data["checks"] = tuple(Check(**c) for c in data.get("checks", ()))
    data["decided_at"] = parse_time(data.get("decided_at"))
    return Decision(**data)
