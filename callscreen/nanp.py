"""The geography of a NANP exchange (``+1`` area code + exchange), without a full parse.

:func:`callscreen.numbers.parse_number` answers a ``+1`` number in 60–400 µs (parsing, then
the region, validity, time zone and geocoder look-ups, each repeating the number-type regexes).
A scrub over every US area code meets ~264,000 exchanges; :class:`NanpExchanges` answers one
in a few µs from the same phonenumbers metadata, compiled once per process:

- the region and number type follow phonenumbers' own order (``region_code_for_number``:
  US by its number-type patterns, then each NANP region by its leading digits, Canada by its
  patterns), with the patterns compiled once;
- time zones and the US state come from phonenumbers' time zone and geocoder prefix maps,
  searched from the longest prefix down as phonenumbers does.

Anything outside that path — a national number not starting with 2–9, a number type that is
not geographic (toll-free, premium, personal…), a US number the geocoder has no area for —
is answered by ``parse_number`` itself, so every answer equals ``parse_number``'s (a test compares
them over every area code, valid or not).

Outside a few area codes, the answer depends only on the first six national digits (area code +
exchange): the prefix maps hold at most ``1`` + six digits for ``+1`` (a test checks it), and
nearly every pattern accepts any four digits after the exchange. :func:`deep_areas` names the
area codes where a pattern reaches further (``246521[0369]\\d{3}``, Barbados' fixed lines), read
from the patterns' structure; there an answer holds for one number, not for its exchange.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberType, timezone
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, is_number_type_geographical
from phonenumbers.prefix import _LOCALE_NORMALIZATION_MAP, _find_lang, _full_locale

from callscreen.numbers import InvalidNumber, PhoneNumber, clean_zones, parse_number, us_subdivision
from callscreen.prefixes import Unreadable, number_patterns, start_depth, whole_depth

Exchange = tuple[str, tuple[str, ...], str | None] | None  # region, time zones, subdivision; None: invalid

_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")
_TYPE_OF = {
    "premium_rate": PhoneNumberType.PREMIUM_RATE, "toll_free": PhoneNumberType.TOLL_FREE,
    "shared_cost": PhoneNumberType.SHARED_COST, "voip": PhoneNumberType.VOIP,
    "personal_number": PhoneNumberType.PERSONAL_NUMBER, "pager": PhoneNumberType.PAGER,
    "uan": PhoneNumberType.UAN, "voicemail": PhoneNumberType.VOICEMAIL,
}
_NSN_LENGTH = 10
_PLUS_ONE = phonenumbers.PhoneNumber(country_code=1, national_number=0)
_UNKNOWN_ZONES = ("Etc/Unknown",)


def _pattern(desc: object) -> str | None:
    """A number description's pattern, or None when it cannot match a 10-digit national
    number (phonenumbers' ``_is_number_matching_desc``: possible lengths, then the pattern)."""
    if desc is None:
        return None
    lengths = getattr(desc, "possible_length", ())
    pattern = getattr(desc, "national_number_pattern", None)
    if (lengths and _NSN_LENGTH not in lengths) or not pattern:
        return None
    if re.compile(pattern).groups:
        raise ImportError("phonenumbers patterns with capturing groups: callscreen.nanp needs updating")
    return pattern


@dataclass(frozen=True, slots=True)
class _Region:
    """One NANP region's compiled metadata.

    phonenumbers' ``_number_type_helper`` tries the general pattern, then each number type in
    a fixed order, first full match wins. ``types`` is that order as one alternation of named
    groups: ``fullmatch`` takes the first alternative that matches the whole number, so the
    group that matched is the type phonenumbers finds.
    """

    code: str
    leading: str | None  # its leading digits, if it has them (then they decide its numbers)
    general: Callable[[str], re.Match[str] | None] | None
    types: Callable[[str], re.Match[str] | None] | None
    mobile: Callable[[str], re.Match[str] | None] | None  # checked after a fixed-line match
    same_fixed_and_mobile: bool

    @classmethod
    def compile(cls, code: str) -> _Region:
        meta = PhoneMetadata.metadata_for_region(code)
        same = bool(meta.same_mobile_and_fixed_line_pattern)
        branches = [(f"t{int(_TYPE_OF[name])}", pattern) for name in _TYPES
                    if (pattern := _pattern(getattr(meta, name))) is not None]
        fixed, mobile = _pattern(meta.fixed_line), _pattern(meta.mobile)
        if fixed is not None:
            branches.append(("fixed", fixed))
        if mobile is not None and not same:
            branches.append((f"t{int(PhoneNumberType.MOBILE)}", mobile))
        general = _pattern(meta.general_desc)
        return cls(code, meta.leading_digits,
                   re.compile(general).fullmatch if general else None,
                   re.compile("|".join(f"(?P<{name}>{p})" for name, p in branches)).fullmatch if branches else None,
                   re.compile(mobile).fullmatch if mobile else None, same)

    def number_type(self, nsn: str) -> int:
        """phonenumbers' ``_number_type_helper`` for a 10-digit national number."""
        if self.general is None or self.types is None or not self.general(nsn):
            return PhoneNumberType.UNKNOWN
        found = self.types(nsn)
        if found is None:
            return PhoneNumberType.UNKNOWN
        name = found.lastgroup
        if name == "fixed":
            if self.same_fixed_and_mobile or (self.mobile is not None and self.mobile(nsn)):
                return PhoneNumberType.FIXED_LINE_OR_MOBILE
            return PhoneNumberType.FIXED_LINE
        assert name is not None
        return int(name[1:])


def _longest_key(data: dict[str, object], start: str) -> int:
    return max((len(key) for key in data if key.startswith(start)), default=0)


def _stages(regions: tuple[_Region, ...]) -> tuple[tuple[_Region | None, Callable[[str], re.Match[str] | None] | None,
                                                         dict[str, _Region]], ...]:
    """phonenumbers' ``region_code_for_number`` order as stages: a region decided by its number
    types, or a run of regions decided by leading digits (one alternation, first match wins)."""
    stages: list[tuple[_Region | None, Callable[[str], re.Match[str] | None] | None, dict[str, _Region]]] = []
    run: list[_Region] = []

    def close() -> None:
        if run:
            pattern = "|".join(f"(?P<{r.code}>{r.leading})" for r in run)
            stages.append((None, re.compile(pattern).match, {r.code: r for r in run}))
            run.clear()

    for region in regions:
        if region.leading is not None:
            run.append(region)
        else:
            close()
            stages.append((region, None, {}))
    close()
    return tuple(stages)


_SHORTEST_EXCHANGE = 6  # area code + exchange


@functools.cache
def deep_areas() -> frozenset[int]:
    """Area codes (0–999) where a number's answer may depend on more than its first six digits.

    Each NANP region's patterns (:func:`callscreen.prefixes.number_patterns`) are read with
    :func:`callscreen.prefixes.whole_depth`: a region with a pattern constraining a seventh digit
    or later makes deep the area codes its leading digits can start; every area code is deep when
    such a region has no leading digits (it is decided by its patterns alone), or when a pattern
    cannot be read."""
    every = frozenset(range(1000))
    deep: set[int] = set()
    for code in COUNTRY_CODE_TO_REGION_CODE[1]:
        meta = PhoneMetadata.metadata_for_region(code)
        try:
            reach = max((whole_depth(pattern, _NSN_LENGTH) for pattern in number_patterns(meta)), default=0)
            if reach <= _SHORTEST_EXCHANGE:
                continue
            if not meta.leading_digits:
                return every
            leading = start_depth(meta.leading_digits, _NSN_LENGTH)
        except (Unreadable, re.error, RecursionError):
            return every
        starts = re.compile(meta.leading_digits).match
        width = max(leading - 3, 0)  # leading digits past the area code: every spelling of them is tried
        deep.update(npa for npa in range(1000) if any(
            starts(f"{npa * 10 ** width + rest:0{3 + width}d}".ljust(_NSN_LENGTH, "0")) for rest in range(10 ** width)))
    return frozenset(deep)


class NanpExchanges:
    """Answers ``parse_number("+1" + nsn)`` for 10-digit national numbers, as region, zones and
    subdivision (``None``: not a valid number); :func:`callscreen.numbers.normalize` answers
    ten-digit NANP numbers through :meth:`shared`. Threads may share one: its caches only ever
    gain entries, each the same whichever thread computes it."""

    def __init__(self) -> None:
        from phonenumbers import geocoder
        from phonenumbers.geodata import GEOCODE_DATA, GEOCODE_LONGEST_PREFIX  # large: loaded on first use

        regions = tuple(_Region.compile(code) for code in COUNTRY_CODE_TO_REGION_CODE[1])
        self._stages = _stages(regions)
        self._zone_data = timezone.TIMEZONE_DATA
        self._geo_data = GEOCODE_DATA
        # +1 keys are at most this long (longer prefixes cannot be found for a +1 number), and
        # the area codes with keys longer than "1" + area code (the others need one look-up)
        self._zone_prefix = min(timezone.TIMEZONE_LONGEST_PREFIX, _longest_key(self._zone_data, "1"))
        self._geo_prefix = min(GEOCODE_LONGEST_PREFIX, _longest_key(self._geo_data, "1"))
        self._split_zones = {key[:4] for key in self._zone_data if key.startswith("1") and len(key) > 4}
        self._area_zones: dict[str, tuple[str, ...] | None] = {}
        self._clean: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}
        self._states: dict[str, str | None] = {}
        self._area_names: dict[str, list[str | None]] = {}  # "1" + area code -> description by exchange
        # Numbers of a non-geographic type (toll-free, premium, personal…): phonenumbers gives
        # the country-level zones of +1 and, as description, a region's name or "" — none of
        # which names a US state (checked here; otherwise such numbers go to parse_number).
        self._country_zones = tuple(timezone._country_level_time_zones_for_number(_PLUS_ONE))
        names = ["", *(geocoder._region_display_name(r.code, "en") for r in regions)]
        self._non_geographic_ok = all(us_subdivision(name) is None for name in names)
        self._geographic = frozenset(kind for kind in vars(PhoneNumberType).values()
                                     if isinstance(kind, int) and is_number_type_geographical(kind, 1))
        # phonenumbers' language choice for "en" without script or region is the "en" entry
        self._plain_english = _full_locale("en", None, None) == "en" and "en" not in _LOCALE_NORMALIZATION_MAP

    @classmethod
    @functools.cache
    def shared(cls) -> NanpExchanges:
        """This process's instance (building one loads the geocoder's data, ~1 s: a parent that
        builds it before forking workers spares each of them that)."""
        return cls()

    def exchange(self, nsn: str) -> Exchange:
        """The answer for a 10-digit national number (ASCII digits)."""
        return self._exchange(nsn, self._description)

    def exchanges(self, nsns: Sequence[str]) -> list[Exchange]:
        """:meth:`exchange` of many numbers (a scrub's new exchanges). The same answers, but the
        geocoder's descriptions are read per area code, all of its keys at once (≈ 0.3 ms), and
        kept: its large table is not searched number by number."""
        return [self._exchange(nsn, self._area_description) for nsn in nsns]

    def prepare_for_many(self) -> None:
        """Build now what :meth:`exchanges` builds on first use (a parent does, before forking
        the workers that call it)."""
        _ = self._longer_keys

    def _exchange(self, nsn: str, description_of: Callable[[str], str | None]) -> Exchange:
        if len(nsn) != _NSN_LENGTH or not (nsn.isascii() and nsn.isdigit()):
            raise ValueError("a NANP national number has 10 digits")
        if nsn[0] in "01":  # leading zeros and the national prefix: phonenumbers' parsing decides
            return self._normalized(nsn)
        region, kind = self._classify(nsn)
        if region is None or kind == PhoneNumberType.UNKNOWN:
            return None
        if kind not in self._geographic:
            if not self._non_geographic_ok:
                return self._normalized(nsn)
            return region, self._cleaned(region, self._country_zones), None
        digits = "1" + nsn  # E.164 without the "+": what the prefix maps are keyed by
        area = digits[:4]
        if area in self._split_zones:
            zones = self._longest(self._zone_data, self._zone_prefix, digits)
        else:
            try:
                zones = self._area_zones[area]
            except KeyError:
                zones = self._area_zones[area] = self._longest(self._zone_data, 4, digits)
        subdivision = None
        if region == "US":
            description = description_of(digits)
            if description is None:
                return self._normalized(nsn)
            try:
                subdivision = self._states[description]
            except KeyError:
                subdivision = self._states[description] = us_subdivision(description)
        return region, self._cleaned(region, zones or _UNKNOWN_ZONES), subdivision

    def _cleaned(self, region: str, zones: tuple[str, ...]) -> tuple[str, ...]:
        key = (region, zones)
        found = self._clean.get(key)
        if found is None:
            found = self._clean[key] = clean_zones(zones, region)
        return found

    def _classify(self, nsn: str) -> tuple[str | None, int]:
        """phonenumbers' ``region_code_for_number`` and the number's type in that region."""
        for region, leading, by_code in self._stages:
            if region is not None:
                kind = region.number_type(nsn)
                if kind != PhoneNumberType.UNKNOWN:
                    return region.code, kind
            else:
                assert leading is not None
                found = leading(nsn)
                if found is not None:
                    chosen = by_code[found.lastgroup or ""]
                    return chosen.code, chosen.number_type(nsn)
        return None, PhoneNumberType.UNKNOWN

    @staticmethod
    def _longest(data: dict, longest: int, digits: str) -> tuple[str, ...] | None:
        for length in range(longest, 0, -1):
            found = data.get(digits[:length])
            if found is not None:
                return found
        return None

    def _description(self, digits: str, longest: int | None = None) -> str | None:
        """The geocoder's English area description (``description_for_valid_number``), or None
        when it has none (phonenumbers then falls back to the country name); from keys of at
        most ``longest`` digits when given."""
        data = self._geo_data
        for length in range(self._geo_prefix if longest is None else longest, 0, -1):
            names = data.get(digits[:length])
            if names is not None:
                name = self._english(names)
                if name is not None:
                    return name or None
        return None

    def _english(self, names: dict[str, str]) -> str | None:
        """The English name of a geocoder entry, as phonenumbers chooses it for "en"."""
        return names.get("en") if self._plain_english else _find_lang(names, "en", None, None)

    def _area_description(self, digits: str) -> str | None:
        """:meth:`_description` from the descriptions of the number's area code, built once."""
        area = digits[:4]
        names = self._area_names.get(area)
        if names is None:
            names = self._area_names[area] = self._descriptions_of_area(area)
        return names[int(digits[4:7])]

    def _descriptions_of_area(self, area: str) -> list[str | None]:
        """:meth:`_description` of each exchange of ``area`` ("1" + area code): the area code's own
        description, then over it the geocoder's longer keys of that area code, shortest first,
        each over the exchanges it covers (a key of "1" + area code + one digit covers 100)."""
        names = [self._description(area + "000000", longest=min(len(area), self._geo_prefix))] * 1000
        for key, name in self._longer_keys.get(area, ()):
            width = 10 ** (len(area) + 3 - len(key))
            start = int(key[len(area):]) * width
            names[start:start + width] = [name] * width
        return names

    @functools.cached_property
    def _longer_keys(self) -> dict[str, list[tuple[str, str | None]]]:
        """The geocoder's +1 keys longer than "1" + area code (at most :attr:`_geo_prefix` long)
        that have an English name, by area, shortest first, each with what :meth:`_description`
        answers from it."""
        grouped: dict[str, list[tuple[str, str | None]]] = {}
        keys = [key for key in self._geo_data if key.startswith("1") and 4 < len(key) <= self._geo_prefix]
        for key in sorted(keys, key=len):
            name = self._english(self._geo_data[key])
            if name is not None:
                grouped.setdefault(key[:4], []).append((key, name or None))
        return grouped

    @staticmethod
    def _normalized(nsn: str) -> Exchange:
        try:
            found: PhoneNumber = parse_number("+1" + nsn)
        except InvalidNumber:
            return None
        return found.region, found.timezones, found.subdivision
