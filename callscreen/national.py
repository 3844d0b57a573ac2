"""A number dialled in national form kept per raw prefix: what phonenumbers' parse does with it, read from its patterns.

A number written without ``+`` in a campaign's region (``8 999 123-45-67`` in RU, ``07911 123456``
in GB, ``0888 123 456`` in BG) takes more of phonenumbers' parse than an E.164 one: the region's
international prefix written without ``+`` (``810 44…``), its country code written without ``+``
(``7 999…``), then its national prefix and carrier code (``national_prefix_for_parsing``),
stripped only when what is left matches the region's general pattern wherever the whole number
did and has a possible length. What is left is then judged as in :mod:`callscreen.prefixes`.

For a number that does not start with the international prefix, the national-prefix pattern
is matched here, at the start of the digits, by ``re`` as the parse matches it: its end is part
of the key. Past that
match every step is a whole-number match of the general pattern (on the number, and on what the
match leaves) or a test of a length, and :func:`depth` reads how many leading digits decide them
and the national number left (:func:`callscreen.prefixes.deciding_digits`) from the patterns'
structure, as :mod:`callscreen.prefixes` does; :func:`deciding_prefix` reads, step by step,
the fewest of those digits a number's own digits need. Numbers of one region, raw length and
match end that share that many leading digits take the same steps, drop the same leading digits
and leave national numbers with the same answer: :class:`NationalAnswers` keeps, per such
prefix, how many digits the first one's full parse dropped and its answer. A number starting
with the region's calling code may be read either way (the code stripped, when the whole does
not match the general pattern and what is left does, or the whole is too long; else as a
national number): :func:`calling_code_prefix` covers the digits deciding both ways.

Invariants:

- parsed in full: a region whose national prefix has a transform rule (the digits the parse
  leaves are not the number's own: Argentina, Brazil, Japan, the NANP islands…) or a ``+1``
  calling code (:mod:`callscreen.nanp`); a number the region's international prefix matches
  (the parse reads a calling code of any country there); a length
  or match end whose patterns give no depth, or whose depth is the whole number; and the first
  number of a region and length (a one-number process never reads the patterns);
- what is kept is how many leading digits the first full parse dropped, checked against its
  E.164 (the region's calling code, then the number's own remaining digits; nothing is kept
  otherwise), with its validity, region and time zones; a parse error is never kept; the E.164
  of a number answered from it is built from that number's own digits.

A test compares the answers with full parses over every region phonenumbers knows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phonenumbers import SUPPORTED_REGIONS, PhoneMetadata

from callscreen import prefixes

# ("+" and calling code, leading digits dropped, region, time zones); None: not a valid number
Kept = tuple[str, int, str, tuple[str, ...]] | None
Key = tuple[str, int, int, str]  # region, raw length, national-prefix match end (-1: none), prefix


class _NoDepth(Exception):
    """A step whose deciding digits are not known."""


@dataclass(frozen=True, slots=True)
class _Region:
    """What the parse reads of a default region before the national number."""

    country_code: str
    international: re.Pattern[str]
    national_prefix: re.Pattern[str] | None


@functools.lru_cache(maxsize=512)
def _region(region: str) -> _Region | None:
    metadata = PhoneMetadata.metadata_for_region(region) if region in SUPPORTED_REGIONS else None
    if metadata is None or metadata.country_code == 1 or metadata.national_prefix_transform_rule:
        return None
    prefix = metadata.national_prefix_for_parsing
    try:
        return _Region(str(metadata.country_code), re.compile(metadata.international_prefix or "NonMatch"),
                       re.compile(prefix) if prefix else None)
    except re.error:
        return None


def _general(metadata: PhoneMetadata, length: int) -> int:
    """Digits deciding whether a ``length``-digit number matches the region's general pattern."""
    pattern = metadata.general_desc.national_number_pattern if metadata.general_desc else None
    return prefixes.whole_depth(pattern, length) if pattern else 0


def _steps(end: int, general: Callable[[int], int], national: Callable[[int], int]) -> int:
    """The digits the parse of a national-form number reads, whose national-prefix match ends at
    ``end`` (-1: none), from ``general(at)`` and ``national(at)``: the digits deciding, from
    offset ``at`` on, the general pattern's match and the answer of a national number starting
    there. Nothing to strip: the number is the national number. Else it is stripped or not, as
    the general pattern's matches (and the lengths) decide, so both ways count. The one
    statement of those steps: :func:`depth` reads them for any number of a length,
    :func:`deciding_prefix` for one number."""
    if end < 0:
        return national(0)
    return max(general(0), end + general(end), national(0), end + national(end))


@functools.lru_cache(maxsize=4096)
def depth(region: str, length: int, end: int) -> int | None:
    """How many leading digits of a ``length``-digit number in ``region``'s national form, whose
    national-prefix match ends at ``end`` (-1: no match), decide what the parse strips and the
    answer for what it leaves (None: parsed in full, see the module's invariants)."""
    if _region(region) is None:
        return None
    metadata = PhoneMetadata.metadata_for_region(region)
    code = metadata.country_code

    def national(size: int) -> int:
        needed = prefixes.deciding_digits(code, size) if size > 0 else None
        if needed is None:
            raise _NoDepth
        return min(needed, size)

    try:
        needed = _steps(end, lambda at: _general(metadata, length - at), lambda at: national(length - at))
    except (_NoDepth, prefixes.Unreadable, re.error, RecursionError):
        return None
    return needed if needed < length else None


@functools.lru_cache(maxsize=4096)
def _general_decider(region: str, length: int) -> prefixes.PrefixDecider | None:
    metadata = PhoneMetadata.metadata_for_region(region)
    pattern = metadata.general_desc.national_number_pattern if metadata.general_desc else None
    try:
        return prefixes.PrefixDecider(prefixes.whole_shapes(pattern, length) if pattern else ())
    except (prefixes.Unreadable, re.error, RecursionError):
        return None


_READ: dict[tuple[str, int, int, str], int] = {}  # (region, length, end, first depth() digits) -> deciding digits
_MOST_READ = 1 << 16


def deciding_prefix(region: str, digits: str, end: int) -> int | None:
    """How many leading digits of ``digits`` (a national-form number of ``region`` whose
    national-prefix match ends at ``end``) decide the parse, for this number: each step of
    :func:`depth`, read prefix by prefix (:class:`callscreen.prefixes.PrefixDecider`), so at most
    :func:`depth` and often far fewer (None: parsed in full). The count is remembered per first
    :func:`depth` digits: it reads no further (at most :data:`_MOST_READ` of them)."""
    bound = depth(region, len(digits), end)
    if bound is None:
        return None
    key = (region, len(digits), end, digits[:bound])
    needed = _READ.get(key)
    if needed is None:
        needed = _read_prefix(region, digits, end, bound)
        if len(_READ) >= _MOST_READ:
            _READ.clear()
        _READ[key] = needed
    return needed


def _read_prefix(region: str, digits: str, end: int, bound: int, *, strict: bool = False) -> int:
    """:func:`deciding_prefix` read afresh: the most any of depth()'s steps needs for these
    digits (``bound`` where a step cannot be read, or :class:`_NoDepth` if ``strict``)."""
    found = _region(region)
    try:
        if found is None:
            raise _NoDepth
        code = int(found.country_code)
        needed = _steps(end, lambda at: _general_digits(region, digits[at:]),
                        lambda at: _national_digits(code, digits[at:]))
    except _NoDepth:
        if strict:
            raise
        return bound
    return min(needed, bound)


def prefix_digits(region: str, digits: str, end: int) -> int | None:
    """How many leading digits key the answer of ``digits``, a number of ``region`` written
    without ``+`` or an international prefix (None: parsed in full)."""
    found = _region(region)
    if found is not None and digits.startswith(found.country_code):
        return calling_code_prefix(region, digits, end)
    return deciding_prefix(region, digits, end)


def calling_code_prefix(region: str, digits: str, end: int) -> int | None:
    """:func:`deciding_prefix` for digits that start with ``region``'s calling code, written
    without ``+`` (``7 999 …`` in RU). The parse strips the code when the whole number does not
    match the general pattern and what is left does (after its own national prefix, stripped as
    for any number), or when the whole is too long; else it reads the whole as a national number.
    Both ways are covered: the digits deciding each match, and the answer either way (None:
    parsed in full)."""
    found = _region(region)
    bound = depth(region, len(digits), end)  # the whole read as a national number
    if found is None or bound is None:
        return None
    code = int(found.country_code)
    cut = len(found.country_code)
    rest = digits[cut:]
    match = found.national_prefix.match(rest) if found.national_prefix else None
    end_in_rest = match.end() if match else -1
    try:
        # the whole as written (its general match, and read as a national number), then what is
        # left after the code: its general match, and the steps of any national number
        in_rest = _steps(end_in_rest, lambda at: _general_digits(region, rest[at:]),
                         lambda at: _national_digits(code, rest[at:]))
        needed = max(_general_digits(region, digits), _read_prefix(region, digits, end, bound, strict=True),
                     cut + max(_general_digits(region, rest), in_rest))
    except _NoDepth:
        return None
    return needed if needed < len(digits) else None


def _general_digits(region: str, text: str) -> int:
    """How many leading digits of ``text`` decide whether it matches ``region``'s general pattern."""
    decider = _general_decider(region, len(text))
    if decider is None:
        raise _NoDepth
    return decider.digits(text)


def _national_digits(code: int, text: str) -> int:
    """How many leading digits of ``text``, a national number of ``code``, decide its answer."""
    needed = prefixes.deciding_prefix(code, text) if text else None
    if needed is None:
        raise _NoDepth
    return needed


class NationalAnswers(prefixes.KeptAnswers[Key, Kept]):
    """What the full parse did with national-form numbers, kept per (region, raw length,
    national-prefix match end, prefix of :func:`deciding_prefix` digits), at most ``limit`` of them
    (65,536 entries: ≈ 15 MB, beside the E.164 answers' own bound)."""

    def __init__(self, limit: int = 65536) -> None:
        super().__init__(limit)
        self._seen: set[tuple[str, int]] = set()  # regions and lengths met before
        self._shared: dict[tuple[object, ...], Any] = {}  # one copy of each kept answer's parts

    def keep(self, key: Key, answer: Kept) -> None:
        """Keep ``answer``, sharing its parts with equal ones kept before (a prefix's answer is
        one of a few hundred per region: its time zones need not be stored 65,536 times)."""
        if answer is not None:
            if len(self._shared) >= self.limit:  # never met: a few thousand answers in all
                self._shared.clear()
            head, cut, region, zones = answer
            zones = self._shared.setdefault(zones, zones)
            answer = self._shared.setdefault((head, cut, region, zones), (head, cut, region, zones))
        super().keep(key, answer)

    def key(self, digits: str, region: str | None) -> Key | None:
        """The key a national-form number's answer is kept under, or None when it must be
        parsed in full (also the first time a region and length are met)."""
        found = _region(region) if isinstance(region, str) else None
        if found is None or not digits.isascii() or not digits.isdigit():
            return None
        if found.international.match(digits):
            return None
        shape = (region, len(digits))
        if shape not in self._seen:
            self._seen.add(shape)
            return None
        match = found.national_prefix.match(digits) if found.national_prefix else None
        end = match.end() if match else -1
        needed = prefix_digits(region, digits, end)
        return None if needed is None else (region, len(digits), end, digits[:needed])

    def kept_from(self, key: Key, digits: str, number: Any) -> Kept:
        """How many leading digits the parse dropped, with its answer; nothing when the E.164 is
        not the calling code then the number's own remaining digits, or the number has a
        subdivision (only US numbers do, and they are not kept here)."""
        found = self.dropped(digits, key[0], number.e164)
        if found is None or number.subdivision is not None:
            return None
        return (*found, number.region, number.timezones)

    def answered(self, digits: str, kept: Kept) -> tuple[str, str, tuple[str, ...]]:
        assert kept is not None
        head, cut, region, zones = kept
        return head + digits[cut:], region, zones

    @staticmethod
    def dropped(digits: str, region: str, e164: str) -> tuple[str, int] | None:
        """``("+" and calling code, how many leading digits were dropped)`` when the parse of
        ``digits`` gave ``e164`` as the region's calling code then the number's own remaining
        digits (None: it did not)."""
        found = _region(region)
        if found is None:
            return None
        head = "+" + found.country_code
        cut = len(digits) - (len(e164) - len(head))
        if not e164.startswith(head) or cut < 0 or digits[cut:] != e164[len(head):]:
            return None
        return head, cut
