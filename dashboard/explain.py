"""A decision's trace in the interface language: check names, their details, and the values in them.

The decision core writes each check's detail as one English sentence (it is logged and must not
depend on who reads it later). Here every sentence shape the core produces is matched and said
again through the catalogue, with the values inside it (bases, sources, purposes, days, zone
origins, registry lists) translated too. Invariant: a detail no pattern knows is shown as it was
logged, never altered; ``tests/dashboard/test_i18n.py`` runs the decision cases through here so
a new sentence shape without a pattern fails the suite.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from dashboard.formatting import (
    basis_label,
    purpose_label,
    reason_label,
    scope_label,
    source_label,
)

CHECK_NAMES = {
    "number": _l("number"),
    "campaign": _l("campaign"),
    "policy": _l("policy pack"),
    "complaint": _l("complaints"),
    "opt_out": _l("opt-outs"),
    "objection": _l("objections"),
    "automatic_dialing": _l("automatic dialing"),
    "basis": _l("legal basis"),
    "registries": _l("do-not-call registries"),
    "calling_hours": _l("calling hours"),
    "attempts": _l("attempts"),
    "screening": _l("screening"),
    "erasure": _l("erasure"),
}
PROOF_FIELDS = {  # what a consent's proof may lack (Consent.missing_proof)
    "verified_at": _l("the confirmation time"),
    "ip": _l("the IP address"),
    "user_agent": _l("the browser"),
    "form_text": _l("the consent text"),
    "form_version": _l("the form version"),
    "page_url": _l("the page address"),
    "recording_id": _l("the call recording"),
    "document_id": _l("the document"),
}
DAYS = {
    "mon": _l("Monday"), "tue": _l("Tuesday"), "wed": _l("Wednesday"), "thu": _l("Thursday"),
    "fri": _l("Friday"), "sat": _l("Saturday"), "sun": _l("Sunday"), "holiday": _l("public holiday"),
}
ZONE_ORIGINS = {
    "contact": _l("the contact's zone"),
    "number": _l("the number's zone"),
    "campaign": _l("the campaign's zone"),
    "fallback": _l("UTC, no zone known"),
}
PACK_NAMES = {
    "Bulgaria (GDPR, ePrivacy; KZLD)": _l("Bulgaria (GDPR, ePrivacy; KZLD)"),
    "European Union baseline (GDPR, ePrivacy)": _l("European Union baseline (GDPR, ePrivacy)"),
    "United Kingdom (PECR, UK GDPR)": _l("United Kingdom (PECR, UK GDPR)"),
    "Russia (38-FZ art. 18, 152-FZ)": _l("Russia (38-FZ art. 18, 152-FZ)"),
    "United States (TCPA, TSR, state rules)": _l("United States (TCPA, TSR, state rules)"),
}
DIALING_RULES = {"allowed": _l("allowed"), "consent_only": _l("with prior express consent only"),
                 "forbidden": _l("forbidden")}
CALL_KINDS = {"advertising": _l("advertising"), "non-advertising": _l("non-advertising")}


def _each(label: Callable[[str], str]) -> Callable[[str], str]:
    """Translate every item of a ``", "``-separated list."""
    return lambda text: ", ".join(label(item) for item in text.split(", "))


def _from(table: dict[str, object]) -> Callable[[str], str]:
    return lambda value: str(table.get(value, value))


# how a named group's value is said; groups not listed stay as they are (ids, numbers, zones)
CONVERT: dict[str, Callable[[str], str]] = {
    "kind": basis_label,
    "kinds": _each(basis_label),
    "accepted": _each(basis_label),
    "source": source_label,
    "purpose": purpose_label,
    "purposes": _each(purpose_label),
    "reason": reason_label,
    "day": _from(DAYS),
    "origin": _from(ZONE_ORIGINS),
    "pack": _from(PACK_NAMES),
    "mode": _from(DIALING_RULES),
    "scope": scope_label,
    "via": source_label,
    "calls": _from(CALL_KINDS),
    "proof": _each(_from(PROOF_FIELDS)),
}

_CANDIDATES = re.compile(r"^(?P<head>.*); strictest of (?P<n>\d+) candidate zones: record the contact's time zone$")
PATTERNS: list[tuple[re.Pattern[str], Any]] = [(re.compile(p), t) for p, t in (
    (r"input of (?P<n>\d+) characters is not a valid phone number",
     _l("input of %(n)s characters is not a valid phone number")),
    (r"no such campaign", _l("no such campaign")),
    (r"no policy pack for jurisdiction '(?P<code>[^']*)'", _l("no policy pack for jurisdiction %(code)s")),
    (r"suppressed by complaint (?P<ids>.+)", _l("suppressed by complaint %(ids)s")),
    (r"no complaint suppression", _l("no complaint suppression")),
    (r"company-wide opt-out via (?P<via>\S+) on (?P<date>\S+)", _l("company-wide opt-out via %(via)s on %(date)s")),
    (r"campaign (?P<campaign>\S+) opt-out via (?P<via>\S+) on (?P<date>\S+)",
     _l("opt-out from campaign %(campaign)s via %(via)s on %(date)s")),
    (r"no opt-out", _l("no opt-out")),
    (r"objection \((?P<scope>[^)]+)\) on (?P<date>\S+)", _l("objection (%(scope)s) on %(date)s")),
    (r"no objection", _l("no objection")),
    (r"dialed with a human or not advertising", _l("dialed with a human or not advertising")),
    (r"(?P<pack>.+): advertising calls dialed without a human are forbidden",
     _l("%(pack)s: advertising calls dialed without a human are forbidden")),
    (r"(?P<pack>.+): automatic dialing of advertising needs prior express consent",
     _l("%(pack)s: automatic dialing of advertising needs prior express consent")),
    (r"automatic dialing permitted \((?P<mode>[^)]+)\)", _l("automatic dialing permitted (%(mode)s)")),
    (r"(?P<kind>[a-z_]+) (?P<id>\S+) from (?P<source>\S+) on (?P<date>\S+) covers (?P<purpose>\S+)",
     _l("%(kind)s %(id)s from %(source)s on %(date)s covers %(purpose)s")),
    (r"personal data erased on request on (?P<date>\S+); never to be called again",
     _l("personal data erased on request on %(date)s; never to be called again")),
    (r"(?P<kind>[a-z_]+) (?P<id>\S+): (?P<reason>[a-z_]+)", _l("%(kind)s %(id)s: %(reason)s")),
    (r"(?P<kind>[a-z_]+) (?P<id>\S+): (?P<reason>[a-z_]+) \((?P<pack>.+) needs (?P<proof>.+) for (?P<source>\S+)\)",
     _l("%(kind)s %(id)s: %(reason)s (%(pack)s needs %(proof)s for %(source)s)")),
    (r"(?P<kind>[a-z_]+) (?P<id>\S+): (?P<reason>[a-z_]+) \(captured (?P<date>\S+); the number was disconnected "
     r"(?P<disconnected>\S+) and may belong to someone else now\)",
     _l("%(kind)s %(id)s: %(reason)s (captured %(date)s; the number was disconnected %(disconnected)s and may "
        "belong to someone else now)")),
    (r"(?P<kinds>.+) is not accepted for (?P<calls>advertising|non-advertising) calls here "
     r"\(accepted: (?P<accepted>.+)\)",
     _l("%(kinds)s is not accepted for %(calls)s calls here (accepted: %(accepted)s)")),
    (r"records cover (?P<purposes>.+), not (?P<purpose>\S+)", _l("records cover %(purposes)s, not %(purpose)s")),
    (r"no basis on record at that time \((?P<id>\S+) was captured later\)",
     _l("no basis on record at that time (%(id)s was captured later)")),
    (r"no consent or other basis on record", _l("no consent or other basis on record")),
    (r"no do-not-call registry applies", _l("no do-not-call registry applies")),
    (r"(?P<kind>[a-z_]+) exempts the call from (?P<registries>.+)",
     _l("%(kind)s exempts the call from %(registries)s")),
    (r"(?P<registry>\S+) is not loaded", _l("%(registry)s is not loaded")),
    (r"(?P<registry>\S+) loaded (?P<days>-?\d+) days ago; the limit is (?P<limit>\d+)",
     _l("%(registry)s loaded %(days)s days ago; the limit is %(limit)s")),
    (r"listed on (?P<registry>\S+)", _l("listed on %(registry)s")),
    (r"not on (?P<registries>.+)", _l("not on %(registries)s")),
    (r"(?P<local>\d{4}-\d\d-\d\d \d\d:\d\d) (?P<zone>\S+) \((?P<day>[a-z]+)\): no calls",
     _l("%(local)s %(zone)s (%(day)s): no calls that day")),
    (r"(?P<local>\d{4}-\d\d-\d\d \d\d:\d\d) (?P<zone>\S+) \((?P<day>[a-z]+)\): window (?P<window>\S+)",
     _l("%(local)s %(zone)s (%(day)s): outside the window %(window)s")),
    (r"(?P<time>\d\d:\d\d) in (?P<zone>\S+) \((?P<origin>[a-z]+)\) is inside the window",
     _l("%(time)s in %(zone)s (%(origin)s) is inside the window")),
    (r"inside the window in all (?P<n>\d+) candidate zones of the number",
     _l("inside the window in all %(n)s candidate zones of the number")),
    (r"(?P<recent>\d+) calls in the last (?P<hours>[\d.]+) h; cap (?P<cap>\d+)",
     _l("%(recent)s calls in the last %(hours)s h; cap %(cap)s")),
    (r"at least (?P<recent>\d+) calls in the last (?P<hours>[\d.]+) h; cap (?P<cap>\d+)",
     _l("at least %(recent)s calls in the last %(hours)s h; cap %(cap)s")),
    (r"no attempt cap applies", _l("no attempt cap applies")),
    (r"under every attempt cap", _l("under every attempt cap")),
    (r"facts unavailable: (?P<error>.+)", _l("facts unavailable: %(error)s")),
    (r"decision log unavailable: (?P<error>.+)", _l("decision log unavailable: %(error)s")),
    (r"store slower than the (?P<ms>\d+) ms budget", _l("store slower than the %(ms)s ms budget")),
)]


def check_name(name: str) -> str:
    return str(CHECK_NAMES.get(name, name))


def translate_detail(detail: str) -> str | None:
    """The detail in the interface language, or None when no pattern knows its shape."""
    hint = ""
    candidates = _CANDIDATES.match(detail)
    if candidates:
        detail = candidates.group("head")
        hint = "; " + gettext("strictest of %(n)s candidate zones: record the contact's time zone",
                              n=candidates.group("n"))
    for pattern, template in PATTERNS:
        match = pattern.fullmatch(detail)
        if match:
            values = {k: CONVERT.get(k, str)(v) for k, v in match.groupdict().items()}
            return str(template) % values + hint  # the lazy string gives the translated msgid
    return None


def check_detail(detail: str) -> str:
    translated = translate_detail(detail)
    return detail if translated is None else translated
