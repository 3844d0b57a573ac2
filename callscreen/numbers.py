"""Phone number normalization: any human spelling in, E.164 and its geography out.

Invariants: :func:`normalize` either returns a valid number in E.164 form or raises
:class:`InvalidNumber`; callers turn that into a BLOCK ``invalid_number`` decision. Its
shortcuts (the NANP exchange table, answers kept per prefix of E.164 and of national-form
numbers) give exactly :func:`parse_number`'s answer, an invalid number staying invalid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import timezone

from callscreen.national import NationalAnswers
from callscreen.prefixes import KeptAnswers, PrefixAnswers

MAX_INPUT_LENGTH = 64
SEPARATORS = re.compile(r"[\s\-.()/\u00a0\u2010-\u2015]+")  # removed from input before parsing
_ALLOWED = re.compile(r"^\+?[0-9]+$")

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "District of Columbia": "DC",
    "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL",
    "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY",
    "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR",
    "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD",
    "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
}
_STATE_CODES = set(US_STATES.values())

# phonenumbers' zone data for the shared +7 code lists Kazakh zones for Russian numbers and
# stands Europe/Bucharest in for Kaliningrad (which keeps UTC+2 all year, unlike Bucharest).
RUSSIAN_ZONES = frozenset({
    "Europe/Kaliningrad", "Europe/Moscow", "Europe/Simferopol", "Europe/Kirov", "Europe/Volgograd",
    "Europe/Astrakhan", "Europe/Saratov", "Europe/Ulyanovsk", "Europe/Samara", "Asia/Yekaterinburg",
    "Asia/Omsk", "Asia/Novosibirsk", "Asia/Barnaul", "Asia/Tomsk", "Asia/Novokuznetsk", "Asia/Krasnoyarsk",
    "Asia/Irkutsk", "Asia/Chita", "Asia/Yakutsk", "Asia/Khandyga", "Asia/Vladivostok", "Asia/Ust-Nera",
    "Asia/Magadan", "Asia/Sakhalin", "Asia/Srednekolymsk", "Asia/Kamchatka", "Asia/Anadyr",
})
ZONE_CORRECTIONS = {("RU", "Europe/Bucharest"): "Europe/Kaliningrad"}


def _zones_for(parsed: phonenumbers.PhoneNumber, region: str) -> tuple[str, ...]:
    return clean_zones(timezone.time_zones_for_number(parsed), region)


def clean_zones(found: tuple[str, ...] | list[str], region: str) -> tuple[str, ...]:
    """phonenumbers' zones for a number of ``region``, corrected, without unknowns and repeats."""
    zones: list[str] = []
    for zone in found:
        zone = ZONE_CORRECTIONS.get((region, zone), zone)
        if zone == "Etc/Unknown" or (region == "RU" and zone not in RUSSIAN_ZONES):
            continue
        if zone not in zones:
            zones.append(zone)
    return tuple(zones)


class InvalidNumber(ValueError):
    """The input is not a dialable phone number."""


class NotAssigned(InvalidNumber):
    """The input parses as a number, but not one of a valid range (no number type matches)."""


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A valid number: E.164 text, its country, and what geography it implies.

    ``timezones`` are every IANA zone the number may be in (16 for a Russian mobile);
    ``subdivision`` is an ISO 3166-2 code such as ``US-FL`` when the number pins it down.
    """

    e164: str
    region: str
    timezones: tuple[str, ...]
    subdivision: str | None = None

    @property
    def national_digits(self) -> str:
        return str(phonenumbers.parse(self.e164).national_number)


def _clean(raw: str) -> str:
    if not isinstance(raw, str):
        raise InvalidNumber("number must be text")
    if len(raw) > MAX_INPUT_LENGTH:
        raise InvalidNumber(f"number longer than {MAX_INPUT_LENGTH} characters")
    text = SEPARATORS.sub("", raw.strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text or not _ALLOWED.match(text):
        raise InvalidNumber(f"not a phone number: {raw!r}")
    return text


def _subdivision(parsed: phonenumbers.PhoneNumber, region: str) -> str | None:
    if region != "US":
        return None
    from phonenumbers import geocoder  # large data: loaded only when a US number needs it

    return us_subdivision(geocoder.description_for_number(parsed, "en"))


def us_subdivision(description: str) -> str | None:
    """``US-FL`` from the geocoder's English description of a US number ("Miami, FL", "Florida")."""
    if "," in description:
        code = description.rsplit(",", 1)[1].strip()
        return f"US-{code}" if code in _STATE_CODES else None
    code = US_STATES.get(description.strip())
    return f"US-{code}" if code else None


@lru_cache(maxsize=65536)
def normalize(raw: str, default_region: str | None = None) -> PhoneNumber:
    """Parse ``raw`` (``8 (999) 123-45-67``, ``00 44 20 7946 0958``, ``+1 212.555.0100``…).

    A ten-digit NANP number (``+1`` and ten digits, or ten digits, optionally after a ``1``,
    with ``US`` as the default region) is answered from :class:`callscreen.nanp.NanpExchanges`,
    phonenumbers' own metadata compiled once: the answer of :func:`parse_number`, in a tenth of
    its time (its region, time-zone and geocoder look-ups each repeat the number-type regexes
    of every NANP region). Any other E.164 number is answered per deciding prefix
    (:mod:`callscreen.prefixes`), and a number in national form (``8 999 …`` with ``RU``,
    ``07911 …`` with ``GB``, or after the calling code without ``+``: ``7 999 …``) per raw
    deciding prefix (:mod:`callscreen.national`): the first
    number of a prefix by :func:`parse_number`, the next ones from what it answered. Everything
    else, and whatever those modules cannot prove the same, is :func:`parse_number`."""
    text = _clean(raw)
    nsn = _nanp_national(text, default_region)
    if nsn is None:
        return _by_kept_answer(raw, default_region, text)
    from callscreen.nanp import NanpExchanges  # loads the geocoder's data once, as parse_number does

    found = NanpExchanges.shared().exchange(nsn)
    if found is None:
        raise NotAssigned(f"not a valid number: {raw!r}")
    region, zones, subdivision = found
    return PhoneNumber(e164="+1" + nsn, region=region, timezones=zones, subdivision=subdivision)


_NANP_E164 = re.compile(r"\+1([2-9][0-9]{9})")
_US_NATIONAL = re.compile(r"1?([2-9][0-9]{9})")


def _nanp_national(text: str, default_region: str | None) -> str | None:
    """The ten national digits of a cleaned NANP number in a form whose parse is only that."""
    found = _NANP_E164.fullmatch(text) or (_US_NATIONAL.fullmatch(text) if default_region == "US" else None)
    return found.group(1) if found else None


_PREFIX_ANSWERS = PrefixAnswers()
_NATIONAL_ANSWERS = NationalAnswers()


def _by_kept_answer(raw: str, default_region: str | None, text: str) -> PhoneNumber:
    """A number answered from the numbers before it that share its deciding prefix: an E.164
    one by :mod:`callscreen.prefixes`, one in national form by :mod:`callscreen.national`. The
    first number of a prefix, and any number those modules give no key, is :func:`parse_number`;
    what it answered (an invalid number too, never a parse error) is then kept."""
    answers: KeptAnswers[Any, Any]
    if text.startswith("+"):
        answers, digits = _PREFIX_ANSWERS, text[1:]
        key = _PREFIX_ANSWERS.key(digits)
    else:
        answers, digits = _NATIONAL_ANSWERS, text
        key = _NATIONAL_ANSWERS.key(digits, default_region)
    if key is None:
        return parse_number(raw, default_region, text)
    known, kept = answers.get(key)
    if known:
        if kept is None:
            raise NotAssigned(f"not a valid number: {raw!r}")
        e164, region, zones = answers.answered(digits, kept)
        return PhoneNumber(e164=e164, region=region, timezones=zones)
    try:
        number = parse_number(raw, default_region, text)
    except NotAssigned:
        answers.keep(key, None)
        raise
    found = answers.kept_from(key, digits, number)
    if found is not None:
        answers.keep(key, found)
    return number


def parse_number(raw: str, default_region: str | None = None, text: str | None = None) -> PhoneNumber:
    """:func:`normalize` by phonenumbers' full parse, for any number (``text``: ``raw`` cleaned)."""
    text = _clean(raw) if text is None else text
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"not a phone number: {raw!r} ({exc._msg})") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise NotAssigned(f"not a valid number: {raw!r}")
    region = phonenumbers.region_code_for_number(parsed) or ""
    zones = _zones_for(parsed, region)
    return PhoneNumber(
        e164=phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
        region=region,
        timezones=zones,
        subdivision=_subdivision(parsed, region),
    )


def prepare(regions: Iterable[str]) -> list[str]:
    """Load, now, the number data that normalizing numbers of ``regions`` loads on first use
    (phonenumbers' metadata; for a NANP region the exchange table and the geocoder's data,
    ~0.6 s and ~100 MB), so that no decision pays it inside its budget. Returns the regions
    prepared; codes phonenumbers does not know are skipped."""
    prepared: list[str] = []
    for region in sorted(set(regions)):
        example = phonenumbers.example_number(region)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        dialled = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        try:
            for _ in range(2):  # the second reads the prefix depths: E.164, and the national form
                normalize.__wrapped__(e164)
                normalize.__wrapped__(dialled, region)
            if example.country_code == 1:
                normalize.__wrapped__("+12015550123")  # a US number: the table behind every NANP region
        except InvalidNumber:
            continue
        prepared.append(region)
    return prepared


def mask(e164: str) -> str:
    """Show a number the way supervisors see it: ``+7 999 ***-**-67``.

    Keeps the country code and the last two digits. The first group (operator or area code)
    stays visible only when it is space-separated and at least six digits remain after it, so
    at least half of a short number is always hidden. Grouping is kept.
    """
    try:
        parsed = phonenumbers.parse(e164)
        formatted = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return "***"
    country, _, rest = formatted.partition(" ")
    head, _, tail = rest.partition(" ")
    if not tail or sum(c.isdigit() for c in tail) < 6:
        head, tail = "", rest
    digits_left = sum(c.isdigit() for c in tail)
    out = []
    for char in tail:
        if char.isdigit():
            digits_left -= 1
            out.append(char if digits_left < 2 else "*")
        else:
            out.append(char)
    return f"{country} {head + ' ' if head else ''}{''.join(out)}"
