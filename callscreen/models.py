"""The plain facts callscreen decides over. No I/O here: these are values.

Times are timezone-aware UTC ``datetime`` objects everywhere; serialisation to the store
uses ISO 8601 strings (see :mod:`callscreen.codec`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Result(StrEnum):
    ALLOW = "ALLOW"
    BLOCK = "BLOCK"


class Reason(StrEnum):
    """Stable machine reasons; documented in ``docs/reasons.md``. Never rename one."""

    CONSENT = "consent"
    EXISTING_RELATIONSHIP = "existing_relationship"
    LEGITIMATE_INTEREST = "legitimate_interest"
    INVALID_NUMBER = "invalid_number"
    UNKNOWN_CAMPAIGN = "unknown_campaign"
    COMPLAINT_SUPPRESSED = "complaint_suppressed"
    OPTED_OUT = "opted_out"
    OBJECTION = "objection"
    NATIONAL_DNC = "national_dnc"
    REGISTRY_STALE = "registry_stale"
    NO_BASIS = "no_basis"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_EXPIRED = "consent_expired"
    CONSENT_UNVERIFIED = "consent_unverified"
    CONSENT_REASSIGNED = "consent_reassigned"
    PURPOSE_MISMATCH = "purpose_mismatch"
    OUTSIDE_CALLING_HOURS = "outside_calling_hours"
    ATTEMPT_CAP = "attempt_cap"
    AUTOMATIC_DIALING_FORBIDDEN = "automatic_dialing_forbidden"
    SCREENING_UNAVAILABLE = "screening_unavailable"
    ERASED_SUBJECT = "erased_subject"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    EXISTING_RELATIONSHIP = "existing_relationship"
    LEGITIMATE_INTEREST = "legitimate_interest"


CONSENT_SOURCES = (
    "web_form", "confirmation_call", "sms_double_opt_in", "crm_import", "paper", "email_double_opt_in",
    "in_person", "api",
)
# Sources that claim the subscriber confirmed the consent a second time: without the time of that
# confirmation (``verified_at``) the claim proves nothing, in every jurisdiction.
DOUBLE_OPT_IN_SOURCES = ("sms_double_opt_in", "email_double_opt_in")
# What a policy pack may require a consent to carry (see ``[consent] proof`` in docs/policy.md).
PROOF_FIELDS = ("verified_at", "ip", "user_agent", "form_text", "form_version", "page_url", "recording_id",
                "document_id")
OPT_OUT_SOURCES = ("call", "sms", "email", "web", "complaint", "supervisor", "api", "import")


@dataclass(frozen=True, slots=True)
class Campaign:
    """What is being called for, under which law, and how it is dialed."""

    id: str
    purpose: str
    jurisdiction: str
    default_region: str
    timezone: str
    advertising: bool = True
    automatic_dialing: bool = False
    name: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Proof:
    """Evidence of how a consent was captured; kept verbatim for "where did you get my number"."""

    ip: str = ""
    user_agent: str = ""
    form_text: str = ""
    form_version: str = ""
    page_url: str = ""
    recording_id: str = ""
    document_id: str = ""


@dataclass(frozen=True, slots=True)
class Consent:
    """A legal basis record for one number (consent, EBR or legitimate interest).

    ``purposes`` binds it: consent to ``appointment_reminders`` is not consent to
    ``promotions``. ``number_digest`` names the number; the number itself is only
    stored sealed (``number_sealed``).
    """

    id: str
    number_digest: str
    purposes: tuple[str, ...]
    basis: LegalBasis
    source: str
    captured_at: datetime
    channel: str = "voice"
    proof: Proof = field(default_factory=Proof)
    verified_at: datetime | None = None
    expires_at: datetime | None = None
    withdrawn_at: datetime | None = None
    withdrawn_how: str = ""
    relationship: str = ""  # for existing_relationship: "purchase" or "inquiry"
    number_sealed: str = ""
    recorded_at: datetime | None = None

    def covers(self, purpose: str) -> bool:
        return purpose in self.purposes or "*" in self.purposes

    def missing_proof(self, required: tuple[str, ...], at: datetime) -> list[str]:
        """Which of ``required`` this record lacks at ``at`` (a confirmation after ``at`` is missing)."""
        missing = []
        for name in required:
            if name == "verified_at":
                if self.verified_at is None or self.verified_at > at:
                    missing.append(name)
            elif not getattr(self.proof, name):
                missing.append(name)
        return missing


@dataclass(frozen=True, slots=True)
class OptOut:
    """A "do not call me" on file: company-wide (``campaign_id`` is None) or per campaign."""

    campaign_id: str | None
    source: str
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class Objection:
    """GDPR art. 21 objection to processing (absolute for direct marketing)."""

    at: datetime
    source: str
    scope: str = "direct_marketing"


@dataclass(frozen=True, slots=True)
class Suppression:
    """Set when a complaint is filed; blocks every campaign until lifted."""

    complaint_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class RegistryStatus:
    """A do-not-call registry a jurisdiction must check, and whether this number is on it."""

    registry_id: str
    listed: bool
    loaded_at: datetime | None


@dataclass(frozen=True, slots=True)
class Contact:
    """What the CRM knows about where the callee lives; wins over number geography."""

    timezone: str = ""
    subdivision: str = ""


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything stored about one number, gathered in one round trip."""

    consents: tuple[Consent, ...] = ()
    opt_outs: tuple[OptOut, ...] = ()
    objections: tuple[Objection, ...] = ()
    suppressions: tuple[Suppression, ...] = ()
    registries: tuple[RegistryStatus, ...] = ()
    attempts: tuple[datetime, ...] = ()  # times of earlier allowed calls, newest last
    # attempts holds at most this many, the newest (None: every attempt of the history); the
    # store reads only what the pack's caps need, see PolicyPack.attempt_read_limit
    attempts_limit: int | None = None
    contact: Contact = field(default_factory=Contact)
    erased_at: datetime | None = None  # the number's personal data was erased: never call it again
    # When the number was last permanently disconnected (a reassigned-numbers list): a consent
    # given before then was given by somebody else.
    disconnected_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the decision's trace: which rule, did it pass, and why."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Basis:
    """The record an ALLOW rests on (or, for a BLOCK, the best candidate that failed)."""

    kind: LegalBasis
    consent_id: str
    source: str
    captured_at: datetime
    purpose: str
    form_version: str = ""

    def short(self) -> str:
        """Readable one-token basis for Asterisk, e.g. ``consent:web_form:2026-05-01``."""
        return f"{self.kind.value}:{self.source}:{self.captured_at.date().isoformat()}"


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: ALLOW or BLOCK, one stable reason, what it rests on, and the trace."""

    result: Result
    reason: Reason
    basis: Basis | None
    checks: tuple[Check, ...]
    timezone: str = ""
    policy_pack: str = ""
    policy_version: str = ""
    decided_at: datetime | None = None
    id: str = ""  # decision log id, set once the record is written

    @property
    def allowed(self) -> bool:
        return self.result is Result.ALLOW
