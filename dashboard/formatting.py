"""Human labels (translated) and time formatting for the pages.

Times are stored in UTC and every page shows them in one zone, the call centre's
(``Settings.default_timezone``): each time carries the zone's abbreviation and the footer names
the zone in full, so nobody mistakes one for another. Enum values (bases, sources, purposes,
origins) are shown through their labels here, never raw.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from callscreen import codec
from callscreen.crypto import SealError
from callscreen.numbers import mask
from dashboard.services import services

REASONS = {
    "consent": _l("consent"),
    "existing_relationship": _l("existing relationship"),
    "legitimate_interest": _l("legitimate interest"),
    "invalid_number": _l("invalid number"),
    "unknown_campaign": _l("unknown campaign"),
    "complaint_suppressed": _l("suppressed after a complaint"),
    "opted_out": _l("opted out"),
    "objection": _l("objection to direct marketing"),
    "national_dnc": _l("on a do-not-call registry"),
    "registry_stale": _l("registry out of date"),
    "no_basis": _l("no legal basis"),
    "consent_withdrawn": _l("consent withdrawn"),
    "consent_expired": _l("consent expired"),
    "consent_unverified": _l("consent not verified"),
    "consent_reassigned": _l("number reassigned since the consent"),
    "purpose_mismatch": _l("consent for another purpose"),
    "outside_calling_hours": _l("outside calling hours"),
    "attempt_cap": _l("too many attempts"),
    "automatic_dialing_forbidden": _l("automatic dialing forbidden"),
    "screening_unavailable": _l("screening unavailable"),
    "erased_subject": _l("personal data erased on request"),
}
STATUSES = {
    "new": _l("new"),
    "investigating": _l("investigating"),
    "escalated": _l("escalated to a regulator"),
    "resolved": _l("resolved"),
}
CHANNELS = {
    "phone": _l("phone call"),
    "email": _l("e-mail"),
    "letter": _l("letter"),
    "web_form": _l("web form"),
    "in_person": _l("in person"),
    "sms": _l("SMS"),
    "regulator": _l("via a regulator"),
    "api": _l("API"),
}
REGULATORS = {
    "roskomnadzor": _l("Roskomnadzor (RU, personal data)"),
    "fas": _l("FAS Russia (advertising law)"),
    "ftc": _l("FTC (US, Telemarketing Sales Rule)"),
    "fcc": _l("FCC (US, TCPA)"),
    "state_ag": _l("US state attorney general"),
    "ico": _l("ICO (UK)"),
    "ofcom": _l("Ofcom (UK)"),
    "dpa": _l("EU data protection authority"),
    "other": _l("another authority"),
}
REGISTRY_STATES = {
    "fresh": _l("fresh"),
    "stale": _l("out of date"),
    "missing": _l("required, not loaded"),
    "loaded": _l("loaded"),
}
ROLES = {
    "supervisor": _l("supervisor"),
    "compliance": _l("compliance officer"),
    "admin": _l("administrator"),
}
BASES = {
    "consent": _l("consent"),
    "existing_relationship": _l("existing business relationship"),
    "legitimate_interest": _l("legitimate interest"),
}
SOURCES = {  # how a consent was collected (callscreen.models.CONSENT_SOURCES) or an opt-out arrived
    "web_form": _l("web form"),
    "confirmation_call": _l("confirmation call"),
    "sms_double_opt_in": _l("SMS double opt-in"),
    "crm_import": _l("CRM import"),
    "paper": _l("paper form"),
    "email_double_opt_in": _l("e-mail double opt-in"),
    "in_person": _l("in person"),
    "api": _l("API"),
    "call": _l("during a call"),
    "sms": _l("SMS"),
    "email": _l("e-mail"),
    "web": _l("website"),
    "complaint": _l("complaint"),
    "supervisor": _l("supervisor"),
    "import": _l("import"),
}
PURPOSES = {  # the usual purposes; a campaign may name its own, shown as written
    "promotions": _l("promotions"),
    "appointment_reminders": _l("appointment reminders"),
    "service": _l("service calls"),
    "surveys": _l("surveys"),
    "debt_collection": _l("debt collection"),
}
ORIGINS = {  # who asked for a decision
    "agi": _l("Asterisk (FastAGI)"),
    "agi-script": _l("Asterisk (AGI script)"),
    "cli": _l("command line"),
    "api": _l("intake API"),
}
RELATIONSHIPS = {"purchase": _l("purchase"), "inquiry": _l("inquiry")}
OBJECTION_SCOPES = {"direct_marketing": _l("direct marketing"), "all": _l("all calls")}


def reason_label(reason: Any) -> str:
    return str(REASONS.get(str(reason), str(reason)))


def status_label(status: Any) -> str:
    return str(STATUSES.get(str(status), str(status)))


def channel_label(channel: Any) -> str:
    return str(CHANNELS.get(str(channel), str(channel)))


def regulator_label(regulator: Any) -> str:
    return str(REGULATORS.get(str(regulator), str(regulator)))


def registry_state(state: Any) -> str:
    return str(REGISTRY_STATES.get(str(state), str(state)))


def role_label(role: Any) -> str:
    return str(ROLES.get(str(role), str(role)))


def basis_label(kind: Any) -> str:
    return str(BASES.get(str(kind), str(kind)))


def source_label(source: Any) -> str:
    return str(SOURCES.get(str(source), str(source)))


def purpose_label(purpose: Any) -> str:
    return str(PURPOSES.get(str(purpose), str(purpose)))


def purposes_label(purposes: Any) -> str:
    return ", ".join(purpose_label(p) for p in purposes)


def origin_label(origin: Any) -> str:
    return str(ORIGINS.get(str(origin), str(origin)))


def relationship_label(relationship: Any) -> str:
    return str(RELATIONSHIPS.get(str(relationship), str(relationship)))


def scope_label(scope: Any) -> str:
    return str(OBJECTION_SCOPES.get(str(scope), str(scope)))


def local_zone() -> ZoneInfo:
    return ZoneInfo(services().settings.default_timezone)


def _moment(value: datetime | str | None) -> datetime | None:
    """A stored time: a datetime, or the ISO 8601 text some records keep (UTC when it has no offset)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return codec.parse_time(str(value))
    except ValueError:
        return None


def when(value: datetime | str | None) -> str:
    """The time in the call centre's zone, to the second, with the zone's abbreviation
    (``2026-12-01 13:05:09 MSK``); the page footer names the zone in full."""
    moment = _moment(value)
    if moment is None:
        return "—" if value in (None, "") else str(value)
    local = moment.astimezone(local_zone())
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


def day(value: datetime | str | None) -> str:
    moment = _moment(value)
    return "—" if moment is None else moment.astimezone(local_zone()).strftime("%Y-%m-%d")


def zone_name() -> str:
    """The zone every page shows times in, as the footer says it: ``Europe/Moscow (MSK, UTC+03:00)``."""
    zone = local_zone()
    now = datetime.now(zone)
    offset = now.strftime("%z")
    return f"{zone.key} ({now.tzname()}, UTC{offset[:3]}:{offset[3:]})"


def percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def masked_number(digest: str, sealed: str) -> str:
    """The masked form of a sealed number (``+7 999 ***-**-67``); ``—`` if it cannot be opened."""
    number = services().store.open_number(digest, sealed)
    return mask(number) if number else "—"


def masked_digest(digest: str) -> str:
    """The masked number behind a digest, from the number's sealed copy in the store."""
    try:
        number = services().store.reveal(digest)
    except SealError:
        return "—"
    return mask(number) if number else "—"


FIELD_MESSAGES = {
    "required": _l("required"),
    "must be text": _l("must be text"),
    "is not valid Unicode text": _l("is not valid Unicode text"),
    "contains control characters": _l("contains control characters"),
    "contains control characters (line breaks included)": _l("contains control characters (line breaks included)"),
    "is in the future": _l("is in the future"),
    "is implausibly old": _l("is implausibly old"),
    "not a date (YYYY-MM-DD)": _l("not a date (YYYY-MM-DD)"),
    "not an ISO 8601 date and time (e.g. 2026-05-01T14:30:00+03:00)": _l("not a date and time"),
    "letters, digits, '.', '_', ':' and '-' only": _l("letters, digits, '.', '_', ':' and '-' only"),
    "must be true or false": _l("must be true or false"),
}
_AT_MOST = re.compile(r"^at most (\d+) characters$")


def field_error(message: str) -> str:
    """A validation message in the interface language (messages naming a value stay as they are,
    prefixed with a translated summary)."""
    known = FIELD_MESSAGES.get(message)
    if known is not None:
        return str(known)
    match = _AT_MOST.match(message)
    if match:
        return gettext("at most %(n)d characters", n=int(match.group(1)))
    if message.startswith(("not a phone number", "not a valid number", "number longer than")):
        summary = gettext("not a valid phone number")
        return summary + " (" + message + ")"
    if message.startswith("must be one of"):
        return gettext("choose one of the offered values")
    return message
