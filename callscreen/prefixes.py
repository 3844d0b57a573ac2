"""A number's geography kept per prefix: how many leading digits decide it, read from phonenumbers' patterns.

phonenumbers decides an E.164 number's validity, region, type and time zones with regular
expressions over its national number, and a full parse costs ~100 µs. For most calling codes,
every such pattern constrains only the first few national digits and accepts any digit after
them (a Russian mobile: the first six, then ``\\d{4}``). :func:`depth` reads that from the
patterns themselves (their structure, through ``re``'s own parser) for one calling code and one
national length; :class:`PrefixAnswers` then keeps one full parse's answer per prefix of that
depth and answers every other number sharing the prefix from it.

Invariants:

- the depth covers every pattern phonenumbers applies to such a number: each region's leading
  digits (matched at the start), its general pattern and every number type's (whole number),
  and the time-zone prefix map's longest key; a pattern whose structure it cannot read (a
  look-around, a back-reference...) gives no depth, and those numbers are parsed in full;
- only numbers whose parse is the national number as written take this path: ``+``, a calling
  code with geographic regions (not ``+1``, whose US numbers also need the geocoder: see
  :mod:`callscreen.nanp`), and a national number neither starting with ``0`` nor matching the
  main region's national prefix (which the parse could strip);
- what is kept is the answer without the number itself: validity, region, time zones, and no
  subdivision (only US numbers have one); a parse error is never kept (that number, and the
  next, are parsed in full).

A test compares the answers with full parses over many calling codes, valid and invalid.
:mod:`callscreen.national` answers numbers dialled in national form the same way, from what
their parse strips and this module's deciding digits of what it leaves.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from phonenumbers import PhoneMetadata, timezone
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

try:  # Python 3.11+: re's parser is re._parser
    from re import _constants as sre
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as sre  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

K = TypeVar("K")
V = TypeVar("V")
Answer = tuple[str, tuple[str, ...]] | None  # (region, time zones); None: not a valid number
_DIGITS = frozenset("0123456789")
_TYPES = ("fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "voip", "personal_number",
          "pager", "uan", "voicemail")
_ANCHORS = {sre.AT_BEGINNING, sre.AT_BEGINNING_STRING, sre.AT_END, sre.AT_END_STRING}


class Unreadable(ValueError):
    """A pattern whose structure :func:`depth` does not follow."""


Paths = frozenset[tuple[int, int]]  # (digits consumed, digits from the start that are constrained)


def _then(first: Iterable[tuple[int, int]], second: Iterable[tuple[int, int]], limit: int) -> Paths:
    second = tuple(second)
    return frozenset((a + b, a + d2 if d2 else d1) for a, d1 in first for b, d2 in second if a + b <= limit)


def _accepts_every_digit(items: list[tuple[Any, Any]]) -> bool:
    """Whether a character class takes every ASCII digit (then it constrains nothing)."""
    taken: set[str] = set()
    negated = False
    for op, av in items:
        if op is sre.NEGATE:
            negated = True
        elif op is sre.LITERAL:
            taken.add(chr(av))
        elif op is sre.RANGE:
            taken.update(chr(c) for c in range(av[0], av[1] + 1))
        elif op is sre.CATEGORY and av is sre.CATEGORY_DIGIT:
            taken |= _DIGITS
        else:  # another category: counted as a constraint (the safe side)
            return False
    return (_DIGITS - taken if negated else taken) >= _DIGITS


def _paths(items: Iterable[tuple[Any, Any]], limit: int) -> Paths:
    result: Paths = frozenset({(0, 0)})
    for op, av in items:
        result = _then(result, _item(op, av, limit), limit)
    return result


def _item(op: Any, av: Any, limit: int) -> Paths:
    if op is sre.LITERAL or op is sre.NOT_LITERAL:
        return frozenset({(1, 1)})
    if op is sre.ANY:
        return frozenset({(1, 0)})
    if op is sre.IN:
        return frozenset({(1, 0 if _accepts_every_digit(av) else 1)})
    if op is sre.SUBPATTERN:
        return _paths(av[-1], limit)
    if op is sre.BRANCH:
        return frozenset().union(*(_paths(alternative, limit) for alternative in av[1]))
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)):
        low, high, sub = av
        once, found, run = _paths(sub, limit), set(), frozenset({(0, 0)})
        for count in range(min(high, limit) + 1):
            if count >= low:
                found |= run
            run = _then(run, once, limit)
            if not run:
                break
        return frozenset(found)
    if op is sre.AT and av in _ANCHORS:
        return frozenset({(0, 0)})
    raise Unreadable(f"{op} in a pattern")


def whole_depth(pattern: str, length: int) -> int:
    """How many leading digits decide whether ``pattern`` matches a whole ``length``-digit string."""
    return max((d for n, d in _paths(sre_parse.parse(pattern), length) if n == length), default=0)


def start_depth(pattern: str, length: int) -> int:
    """The same for a match at the start (``re.match``) of a ``length``-digit string."""
    return max((d for _n, d in _paths(sre_parse.parse(pattern), length)), default=0)


def number_patterns(metadata: Any) -> list[str]:
    """A region's general pattern and each number type's (what phonenumbers matches a whole national number against)."""
    found = [metadata.general_desc.national_number_pattern] if metadata.general_desc else []
    for name in _TYPES:
        desc = getattr(metadata, name)
        if desc is not None and desc.national_number_pattern:
            found.append(desc.national_number_pattern)
    return [pattern for pattern in found if pattern]


@functools.lru_cache(maxsize=1024)
def depth(calling_code: int, length: int) -> int | None:
    """How many leading digits of a ``length``-digit national number of ``calling_code`` decide
    its validity, region and time zones (None: not known for it, see the module's invariants,
    or all of them: such a number is no better answered by prefix than in full)."""
    needed = deciding_digits(calling_code, length)
    return needed if needed is not None and needed <= length else None


@functools.lru_cache(maxsize=1024)
def deciding_digits(calling_code: int, length: int) -> int | None:
    """:func:`depth` before it is bounded by the length (the time-zone map's keys may be longer
    than a short number, whose digits then all decide)."""
    regions = COUNTRY_CODE_TO_REGION_CODE.get(calling_code, ())
    if calling_code == 1 or not regions or "001" in regions:
        return None
    needed = 0
    try:
        for code in regions:
            metadata = PhoneMetadata.metadata_for_region(code)
            if metadata is None:
                return None
            if metadata.leading_digits:
                needed = max(needed, start_depth(metadata.leading_digits, length))
            for pattern in number_patterns(metadata):
                needed = max(needed, whole_depth(pattern, length))
    except (Unreadable, re.error, RecursionError):
        return None
    prefix = str(calling_code)
    longest = max((len(key) for key in timezone.TIMEZONE_DATA if key.startswith(prefix)), default=len(prefix))
    return max(needed, longest - len(prefix))


@functools.lru_cache(maxsize=1024)
def _strippable(calling_code: int) -> Callable[[str], Any] | None:
    """The main region's national prefix, matched at the start of a national number."""
    main = PhoneMetadata.metadata_for_region(COUNTRY_CODE_TO_REGION_CODE[calling_code][0])
    prefix = main.national_prefix_for_parsing if main is not None else None
    return re.compile(prefix).match if prefix else None


def split(digits: str) -> tuple[int, str] | None:
    """``(calling code, national number)`` of an E.164 number's digits, or None (calling codes
    are a prefix code: the first one to three digits that name one are it)."""
    for size in (1, 2, 3):
        code = int(digits[:size]) if digits[:size].isdigit() else -1
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return code, digits[size:]
    return None


class KeptAnswers(Generic[K, V]):
    """Answers kept per key, at most ``limit`` of them, the oldest first out. Threads may share
    one: an entry is the same whichever thread computes it."""

    def __init__(self, limit: int = 65536) -> None:
        self.limit = limit
        self._answers: dict[K, V] = {}
        self._lock = threading.Lock()  # for keep's eviction; a look-up needs none

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(known, answer)``: ``known`` False when nothing is kept for ``key`` yet."""
        try:
            return True, self._answers[key]
        except KeyError:
            return False, None

    def keep(self, key: K, answer: V) -> None:
        with self._lock:
            if len(self._answers) >= self.limit:
                self._answers.pop(next(iter(self._answers)), None)
            self._answers[key] = answer

    def kept_from(self, key: K, digits: str, number: Any) -> V | None:
        """What to keep under ``key`` from the full parse of ``digits`` (``number``: the valid
        :class:`~callscreen.numbers.PhoneNumber` it gave); None keeps nothing."""
        raise NotImplementedError

    def answered(self, digits: str, kept: V) -> tuple[str, str, tuple[str, ...]]:
        """``(E.164, region, time zones)`` of ``digits``, from the valid answer kept under its key."""
        raise NotImplementedError


class PrefixAnswers(KeptAnswers[tuple[int, int, str], Answer]):
    """Answers kept per (calling code, national length, prefix of :func:`depth` digits), at most
    ``limit`` of them (65,536 entries: 10–20 MB)."""

    def __init__(self, limit: int = 65536) -> None:
        super().__init__(limit)
        self._seen: set[tuple[int, int]] = set()  # calling codes and lengths met before

    def key(self, digits: str) -> tuple[int, int, str] | None:
        """The key a number's answer is kept under, or None when it must be parsed in full
        (also the first time a calling code and national length are met)."""
        if not digits.isascii() or not digits.isdigit():
            return None
        found = split(digits)
        if found is None:
            return None
        code, national = found
        if not national or national[0] == "0":
            return None
        shape = (code, len(national))
        if shape not in self._seen:  # a process that normalizes one number (the classic AGI
            self._seen.add(shape)    # script) never pays for reading the patterns (1-20 ms)
            return None
        needed = depth(*shape)
        strip = _strippable(code)
        if needed is None or (strip is not None and strip(national)):
            return None
        return code, len(national), national[:needed]

    def kept_from(self, key: tuple[int, int, str], digits: str, number: Any) -> Answer:
        return number.region, number.timezones

    def answered(self, digits: str, kept: Answer) -> tuple[str, str, tuple[str, ...]]:
        assert kept is not None
        return "+" + digits, kept[0], kept[1]
