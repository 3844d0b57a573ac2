"""Numbers answered per deciding prefix: the depth read from the patterns, and answers equal to a full parse."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from callscreen import numbers, prefixes
from callscreen.numbers import _PREFIX_ANSWERS, InvalidNumber, normalize, parse_number


@pytest.mark.parametrize(("pattern", "length", "expected"), [
    (r"9\d{9}", 10, 1),
    (r"\d{10}", 10, 0),
    (r"9(?:1|23)\d{7,8}", 10, 3),  # the 3-digit branch with 7 more, or the 2-digit one with 8
    # phonenumbers' Russian mobile pattern: 930005… decides at the sixth digit
    (r"9(?:[0-24-9]\d{4}|3(?:0(?:0(?:05|[124579]\d|3[0-7]|6[0-49]|8[04-9])|[1-9]\d\d)|[1-9]\d{3}))\d{4}", 10, 6),
    (r"9(?:[0-24-9]\d{4}|3(?:0(?:05|[1-9]\d)|[1-9]\d\d))\d{4}", 10, 2),  # the "3" branch is 9 digits long
    (r"[0-9]{3}5\d{6}", 10, 4),  # a constraint after free digits still counts
    (r"[^5]\d{9}", 10, 1),
    (r"8\d{13}", 10, 0),  # never 10 digits long: nothing to decide
    (r"(?:7\d{2})+\d", 10, 7),  # three repeats, then one digit: the last 7 is the seventh
])
def test_the_deciding_depth_of_a_whole_match_is_read_from_the_pattern(pattern, length, expected) -> None:
    assert prefixes.whole_depth(pattern, length) == expected


def test_a_match_at_the_start_is_decided_by_its_longest_alternative() -> None:
    assert prefixes.start_depth("33|7", 10) == 2
    assert prefixes.start_depth("7(?:0[0-25-8]|47)", 10) == 3


def test_a_pattern_it_cannot_follow_gives_no_depth() -> None:
    with pytest.raises(prefixes.Unreadable):
        prefixes.whole_depth(r"(?=9)\d{10}", 10)
    with pytest.raises(prefixes.Unreadable):
        prefixes.whole_depth(r"(\d)\1\d{8}", 10)


def test_a_russian_mobile_is_decided_by_six_digits_and_nanp_is_left_to_its_table() -> None:
    assert prefixes.depth(7, 10) == 6
    assert prefixes.depth(1, 10) is None


def _answer(parse, raw: str):
    try:
        number = parse(raw)
    except InvalidNumber as exc:
        return type(exc).__name__, str(exc)
    return number


def test_every_calling_code_answers_by_prefix_exactly_as_a_full_parse() -> None:
    """For every geographic calling code and the national lengths around its own, numbers that
    share a deciding prefix (the first one parsed in full, the rest answered from it) get the
    full parse's answer: the same number, region and zones, or the same error."""
    rng = random.Random(1201)
    checked = {"from a prefix": 0, "valid": 0, "invalid": 0}
    for code, regions in sorted(COUNTRY_CODE_TO_REGION_CODE.items()):
        example = phonenumbers.example_number(regions[0])
        if code == 1 or example is None:
            continue
        own = len(str(example.national_number))
        for length in (own - 1, own, own + 1):
            depth = prefixes.depth(code, length)
            if depth is None or length < 2:
                continue
            for _prefix in range(6):
                head = str(example.national_number)[:1] + "".join(rng.choice("0123456789") for _ in range(depth - 1))
                for _suffix in range(4):
                    national = (head + "".join(rng.choice("0123456789") for _ in range(length)))[:length]
                    raw = f"+{code}{national}"
                    key = _PREFIX_ANSWERS.key(raw[1:])
                    checked["from a prefix"] += key is not None and _PREFIX_ANSWERS.get(key)[0]
                    expected = _answer(parse_number, raw)
                    assert _answer(normalize.__wrapped__, raw) == expected, raw
                    checked["invalid" if isinstance(expected, tuple) else "valid"] += 1
    assert checked["valid"] > 1000 and checked["invalid"] > 1000 and checked["from a prefix"] > 3000


def _examples(code: int) -> list[str]:
    """National numbers of the calling code's example numbers (fixed line and mobile, every region)."""
    found = []
    for region in COUNTRY_CODE_TO_REGION_CODE[code]:
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            nsn = phonenumbers.national_significant_number(example) if example else ""
            if nsn and nsn[0] != "0" and nsn not in found:
                found.append(nsn)
    return found


def _around_own_prefix(code: int, rng: random.Random) -> list[str]:
    """Numbers sharing the prefix each example is kept under (its own deciding prefix), with
    other digits at that prefix's last place: a prefix one digit short gives some of them
    another number's answer."""
    found = []
    for nsn in _examples(code):
        needed = prefixes.deciding_prefix(code, nsn)
        if not needed:
            continue
        for base in range(3):
            head = nsn[:needed - 1] if base == 0 else nsn[:1] + "".join(
                rng.choice("0123456789") for _ in range(needed - 2))
            for last in rng.sample("0123456789", 3):
                for _suffix in range(2):
                    tail = "".join(rng.choice("0123456789") for _ in range(len(nsn)))
                    found.append((head + last + tail)[:len(nsn)])
    return found


def _differing_codes(rng: random.Random) -> tuple[set[int], int]:
    differ, compared = set(), 0
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        if code == 1 or "001" in COUNTRY_CODE_TO_REGION_CODE[code]:
            continue
        for national in _around_own_prefix(code, rng):
            raw = f"+{code}{national}"
            compared += 1
            if _answer(normalize.__wrapped__, raw) != _answer(parse_number, raw):
                differ.add(code)
    return differ, compared


def test_numbers_kept_under_their_own_deciding_prefix_get_the_full_parse_answer() -> None:
    """A number is kept under the prefix that decides it (two digits for most Russian mobiles,
    six for 930 05…). Around every calling code's examples, numbers sharing such a prefix,
    or one digit apart at its last place, get the full parse's answer."""
    differ, compared = _differing_codes(random.Random(1202))
    assert differ == set() and compared > 5000


def test_the_comparison_finds_a_deciding_prefix_one_digit_short(monkeypatch) -> None:
    """The comparison above is sharp: with every deciding prefix one digit short, numbers of
    many calling codes get another number's answer."""
    exact = prefixes.PrefixDecider.digits
    monkeypatch.setattr(prefixes.PrefixDecider, "digits", lambda self, text: max(exact(self, text) - 1, 1))
    monkeypatch.setattr(numbers, "_PREFIX_ANSWERS", prefixes.PrefixAnswers())
    differ, _compared = _differing_codes(random.Random(1202))
    assert len(differ) > 40


def test_most_russian_mobiles_share_a_two_digit_prefix_and_930_05_reads_six() -> None:
    assert prefixes.deciding_digits(7, 10) == 6  # the most any of them needs
    assert prefixes.deciding_prefix(7, "9161234567") == prefixes.deciding_prefix(7, "9991234567") == 2
    assert prefixes.deciding_prefix(7, "9300051234") == 6


def test_a_number_whose_calling_code_starts_with_0_is_no_number_even_beside_a_kept_prefix() -> None:
    """``+07 916…`` is not ``+7 916…``: phonenumbers refuses it, so it must not be answered from
    the Russian mobiles kept before it (it was, as a valid number with the E.164 ``+07916…``)."""
    for raw in ("+79161234567", "+79161234568"):
        normalize.__wrapped__(raw)
    assert prefixes.split("079161234569") is None
    for raw, region in (("+079161234569", None), ("00 07 916 123 45 70", "RU"), ("+0 7 916 123-45-71", "RU")):
        with pytest.raises(InvalidNumber) as refused:
            normalize.__wrapped__(raw, region)
        assert _answer(lambda r, region=region: parse_number(r, region), raw) == (
            type(refused.value).__name__, str(refused.value))


def test_a_russian_mobile_after_the_first_of_its_prefix_is_not_parsed_again() -> None:
    from test_numbers import _phonenumbers_functions_called

    normalize.__wrapped__("+79161234567")
    assert "parse" not in _phonenumbers_functions_called(lambda: normalize.__wrapped__("+79161234598"))
    assert "parse" in _phonenumbers_functions_called(lambda: normalize.__wrapped__("7 916 123-45-99", "RU"))


def test_a_process_that_normalizes_one_number_never_reads_the_patterns() -> None:
    """The classic AGI script normalizes one number per process: reading a calling code's
    patterns (1-20 ms) only pays off from the second number of that code and length."""
    from tests_support import in_fresh_python

    printed = in_fresh_python(
        "from callscreen import prefixes\n"
        "from callscreen.numbers import normalize\n"
        "normalize('+79161234567')\n"
        "print(prefixes.depth.cache_info().currsize, prefixes.prefix_decider.cache_info().currsize)\n"
        "normalize('+79161234568')\n"
        "print(prefixes.depth.cache_info().currsize, prefixes.prefix_decider.cache_info().currsize)\n"
    )
    assert printed.split() == ["0", "0", "1", "1"]
