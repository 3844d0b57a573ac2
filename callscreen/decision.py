"""The decision: may this number be called for this campaign now?

A pure function over plain facts. It evaluates every rule, records each in the trace, and
answers with the first failing rule in policy order (permanent reasons before temporary
ones, so a supervisor sees "no basis" rather than "try later"). With no failing rule the
call is allowed on the strongest valid basis. Invariant: ALLOW only with a basis record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callscreen.models import (
    Basis,
    Campaign,
    Check,
    Consent,
    Decision,
    Facts,
    LegalBasis,
    Reason,
    Result,
)
from callscreen.numbers import PhoneNumber
from callscreen.policy import PolicyPack, Window

BASIS_STRENGTH = (LegalBasis.CONSENT, LegalBasis.EXISTING_RELATIONSHIP, LegalBasis.LEGITIMATE_INTEREST)
ALLOW_REASON = {
    LegalBasis.CONSENT: Reason.CONSENT,
    LegalBasis.EXISTING_RELATIONSHIP: Reason.EXISTING_RELATIONSHIP,
    LegalBasis.LEGITIMATE_INTEREST: Reason.LEGITIMATE_INTEREST,
}
# How a basis record that covers the purpose can fail, most telling first.
CONSENT_FAILURES = (Reason.CONSENT_REASSIGNED, Reason.CONSENT_WITHDRAWN, Reason.CONSENT_EXPIRED,
                    Reason.CONSENT_UNVERIFIED)


@dataclass(frozen=True, slots=True)
class ScreeningRequest:
    """What is asked: ``number`` is None when ``raw_number`` did not normalize."""

    raw_number: str
    number: PhoneNumber | None
    campaign: Campaign | None
    at: datetime


def decide(request: ScreeningRequest, facts: Facts, pack: PolicyPack | None) -> Decision:
    """Answer ALLOW or BLOCK with one reason, the basis and the trace of checks."""
    at = request.at
    if request.number is None:
        # The raw input is not repeated: the trace is logged and the input may be personal data.
        detail = f"input of {len(request.raw_number)} characters is not a valid phone number"
        return _blocked(Reason.INVALID_NUMBER, [Check("number", False, detail)], at)
    if request.campaign is None:
        return _blocked(Reason.UNKNOWN_CAMPAIGN, [Check("campaign", False, "no such campaign")], at)
    if pack is None:
        detail = f"no policy pack for jurisdiction {request.campaign.jurisdiction!r}"
        return _blocked(Reason.SCREENING_UNAVAILABLE, [Check("policy", False, detail)], at)

    if facts.erased_at is not None:
        # Erasure keeps only this keyed marker: the person asked to be forgotten, so never call.
        detail = f"personal data erased on request on {facts.erased_at:%Y-%m-%d}; never to be called again"
        return _blocked(Reason.ERASED_SUBJECT, [Check("erasure", False, detail)], at)
    campaign, number = request.campaign, request.number
    checks: list[Check] = []
    failures: list[Reason] = []

    def rule(name: str, failed_reason: Reason | None, detail: str) -> None:
        checks.append(Check(name, failed_reason is None, detail))
        if failed_reason is not None:
            failures.append(failed_reason)

    rule(*_complaints(facts))
    rule(*_opt_outs(facts, campaign))
    rule(*_objections(facts, campaign))
    rule(*_automatic_dialing(campaign, pack, facts, at))
    subdivision = facts.contact.subdivision or number.subdivision
    basis, basis_failure, basis_detail = _basis(facts, campaign, pack, at)
    rule("basis", basis_failure, basis_detail)
    rule(*_registries(facts, campaign, pack, basis if basis_failure is None else None, subdivision, at))
    hours_failure, hours_detail, zone = _calling_hours(number, facts, campaign, pack, subdivision, at)
    rule("calling_hours", hours_failure, hours_detail)
    rule(*_attempts(facts, pack, subdivision, at))

    common = dict(timezone=zone, policy_pack=pack.id, policy_version=pack.version, decided_at=at)
    if failures:
        return Decision(Result.BLOCK, _first_reason(failures), basis, tuple(checks), **common)
    assert basis is not None  # a passing basis rule always carries its record
    return Decision(Result.ALLOW, ALLOW_REASON[basis.kind], basis, tuple(checks), **common)


def _first_reason(failures: list[Reason]) -> Reason:
    """The first failure in policy order, except that a listed number with nothing on file is
    refused for the listing: "on the do-not-call list" tells the supervisor more than "no basis"."""
    if failures[0] is Reason.NO_BASIS and Reason.NATIONAL_DNC in failures:
        return Reason.NATIONAL_DNC
    return failures[0]


def _blocked(reason: Reason, checks: list[Check], at: datetime) -> Decision:
    return Decision(Result.BLOCK, reason, None, tuple(checks), decided_at=at)


# --- the rules, in policy order ------------------------------------------------------------

def _complaints(facts: Facts) -> tuple[str, Reason | None, str]:
    if facts.suppressions:
        ids = ", ".join(s.complaint_id for s in facts.suppressions)
        return "complaint", Reason.COMPLAINT_SUPPRESSED, f"suppressed by complaint {ids}"
    return "complaint", None, "no complaint suppression"


def _opt_outs(facts: Facts, campaign: Campaign) -> tuple[str, Reason | None, str]:
    for opt_out in facts.opt_outs:
        if opt_out.campaign_id in (None, campaign.id):
            scope = "company-wide" if opt_out.campaign_id is None else f"campaign {campaign.id}"
            return "opt_out", Reason.OPTED_OUT, f"{scope} opt-out via {opt_out.source} on {opt_out.at:%Y-%m-%d}"
    return "opt_out", None, "no opt-out"


def _objections(facts: Facts, campaign: Campaign) -> tuple[str, Reason | None, str]:
    # GDPR art. 21(3): an objection to direct marketing is absolute; scope "all" covers every call.
    for objection in facts.objections:
        if objection.scope == "all" or campaign.advertising:
            return "objection", Reason.OBJECTION, f"objection ({objection.scope}) on {objection.at:%Y-%m-%d}"
    return "objection", None, "no objection"


def _automatic_dialing(campaign: Campaign, pack: PolicyPack, facts: Facts,
                       at: datetime) -> tuple[str, Reason | None, str]:
    if not (campaign.automatic_dialing and campaign.advertising):
        return "automatic_dialing", None, "dialed with a human or not advertising"
    if pack.automatic_dialing == "forbidden":
        return "automatic_dialing", Reason.AUTOMATIC_DIALING_FORBIDDEN, (
            f"{pack.name}: advertising calls dialed without a human are forbidden")
    if pack.automatic_dialing == "consent_only":
        consent = _best_valid(facts, campaign, pack, at, (LegalBasis.CONSENT,))
        if consent is None:
            return "automatic_dialing", Reason.AUTOMATIC_DIALING_FORBIDDEN, (
                f"{pack.name}: automatic dialing of advertising needs prior express consent")
    return "automatic_dialing", None, f"automatic dialing permitted ({pack.automatic_dialing})"


def _consent_problem(consent: Consent, facts: Facts, pack: PolicyPack, at: datetime) -> Reason | None:
    """Why a basis record that covers the campaign's purpose does not hold now (None: it holds)."""
    if (pack.reassigned_numbers and facts.disconnected_at is not None
            and consent.captured_at < facts.disconnected_at <= at):
        # 47 CFR 64.1200(m): the number changed hands after this record; its giver is gone.
        return Reason.CONSENT_REASSIGNED
    if consent.withdrawn_at is not None and consent.withdrawn_at <= at:
        return Reason.CONSENT_WITHDRAWN
    if consent.expires_at is not None and consent.expires_at <= at:
        return Reason.CONSENT_EXPIRED
    if consent.basis is LegalBasis.EXISTING_RELATIONSHIP:
        # An unrecorded relationship type gets the shorter (inquiry) window.
        window = pack.ebr_after_purchase if consent.relationship == "purchase" else pack.ebr_after_inquiry
        if window.after(consent.captured_at) <= at:
            return Reason.CONSENT_EXPIRED
    if consent.basis is LegalBasis.CONSENT and consent.missing_proof(pack.proof_for(consent.source), at):
        return Reason.CONSENT_UNVERIFIED
    return None


def _problem_detail(consent: Consent, reason: Reason, facts: Facts, pack: PolicyPack, at: datetime) -> str:
    """Why the best candidate record failed, in a supervisor's words."""
    head = f"{consent.basis.value} {consent.id}: {reason.value}"
    if reason is Reason.CONSENT_UNVERIFIED:
        missing = ", ".join(consent.missing_proof(pack.proof_for(consent.source), at))
        return f"{head} ({pack.name} needs {missing} for {consent.source})"
    if reason is Reason.CONSENT_REASSIGNED and facts.disconnected_at is not None:
        return (f"{head} (captured {consent.captured_at:%Y-%m-%d}; the number was disconnected "
                f"{facts.disconnected_at:%Y-%m-%d} and may belong to someone else now)")
    return head


def _voice_records(consents: tuple[Consent, ...], at: datetime) -> list[Consent]:
    """Voice-channel records that existed at ``at`` (a record captured later proves nothing then)."""
    return [c for c in consents if c.channel == "voice" and c.captured_at <= at]


def _best_valid(facts: Facts, campaign: Campaign, pack: PolicyPack, at: datetime,
                accepted: tuple[LegalBasis, ...]) -> Consent | None:
    valid = [
        c for c in _voice_records(facts.consents, at)
        if c.covers(campaign.purpose) and c.basis in accepted and _consent_problem(c, facts, pack, at) is None
    ]
    if not valid:
        return None
    return max(valid, key=lambda c: (-BASIS_STRENGTH.index(c.basis), c.captured_at))


def _basis(facts: Facts, campaign: Campaign, pack: PolicyPack,
           at: datetime) -> tuple[Basis | None, Reason | None, str]:
    accepted = pack.accepted_bases(campaign)
    kind = "advertising" if campaign.advertising else "non-advertising"
    best = _best_valid(facts, campaign, pack, at, accepted)
    if best is not None:
        return _basis_of(best, campaign), None, (
            f"{best.basis.value} {best.id} from {best.source} on {best.captured_at:%Y-%m-%d} covers {campaign.purpose}")
    voice = _voice_records(facts.consents, at)
    covering = [c for c in voice if c.covers(campaign.purpose)]
    problems = {_consent_problem(c, facts, pack, at): c for c in covering if c.basis in accepted}
    for reason in CONSENT_FAILURES:
        if reason in problems:
            record = problems[reason]
            return _basis_of(record, campaign), reason, _problem_detail(record, reason, facts, pack, at)
    if covering:
        names = ", ".join(sorted({c.basis.value for c in covering}))
        allowed = ", ".join(b.value for b in accepted)
        return None, Reason.NO_BASIS, f"{names} is not accepted for {kind} calls here (accepted: {allowed})"
    if voice:
        purposes = ", ".join(sorted({p for c in voice for p in c.purposes}))
        return None, Reason.PURPOSE_MISMATCH, f"records cover {purposes}, not {campaign.purpose}"
    later = [c for c in facts.consents if c.captured_at > at and c.covers(campaign.purpose)]
    if later:
        return None, Reason.NO_BASIS, f"no basis on record at that time ({later[0].id} was captured later)"
    return None, Reason.NO_BASIS, "no consent or other basis on record"


def _basis_of(consent: Consent, campaign: Campaign) -> Basis:
    return Basis(consent.basis, consent.id, consent.source, consent.captured_at, campaign.purpose,
                 consent.proof.form_version)


def _registries(facts: Facts, campaign: Campaign, pack: PolicyPack, basis: Basis | None,
                subdivision: str | None, at: datetime) -> tuple[str, Reason | None, str]:
    required = pack.registries_for(subdivision)
    if not required or not campaign.advertising:
        return "registries", None, "no do-not-call registry applies"
    if basis is not None and basis.kind in pack.registry_exempt_bases:
        return "registries", None, f"{basis.kind.value} exempts the call from {', '.join(required)}"
    by_id = {r.registry_id: r for r in facts.registries}
    for registry_id in required:
        status = by_id.get(registry_id)
        if status is None or status.loaded_at is None:
            return "registries", Reason.REGISTRY_STALE, f"{registry_id} is not loaded"
        age = at - status.loaded_at
        if age > timedelta(days=pack.registry_max_age_days):
            return "registries", Reason.REGISTRY_STALE, (
                f"{registry_id} loaded {age.days} days ago; the limit is {pack.registry_max_age_days}")
        if status.listed:
            return "registries", Reason.NATIONAL_DNC, f"listed on {registry_id}"
    return "registries", None, f"not on {', '.join(required)}"


def _zones(number: PhoneNumber, facts: Facts, campaign: Campaign) -> tuple[list[ZoneInfo], str]:
    """The contact's known zone wins; else every zone the number may be in; else the campaign's."""
    for origin, names in (("contact", (facts.contact.timezone,)), ("number", number.timezones),
                          ("campaign", (campaign.timezone,))):
        zones = [zone for zone in map(_zone, names) if zone is not None]
        if zones:
            return zones, origin
    return [ZoneInfo("UTC")], "fallback"


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    """The zone named ``name``, None for an empty or unknown name.

    Kept here: ``ZoneInfo``'s own cache holds only the 8 zones used last strongly, and a Russian
    mobile number alone may be in 11, so without this every decision re-read the zone files."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _calling_hours(number: PhoneNumber, facts: Facts, campaign: Campaign, pack: PolicyPack,
                   subdivision: str | None, at: datetime) -> tuple[Reason | None, str, str]:
    zones, origin = _zones(number, facts, campaign)
    tables = pack.hours_for(subdivision)
    windows_on: dict[date, list[tuple[Window | None, str]]] = {}  # the many zones share a date or two
    for zone in zones:
        local = at.astimezone(zone)
        today = local.date()
        if today not in windows_on:
            windows_on[today] = [table.window_for(today) for table in tables]
        for window, day in windows_on[today]:
            if window is None or not window.contains(local.time()):
                allowed = "no calls" if window is None else f"window {window}"
                hint = "" if len(zones) == 1 else (
                    f"; strictest of {len(zones)} candidate zones: record the contact's time zone")
                return Reason.OUTSIDE_CALLING_HOURS, (
                    f"{local:%Y-%m-%d %H:%M} {zone.key} ({day}): {allowed}{hint}"), zone.key
    if len(zones) == 1:
        return None, f"{at.astimezone(zones[0]):%H:%M} in {zones[0].key} ({origin}) is inside the window", zones[0].key
    keys = ",".join(z.key for z in zones)
    return None, f"inside the window in all {len(zones)} candidate zones of the number", keys


def _attempts(facts: Facts, pack: PolicyPack, subdivision: str | None,
              at: datetime) -> tuple[str, Reason | None, str]:
    caps = pack.attempt_caps_for(subdivision)
    for cap in caps:
        recent = sum(1 for t in facts.attempts if at - cap.window < t <= at)
        if recent >= cap.max_attempts:
            hours = cap.window.total_seconds() / 3600
            # every attempt read lies in the window and the read was capped: there may be more
            at_least = "at least " if recent == len(facts.attempts) == facts.attempts_limit else ""
            return "attempts", Reason.ATTEMPT_CAP, (
                f"{at_least}{recent} calls in the last {hours:g} h; cap {cap.max_attempts}")
    if not caps:
        return "attempts", None, "no attempt cap applies"
    return "attempts", None, "under every attempt cap"
