"""A number's geography kept per prefix: how many leading digits decide it, read from phonenumbers' patterns.

phonenumbers decides an E.164 number's validity, region, type and time zones with regular
expressions over its national number, and a full parse costs ~100 µs. For most calling codes,
every such pattern constrains only the first few national digits and accepts any digit after
them (a Russian mobile: the first six, then ``\\d{4}``). :func:`depth` reads that from the
patterns themselves (their structure, through ``re``'s own parser) for one calling code and one
national length, the most any such number needs; :class:`PrefixDecider` reads, for each
number, the fewest of them its own digits need (two for most Russian mobiles, six for ``9300
05…``). :class:`PrefixAnswers` then keeps one full parse's answer per such prefix and answers
every other number sharing the prefix from it.

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


_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))
T = TypeVar("T")


def _repeated(once: frozenset[T], empty: T, then: Callable[[Iterable[T], Iterable[T], int], frozenset[T]],
              low: int, high: int, limit: int) -> frozenset[T]:
    """``once`` repeated ``low`` to ``high`` times (no more than ``limit`` digits): the runs of each
    count, built by ``then`` from the run of no repeat, ``empty``."""
    found: set[T] = set()
    run: frozenset[T] = frozenset({empty})
    for count in range(high + 1):
        if count >= low:
            found |= run
        run = then(run, once, limit)
        if not run:
            break
    return frozenset(found)


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
    if op in _REPEATS:
        low, high, sub = av
        return _repeated(_paths(sub, limit), (0, 0), _then, low, min(high, limit), limit)
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


# --- deciding digits, prefix by prefix ------------------------------------------------------
#
# :func:`deciding_digits` is the most any number of a calling code and length needs: a Russian
# mobile gets six digits because one branch (``9300…``) reads six, though every other ``9…``
# number is decided by two. A :class:`PrefixDecider` reads, number by number, the fewest leading
# digits after which nothing that number could still match reads further. It follows every way
# a pattern can match (a *shape*: per position, the digits taken), so it answers "which
# alternatives are still possible after these digits", which the depth alone cannot.

Shape = tuple[int, ...]  # per position, the digits it takes (bit d: digit d), or _UNREAD
_ALL = (1 << 10) - 1
_UNREAD = _ALL | 1 << 10  # a class whose digits are not read: it takes every digit, and constrains
_MOST_SHAPES = 20_000  # more alternatives than this: the pattern is left to deciding_digits
_MOST_NODES = 1 << 16  # prefixes remembered per decider


def _digit_bit(code: int) -> int:
    return 1 << (code - 48) if 48 <= code <= 57 else 0


def _class_digits(items: list[tuple[Any, Any]]) -> int:
    """The digits a character class takes (_UNREAD when it names a category other than \\d)."""
    taken, negated = 0, False
    for op, av in items:
        if op is sre.NEGATE:
            negated = True
        elif op is sre.LITERAL:
            taken |= _digit_bit(av)
        elif op is sre.RANGE:
            for code in range(max(av[0], 48), min(av[1], 57) + 1):
                taken |= _digit_bit(code)
        elif op is sre.CATEGORY and av is sre.CATEGORY_DIGIT:
            taken |= _ALL
        else:
            return _UNREAD
    return _ALL & ~taken if negated else taken


def _shapes_then(first: Iterable[Shape], second: Iterable[Shape], limit: int) -> frozenset[Shape]:
    second = tuple(second)
    joined = frozenset(a + b for a in first for b in second if len(a) + len(b) <= limit)
    if len(joined) > _MOST_SHAPES:
        raise Unreadable("too many alternatives to follow one by one")
    return joined


def _shapes_of(items: Iterable[tuple[Any, Any]], limit: int) -> frozenset[Shape]:
    result: frozenset[Shape] = frozenset({()})
    for op, av in items:
        result = _shapes_then(result, _shape_item(op, av, limit), limit)
    return result


def _shape_item(op: Any, av: Any, limit: int) -> frozenset[Shape]:
    if op is sre.LITERAL:
        bit = _digit_bit(av)
        return frozenset({(bit,)}) if bit else frozenset()
    if op is sre.NOT_LITERAL:
        return frozenset({(_ALL & ~_digit_bit(av),)})
    if op is sre.ANY:
        return frozenset({(_ALL,)})
    if op is sre.IN:
        digits = _class_digits(av)
        return frozenset({(digits,)}) if digits else frozenset()
    if op is sre.SUBPATTERN:
        return _shapes_of(av[-1], limit)
    if op is sre.BRANCH:
        found = frozenset().union(*(_shapes_of(alternative, limit) for alternative in av[1]))
        if len(found) > _MOST_SHAPES:
            raise Unreadable("too many alternatives to follow one by one")
        return found
    if op in _REPEATS:
        low, high, sub = av
        return _repeated(_shapes_of(sub, limit), (), _shapes_then, low, min(high, limit), limit)
    if op is sre.AT and av in _ANCHORS:
        return frozenset({()})
    raise Unreadable(f"{op} in a pattern")


def whole_shapes(pattern: str, length: int) -> frozenset[Shape]:
    """Every way ``pattern`` matches a whole ``length``-digit string."""
    return frozenset(s for s in _shapes_of(sre_parse.parse(pattern), length) if len(s) == length)


def start_shapes(pattern: str, length: int) -> frozenset[Shape]:
    """Every way ``pattern`` matches at the start (``re.match``) of a ``length``-digit string."""
    return _shapes_of(sre_parse.parse(pattern), length)


def _reads_to(shape: Shape) -> int:
    """How many leading positions of ``shape`` constrain a digit (up to the last that does)."""
    for at in range(len(shape) - 1, -1, -1):
        if shape[at] != _ALL:
            return at + 1
    return 0


class PrefixDecider:
    """The fewest leading digits of a string after which none of the shapes it could still take
    reads a further digit; numbers sharing that prefix then take exactly the same shapes.

    Invariant: the count for a string depends only on its first that-many digits, so numbers
    sharing them get the same count (it is the first position where no shape is undecided).
    Prefixes already walked are remembered (at most :data:`_MOST_NODES`)."""

    def __init__(self, shapes: Iterable[Shape]) -> None:
        self._root = tuple((shape, reads) for shape in set(shapes) if (reads := _reads_to(shape)) > 0)
        self._nodes: dict[str, tuple[tuple[Shape, int], ...]] = {}

    def digits(self, text: str) -> int:
        """The count for ``text`` (ASCII digits); ``len(text)`` when every digit decides."""
        live, nodes = self._root, self._nodes
        for at in range(len(text)):
            if not live:
                return at
            prefix = text[:at + 1]
            found = nodes.get(prefix)
            if found is None:
                bit = 1 << (ord(text[at]) - 48)
                found = tuple((shape, reads) for shape, reads in live if reads > at + 1 and shape[at] & bit)
                if len(nodes) >= _MOST_NODES:
                    nodes.clear()
                nodes[prefix] = found
            live = found
        return len(text)


@functools.lru_cache(maxsize=1024)
def prefix_decider(calling_code: int, length: int) -> PrefixDecider | None:
    """The :class:`PrefixDecider` over everything phonenumbers reads of a ``length``-digit national
    number of ``calling_code`` (what :func:`deciding_digits` bounds: each region's leading digits
    at the start, its general and number-type patterns on the whole number, the time-zone keys at
    the start); None where that gives no depth, or the patterns have too many alternatives."""
    if deciding_digits(calling_code, length) is None:
        return None
    shapes: set[Shape] = set()
    try:
        for code in COUNTRY_CODE_TO_REGION_CODE[calling_code]:
            metadata = PhoneMetadata.metadata_for_region(code)
            if metadata.leading_digits:
                shapes |= start_shapes(metadata.leading_digits, length)
            for pattern in number_patterns(metadata):
                shapes |= whole_shapes(pattern, length)
    except (Unreadable, re.error, RecursionError):
        return None
    prefix = str(calling_code)
    shapes.update(tuple(1 << int(digit) for digit in key[len(prefix):]) for key in timezone.TIMEZONE_DATA
                  if key.startswith(prefix) and len(key) - len(prefix) <= length)  # (a longer key never matches)
    return PrefixDecider(shapes)


def deciding_prefix(calling_code: int, national: str) -> int | None:
    """How many leading digits of ``national`` (ASCII digits) decide its validity, region and time
    zones, for this number: at most :func:`deciding_digits`, often far fewer (None: not known)."""
    decider = prefix_decider(calling_code, len(national))
    return None if decider is None else decider.digits(national)


@functools.lru_cache(maxsize=1024)
def _strippable(calling_code: int) -> Callable[[str], Any] | None:
    """The main region's national prefix, matched at the start of a national number."""
    main = PhoneMetadata.metadata_for_region(COUNTRY_CODE_TO_REGION_CODE[calling_code][0])
    prefix = main.national_prefix_for_parsing if main is not None else None
    return re.compile(prefix).match if prefix else None


def split(digits: str) -> tuple[int, str] | None:
    """``(calling code, national number)`` of an E.164 number's digits, or None (calling codes
    are a prefix code: the first one to three digits that name one are it; none starts with 0,
    and ``int`` would read ``07…`` as 7)."""
    if digits[:1] == "0":
        return None
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
    """Answers kept per (calling code, national length, prefix of :func:`deciding_prefix` digits), at most
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
        bound = depth(*shape)
        strip = _strippable(code)
        if bound is None or (strip is not None and strip(national)):
            return None
        needed = deciding_prefix(code, national)
        return code, len(national), national[:bound if needed is None else needed]

    def kept_from(self, key: tuple[int, int, str], digits: str, number: Any) -> Answer:
        return number.region, number.timezones

    def answered(self, digits: str, kept: Answer) -> tuple[str, str, tuple[str, ...]]:
        assert kept is not None
        return "+" + digits, kept[0], kept[1]
