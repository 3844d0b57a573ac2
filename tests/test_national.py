"""Numbers in national form answered per raw deciding prefix: the same answer as a full parse,
in every region, and no full parse for the second number of a prefix."""

from __future__ import annotations

import random
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from callscreen import national, numbers
from callscreen.numbers import InvalidNumber, normalize, parse_number

SEPARATORS = (" ", "-", ".", "(", ")", "/", "\u00a0", "\u2013")


def _answer(parse, raw: str, region: str):
    try:
        return parse(raw, region)
    except InvalidNumber as exc:
        return type(exc).__name__, str(exc)


def _spell(digits: str, rng: random.Random) -> str:
    """The digits with a separator after some of them (one number in three stays bare)."""
    if rng.randrange(3) == 0:
        return digits
    return "".join(d + (rng.choice(SEPARATORS) if rng.randrange(4) == 0 else "") for d in digits)


def _forms(region: str) -> Iterator[str]:
    """Digits of the region's example numbers as dialled nationally: with the national prefix
    where the region writes one, without it, after the calling code written without ``+``, and
    one digit shorter and longer."""
    seen: set[str] = set()
    for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        written = "".join(c for c in phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL) if c.isdigit())
        nsn = phonenumbers.national_significant_number(example)
        for digits in (written, nsn, str(example.country_code) + nsn):  # the last: the calling code without +
            for form in (digits, digits[:-1], digits + "5"):
                if len(form) >= 2 and form not in seen:
                    seen.add(form)
                    yield form


def _numbers(region: str, rng: random.Random, depth=None, read=None) -> Iterator[str]:
    """Numbers sharing raw prefixes of :func:`national.depth` digits (or of what ``read(region,
    digits, end)`` gives for each form), several per prefix, and prefixes one digit apart (so
    that a depth one digit short answers some of them wrongly)."""
    depth = depth or national.depth
    found = national._region(region)
    for form in _forms(region):
        match = found.national_prefix.match(form) if found and found.national_prefix else None
        end = match.end() if match else -1
        needed = (read(region, form, end) if read else depth(region, len(form), end)) if found else None
        if not needed:
            yield form  # parsed in full: still the same answer
            continue
        kept = min(needed - 1, (match.end() if match else 0) + 1)  # the national prefix and one digit
        for base in range(3):
            head = form[:needed - 1] if base == 0 else form[:kept] + "".join(
                rng.choice("0123456789") for _ in range(needed - 1 - kept))
            for last in rng.sample("0123456789", 2):
                for _suffix in range(2):
                    yield head + last + "".join(rng.choice("0123456789") for _ in range(len(form) - needed))


def _around_own_prefix(region: str, rng: random.Random) -> Iterator[str]:
    """:func:`_numbers` around the raw prefix each example form is kept under: its own
    :func:`national.deciding_prefix`, often shorter than the depth."""
    return _numbers(region, rng, read=national.prefix_digits)


def _compare(regions, rng: random.Random, numbers_of=_numbers) -> dict[str, object]:
    checked: dict[str, object] = {"from a prefix": 0, "valid": 0, "invalid": 0, "regions": set(),
                                  "differ": []}
    for region in regions:
        for digits in numbers_of(region, rng):
            raw = _spell(digits, rng)
            key = numbers._NATIONAL_ANSWERS.key(digits, region)
            if key is not None and numbers._NATIONAL_ANSWERS.get(key)[0]:
                checked["from a prefix"] += 1
                checked["regions"].add(region)
            expected = _answer(parse_number, raw, region)
            if _answer(normalize.__wrapped__, raw, region) != expected:
                checked["differ"].append((raw, region))
            checked["invalid" if isinstance(expected, tuple) else "valid"] += 1
    return checked


WITH_A_NATIONAL_PREFIX = sorted(
    region for region in phonenumbers.SUPPORTED_REGIONS
    if phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix_for_parsing)


def test_every_region_answers_national_forms_exactly_as_a_full_parse() -> None:
    """In every region phonenumbers knows, numbers dialled nationally (with and without the
    national prefix, at three lengths, valid and invalid, with separators) that share a raw
    deciding prefix, the first parsed in full and the rest answered from it, get the full
    parse's answer: the same E.164, region and zones, or the same error."""
    checked = _compare(sorted(phonenumbers.SUPPORTED_REGIONS), random.Random(1201))
    assert checked["differ"] == []
    assert checked["valid"] > 5000 and checked["invalid"] > 5000 and checked["from a prefix"] > 8000
    # answered from a prefix in every region but those whose national prefix rewrites the
    # number (a transform rule) and +1 (the NANP table's)
    left_out = set(phonenumbers.SUPPORTED_REGIONS) - checked["regions"]
    assert all(_rewrites_or_nanp(region) for region in left_out) and len(left_out) < 40


def test_national_forms_kept_under_their_own_deciding_prefix_get_the_full_parse_answer() -> None:
    """A national-form number is kept under the raw prefix that decides it (``8 9`` and one
    digit for most Russian mobiles). Around every region's examples, numbers sharing such a
    prefix, or one digit apart at its last place, get the full parse's answer."""
    checked = _compare(sorted(phonenumbers.SUPPORTED_REGIONS), random.Random(1202), _around_own_prefix)
    assert checked["differ"] == []
    assert checked["valid"] > 3000 and checked["invalid"] > 3000 and len(checked["regions"]) > 150


def test_the_comparison_finds_a_deciding_prefix_one_digit_short(monkeypatch) -> None:
    """That comparison is sharp: with every prefix read one digit short, numbers of many regions
    get another number's answer."""
    from callscreen import prefixes

    exact = prefixes.PrefixDecider.digits
    monkeypatch.setattr(prefixes.PrefixDecider, "digits", lambda self, text: max(exact(self, text) - 1, 1))
    monkeypatch.setattr(numbers, "_NATIONAL_ANSWERS", national.NationalAnswers())
    monkeypatch.setattr(national, "_READ", {})
    checked = _compare(sorted(phonenumbers.SUPPORTED_REGIONS), random.Random(1202), _around_own_prefix)
    assert len({region for _raw, region in checked["differ"]}) > 40


def test_the_comparison_finds_a_calling_code_prefix_one_digit_short(monkeypatch) -> None:
    """The same for numbers written after the calling code without ``+``: with their prefix read
    one digit short, numbers of many regions get another number's answer."""
    exact = national.calling_code_prefix

    def short(region, digits, end):
        needed = exact(region, digits, end)
        return None if needed is None else max(needed - 1, 1)

    monkeypatch.setattr(national, "calling_code_prefix", short)
    monkeypatch.setattr(numbers, "_NATIONAL_ANSWERS", national.NationalAnswers())
    checked = _compare(sorted(phonenumbers.SUPPORTED_REGIONS), random.Random(1202), _around_own_prefix)
    assert len({region for _raw, region in checked["differ"]}) > 40


def test_a_russian_mobile_in_national_form_is_kept_under_its_first_three_digits() -> None:
    assert national.deciding_prefix("RU", "89161234567", 1) == national.deciding_prefix("RU", "89991234567", 1) == 3
    assert national.deciding_prefix("RU", "89300051234", 1) == 7  # 930 05… reads six digits past the 8


def _rewrites_or_nanp(region: str) -> bool:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return bool(metadata.national_prefix_transform_rule) or metadata.country_code == 1


# Numbers one digit apart at the last digit of their depth, with different answers.
AT_THE_DEPTH = [
    pytest.param("RU", "8 930 000-12-34", "8 930 005-12-34", id="russian-930005-is-a-mobile-930000-is-not"),
    pytest.param("BG", "099 012 3456", "099 612 3456", id="bulgarian-0990-0996"),
    pytest.param("DE", "0493 012345", "0493 112345", id="german-04930-04931"),
    pytest.param("FR", "08 36 00 12 34", "08 36 04 12 34", id="french-083600-083604"),
]


def _one_digit_short(monkeypatch) -> None:
    exact = national.depth
    monkeypatch.setattr(national, "depth", lambda *shape: (exact(*shape) or 1) - 1 or None)
    monkeypatch.setattr(numbers, "_NATIONAL_ANSWERS", national.NationalAnswers())


@pytest.mark.parametrize(("region", "first", "second"), AT_THE_DEPTH)
def test_the_last_digit_of_the_depth_decides(monkeypatch, region, first, second) -> None:
    """Two numbers differing only at the depth's last digit: answered right with the depth,
    the second one given the first one's answer with a depth one digit short."""
    assert _answer(parse_number, first, region) != _answer(parse_number, second, region)
    monkeypatch.setattr(numbers, "_NATIONAL_ANSWERS", national.NationalAnswers())
    for raw in (first, first, second):
        assert _answer(normalize.__wrapped__, raw, region) == _answer(parse_number, raw, region)
    _one_digit_short(monkeypatch)
    for raw in (first, first):
        assert _answer(normalize.__wrapped__, raw, region) == _answer(parse_number, raw, region)
    assert _answer(normalize.__wrapped__, second, region) != _answer(parse_number, second, region)


def test_the_comparison_finds_a_depth_one_digit_short(monkeypatch) -> None:
    """The comparison over every region is sharp: with every depth one digit short, numbers of
    many regions get another number's answer."""
    exact = national.depth
    _one_digit_short(monkeypatch)
    rng = random.Random(1201)
    differ: set[str] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for digits in _numbers(region, rng, depth=exact):
            if _answer(normalize.__wrapped__, digits, region) != _answer(parse_number, digits, region):
                differ.add(region)
    assert len(differ) > 40


@pytest.mark.parametrize(("first", "second", "region"), [
    pytest.param("8 999 123-45-67", "8 (999) 123-45-98", "RU", id="russian-mobile-with-trunk-8"),
    pytest.param("07911 123456", "07911 123499", "GB", id="uk-mobile"),
    pytest.param("0888 123 456", "0888 654 321", "BG", id="bulgarian-mobile"),
    pytest.param("030 1234567", "030 1239876", "DE", id="berlin"),
    pytest.param("0612345678", "06 12 34 98 76", "FR", id="french-mobile"),
    pytest.param("7 999 123-45-67", "7 (999) 765-43-21", "RU", id="russian-mobile-with-the-calling-code-without-plus"),
    pytest.param("44 7911 123456", "447911 123499", "GB", id="uk-mobile-with-the-calling-code-without-plus"),
])
def test_a_national_number_after_the_first_of_its_prefix_is_not_parsed_again(first, second, region) -> None:
    from test_numbers import _phonenumbers_functions_called

    for _ in range(2):  # the first number of a region and length is parsed without a key
        normalize.__wrapped__(first, region)
    key = numbers._NATIONAL_ANSWERS.key
    assert key(numbers._clean(first), region) == key(numbers._clean(second), region) is not None
    assert "parse" not in _phonenumbers_functions_called(lambda: normalize.__wrapped__(second, region))
    assert normalize.__wrapped__(second, region) == parse_number(second, region)


@pytest.mark.parametrize(("raw", "region"), [
    pytest.param("810 44 20 7946 0958", "RU", id="international-prefix-without-plus"),
    pytest.param("011 15 2345-6789", "AR", id="national-prefix-with-a-transform-rule"),
    pytest.param("0612345678", "ru", id="region-code-phonenumbers-does-not-accept"),
])
def test_numbers_whose_parse_may_read_more_are_parsed_in_full_every_time(raw, region) -> None:
    from test_numbers import _phonenumbers_functions_called

    for _ in range(3):
        assert "parse" in _phonenumbers_functions_called(lambda: _answer(normalize.__wrapped__, raw, region))
    assert _answer(normalize.__wrapped__, raw, region) == _answer(parse_number, raw, region)


def test_a_russian_number_with_trunk_8_is_decided_by_its_first_seven_digits() -> None:
    assert national.depth("RU", 11, 1) == 7  # the 8, then the six that decide a Russian mobile
    assert national.depth("GB", 11, 6) is None  # after "180020" every digit decides
    assert national.depth("AR", 11, 1) is None  # a transform rule


def test_an_invalid_number_stays_invalid_when_answered_from_its_prefix() -> None:
    for _ in range(2):
        _answer(normalize.__wrapped__, "8 999 000-00-00", "RU")
    with pytest.raises(numbers.NotAssigned):
        normalize.__wrapped__("8 222 123-45-67", "RU")  # no Russian number starts 222
    with pytest.raises(numbers.NotAssigned):
        normalize.__wrapped__("8 222 123-45-68", "RU")


def test_kept_answers_are_bounded_the_oldest_first_out() -> None:
    kept = national.NationalAnswers(limit=2)
    for prefix in ("8999123", "8999124", "8999125"):
        kept.keep(("RU", 11, 1, prefix), None)
    assert [kept.get(("RU", 11, 1, prefix))[0] for prefix in ("8999123", "8999124", "8999125")] == [
        False, True, True]


def test_equal_kept_answers_are_stored_once() -> None:
    kept = national.NationalAnswers()
    zones = ("Europe/Moscow", "Asia/Omsk")
    kept.keep(("RU", 11, 1, "8999123"), ("+7", 1, "RU", zones))
    kept.keep(("RU", 11, 1, "8999124"), ("+7", 1, "RU", tuple(list(zones))))
    assert kept.get(("RU", 11, 1, "8999123"))[1] is kept.get(("RU", 11, 1, "8999124"))[1]


def test_a_process_that_normalizes_one_national_number_never_reads_the_patterns() -> None:
    from tests_support import in_fresh_python

    printed = in_fresh_python(
        "from callscreen import national\n"
        "from callscreen.numbers import normalize\n"
        "from callscreen import prefixes\n"
        "normalize('89161234567', 'RU')\n"
        "print(national.depth.cache_info().currsize, prefixes.prefix_decider.cache_info().currsize)\n"
        "normalize('89161234568', 'RU')\n"
        "print(national.depth.cache_info().currsize, prefixes.prefix_decider.cache_info().currsize)\n"
    )
    # the second reads the patterns once: for the 11 digits as written and the 10 left after the 8
    assert printed.split() == ["0", "0", "1", "2"]
