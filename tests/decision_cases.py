"""Builders for the decision tests: plain facts, fixed instants and the shipped policy packs.

Every instant is fixed (never "now") and timezone-aware. ``local(zone, ...)`` states a time as
the callee sees it on the wall clock and returns it in UTC, the form ``decide()`` receives.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from callscreen.decision import ScreeningRequest, decide
from callscreen.models import (
    DOUBLE_OPT_IN_SOURCES,
    Campaign,
    Check,
    Consent,
    Contact,
    Decision,
    Facts,
    LegalBasis,
    Objection,
    OptOut,
    Proof,
    RegistryStatus,
    Suppression,
)
from callscreen.numbers import InvalidNumber, PhoneNumber, normalize
from callscreen.policy import PolicyBook, PolicyPack

BOOK = PolicyBook.load()
CONSENT = LegalBasis.CONSENT
EBR = LegalBasis.EXISTING_RELATIONSHIP
LI = LegalBasis.LEGITIMATE_INTEREST
CHECK_ORDER = ("complaint", "opt_out", "objection", "automatic_dialing", "basis", "registries",
               "calling_hours", "attempts")

# A single-zone number, the campaign region and zone for each jurisdiction under test.
HOME = {
    "RU": ("+74951234567", "RU", "Europe/Moscow"),       # Moscow landline: one zone
    "US": ("+12125550100", "US", "America/New_York"),    # New York, US-NY
    "GB": ("+442079460958", "GB", "Europe/London"),
    "EU": ("+4930123456", "DE", "Europe/Berlin"),
    "BG": ("+359888123456", "BG", "Europe/Sofia"),
}
CAPTURED = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in ``zone``, as the UTC instant ``decide()`` is given."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def pack(jurisdiction: str) -> PolicyPack:
    found = BOOK.get(jurisdiction)
    assert found is not None, jurisdiction
    return found


def campaign(jurisdiction: str, *, purpose: str = "promotions", advertising: bool = True,
             automatic: bool = False, campaign_id: str = "spring-promo") -> Campaign:
    _, region, zone = HOME.get(jurisdiction, ("", "US", "UTC"))
    return Campaign(campaign_id, purpose, jurisdiction, region, zone, advertising=advertising,
                    automatic_dialing=automatic)


def consent(*, basis: LegalBasis = CONSENT, purposes: tuple[str, ...] = ("promotions",),
            source: str = "sms_double_opt_in", captured_at: datetime = CAPTURED, consent_id: str = "c-1",
            **fields: object) -> Consent:
    """A record with its proof; a double opt-in gets its confirmation three minutes after capture
    unless ``verified_at`` is given (``verified_at=None`` states a claim without a confirmation)."""
    fields.setdefault("proof", Proof(ip="192.0.2.10", form_text="Yes, call me about offers", form_version="v3"))
    if source in DOUBLE_OPT_IN_SOURCES:
        fields.setdefault("verified_at", captured_at + timedelta(minutes=3))
    return Consent(consent_id, "digest", purposes, basis, source, captured_at, **fields)


def ebr(relationship: str, captured_at: datetime, *, purposes: tuple[str, ...] = ("promotions",),
        consent_id: str = "ebr-1") -> Consent:
    return consent(basis=EBR, purposes=purposes, source="crm_import", captured_at=captured_at,
                   consent_id=consent_id, relationship=relationship)


def interest(*, purposes: tuple[str, ...] = ("promotions",), consent_id: str = "li-1") -> Consent:
    return consent(basis=LI, purposes=purposes, source="crm_import", consent_id=consent_id)


def registry(registry_id: str, *, listed: bool = False, loaded_at: datetime | None) -> RegistryStatus:
    return RegistryStatus(registry_id, listed, loaded_at)


def opt_out(campaign_id: str | None, at: datetime = CAPTURED) -> OptOut:
    return OptOut(campaign_id, "call", at)


def objection(scope: str = "direct_marketing", at: datetime = CAPTURED) -> Objection:
    return Objection(at, "email", scope)


def suppression(complaint_id: str = "cmp-7", at: datetime = CAPTURED) -> Suppression:
    return Suppression(complaint_id, at)


def facts(*records: Consent, contact: Contact | None = None, **fields: object) -> Facts:
    return Facts(consents=records, contact=contact or Contact(), **fields)


def number(raw: str, region: str | None = None) -> PhoneNumber | None:
    try:
        return normalize(raw, region)
    except InvalidNumber:
        return None


def screen(jurisdiction: str, at: datetime, known: Facts | None = None, *, raw: str | None = None,
           purpose: str = "promotions", advertising: bool = True, automatic: bool = False,
           policy: PolicyPack | None = None, the_campaign: Campaign | None = None,
           phone: PhoneNumber | None = None) -> Decision:
    """Decide for the jurisdiction's home number (or ``raw``/``phone``) with its shipped pack."""
    chosen = the_campaign or campaign(jurisdiction, purpose=purpose, advertising=advertising, automatic=automatic)
    raw = raw or HOME[jurisdiction][0]
    parsed = phone or number(raw, chosen.default_region)
    request = ScreeningRequest(raw, parsed, chosen, at)
    return decide(request, known or Facts(), policy or BOOK.for_campaign(chosen))


def check(decision: Decision, name: str) -> Check:
    matches = [c for c in decision.checks if c.name == name]
    assert len(matches) == 1, (name, decision.checks)
    return matches[0]


def with_pack(base: PolicyPack, **changes: object) -> PolicyPack:
    return replace(base, **changes)


DAY = timedelta(days=1)
