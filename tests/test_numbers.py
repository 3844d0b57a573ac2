"""Number normalization: every human spelling of a valid number becomes the same E.164 text;
anything else is :class:`InvalidNumber`, never another exception. Masking and US subdivisions."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from callscreen.numbers import MAX_INPUT_LENGTH, InvalidNumber, PhoneNumber, mask, normalize, parse_number


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        pytest.param("+79991234567", None, "+79991234567", id="e164-as-is"),
        pytest.param("8 (999) 123-45-67", "RU", "+79991234567", id="russian-trunk-8-with-brackets"),
        pytest.param("89991234567", "RU", "+79991234567", id="russian-trunk-8-bare"),
        pytest.param("+7.999.123.45.67", None, "+79991234567", id="dots"),
        pytest.param("+7 999 123-45-67", "US", "+79991234567", id="plus-wins-over-the-default-region"),
        pytest.param("+1 (212) 555-0100", None, "+12125550100", id="us-brackets"),
        pytest.param("(212) 555-0100", "US", "+12125550100", id="us-national"),
        pytest.param("+1\u00a0212\u2013555\u20130100", None, "+12125550100", id="no-break-space-and-en-dash"),
        pytest.param("1-212-555-0100", "US", "+12125550100", id="us-with-trunk-1"),
        pytest.param("011 44 20 7946 0958", "US", "+442079460958", id="us-international-prefix-011"),
        pytest.param("00 44 20 7946 0958", None, "+442079460958", id="international-prefix-00"),
        pytest.param("00 44 20 7946 0958", "RU", "+442079460958", id="international-prefix-00-from-russia"),
        pytest.param("020 7946 0958", "GB", "+442079460958", id="uk-national"),
        pytest.param("+44 (0)20 7946 0958", None, "+442079460958", id="uk-bracketed-trunk-zero"),
        pytest.param("  +359 88 812 3456\t", None, "+359888123456", id="surrounding-whitespace"),
        pytest.param("030/123456", "DE", "+4930123456", id="german-slash"),
    ],
)
def test_human_spellings_normalize_to_e164(raw, region, e164) -> None:
    assert normalize(raw, region).e164 == e164


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        pytest.param("8 (999) 123-45-67", None, id="national-form-without-a-default-region"),
        pytest.param("", "RU", id="empty"),
        pytest.param("   ", "RU", id="blank"),
        pytest.param("+", None, id="lone-plus"),
        pytest.param("+7 999 123", None, id="too-short"),
        pytest.param("+7 999 123 45 67 89", None, id="too-long"),
        pytest.param("+1 212 555 010O", None, id="letter-o-for-zero"),
        pytest.param("+1 800 FLOWERS", None, id="vanity-letters"),
        pytest.param("+79991234567 ext 5", None, id="extension"),
        pytest.param("7+9991234567", None, id="plus-inside"),
        pytest.param("+999 1234 5678", None, id="unassigned-country-code"),
        pytest.param("+1 555 555 5555", None, id="us-number-that-cannot-exist"),
        pytest.param("1" * (MAX_INPUT_LENGTH + 1), "RU", id="longer-than-the-input-limit"),
        pytest.param("'; DROP TABLE numbers;--", "RU", id="injection"),
        pytest.param("89991234567", "ZZ", id="unknown-default-region"),
    ],
)
def test_non_numbers_raise_invalid_number(raw, region) -> None:
    with pytest.raises(InvalidNumber):
        normalize(raw, region)


@pytest.mark.parametrize("value", [None, 79991234567, b"+79991234567"], ids=["none", "integer", "bytes"])
def test_non_text_input_raises_invalid_number(value) -> None:
    with pytest.raises(InvalidNumber):
        normalize(value, "RU")  # type: ignore[arg-type]


def test_normalized_number_carries_region_zones_and_subdivision() -> None:
    miami = normalize("(305) 555-0100", "US")
    assert miami == PhoneNumber("+13055550100", "US", ("America/New_York",), "US-FL")
    assert miami.national_digits == "3055550100"
    mobile = normalize("+79991234567")
    assert mobile.region == "RU" and mobile.subdivision is None
    # phonenumbers lists 16 zones for +7 9xx; the Kazakh ones are dropped and Bucharest is
    # corrected to Kaliningrad, leaving the 14 Russian zones from UTC+2 to UTC+12.
    assert len(mobile.timezones) == 14
    assert {"Europe/Moscow", "Asia/Kamchatka", "Europe/Kaliningrad"} <= set(mobile.timezones)
    assert not {"Asia/Almaty", "Europe/Bucharest"} & set(mobile.timezones)
    assert "Etc/Unknown" not in mobile.timezones


@pytest.mark.parametrize(
    ("raw", "subdivision"),
    [
        pytest.param("+1 305 555 0100", "US-FL", id="305-miami-florida"),
        pytest.param("+1 212 555 0100", "US-NY", id="212-manhattan-new-york"),
        pytest.param("+1 214 555 0100", "US-TX", id="214-dallas-texas"),
        pytest.param("+1 405 555 0100", "US-OK", id="405-oklahoma-city"),
        pytest.param("+1 410 555 0100", "US-MD", id="410-baltimore-maryland"),
        pytest.param("+1 415 555 0100", "US-CA", id="415-san-francisco-california"),
        pytest.param("+1 201 555 0123", "US-NJ", id="201-new-jersey"),
        pytest.param("+1 800 555 0100", None, id="toll-free-has-no-state"),
        pytest.param("+1 416 555 0100", None, id="toronto-is-not-a-us-state"),
        pytest.param("+44 20 7946 0958", None, id="outside-the-us"),
    ],
)
def test_us_area_code_gives_the_state(raw, subdivision) -> None:
    assert normalize(raw).subdivision == subdivision


# --- property tests ---------------------------------------------------------------------------

def _examples() -> list[tuple[str, phonenumbers.PhoneNumber]]:
    found = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None and phonenumbers.is_valid_number(number):
                found.append((region, number))
    return found


EXAMPLES = _examples()
FORMATS = (PhoneNumberFormat.NATIONAL, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164,
           PhoneNumberFormat.RFC3966)
SEPARATORS = (" ", "-", ".", "(", ")", "/", "\u00a0", "\u2013", "  ", " - ")


@st.composite
def valid_numbers(draw) -> tuple[str, phonenumbers.PhoneNumber]:
    """An example number of some region, with its last digits varied while it stays valid."""
    region, base = draw(st.sampled_from(EXAMPLES))
    national = str(base.national_number)
    tail = draw(st.text("0123456789", min_size=1, max_size=min(4, len(national) - 1)))
    varied = phonenumbers.PhoneNumber(country_code=base.country_code,
                                      national_number=int(national[: -len(tail)] + tail),
                                      italian_leading_zero=base.italian_leading_zero,
                                      number_of_leading_zeros=base.number_of_leading_zeros)
    return region, varied if phonenumbers.is_valid_number(varied) else base


def _respell(text: str, data: st.DataObject) -> str:
    """Replace every separator with random ones and scatter a few more between characters."""
    out = []
    for char in text:
        if char in " -":
            out.append(data.draw(st.sampled_from(SEPARATORS)))
            continue
        out.append(char)
        if char.isdigit() and data.draw(st.integers(0, 5)) == 0:
            out.append(data.draw(st.sampled_from(SEPARATORS)))
    spelled = "".join(out)
    return spelled if len(spelled) <= MAX_INPUT_LENGTH else text


@settings(max_examples=400, deadline=None)
@given(number=valid_numbers(), layout=st.sampled_from(FORMATS), data=st.data())
@example(number=("RU", phonenumbers.parse("+79991234567")), layout=PhoneNumberFormat.NATIONAL, data=None)
def test_any_spelling_of_a_valid_number_normalizes_to_its_e164(number, layout, data) -> None:
    region, parsed = number
    expected = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    spelled = phonenumbers.format_number(parsed, layout).removeprefix("tel:")
    if data is not None:
        spelled = _respell(spelled, data)
    result = normalize(spelled, region)
    assert result.e164 == expected
    assert result.region == phonenumbers.region_code_for_number(parsed)


@settings(max_examples=200, deadline=None)
@given(number=valid_numbers(), data=st.data())
def test_international_prefix_00_is_the_plus_sign(number, data) -> None:
    _, parsed = number
    e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    spelled = _respell("00 " + phonenumbers.format_number(parsed, PhoneNumberFormat.INTERNATIONAL)[1:], data)
    assert normalize(spelled, data.draw(st.sampled_from((None, "RU", "GB", "DE")))).e164 == e164


REGIONS = st.sampled_from((None, "RU", "US", "GB", "DE", "BG", "ZZ", "", "ru"))


@settings(max_examples=500, deadline=None)
@given(raw=st.text(max_size=MAX_INPUT_LENGTH + 8) | st.text("0123456789+-() .\u00a0x*#", max_size=30),
       region=REGIONS)
def test_arbitrary_text_either_normalizes_to_a_valid_number_or_raises_invalid_number(raw, region) -> None:
    try:
        result = normalize(raw, region)
    except InvalidNumber as exc:
        assert str(exc)
        return
    parsed = phonenumbers.parse(result.e164)
    assert phonenumbers.is_valid_number(parsed)
    assert result.e164 == phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def test_normalized_numbers_are_fixed_points() -> None:
    for _, parsed in EXAMPLES:
        e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
        assert normalize(e164).e164 == e164
        assert normalize(normalize(e164).e164, "US").e164 == e164


# --- masking -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        pytest.param("+79991234567", "+7 999 ***-**-67", id="russian-mobile"),
        pytest.param("+74951234567", "+7 495 ***-**-67", id="moscow-landline"),
        pytest.param("+442079460958", "+44 20 **** **58", id="london"),
        pytest.param("+359888123456", "+359 88 *** **56", id="bulgarian-mobile"),
        pytest.param("+12125550100", "+1 ***-***-**00", id="us-area-code-is-hidden-too"),
    ],
)
def test_mask_keeps_the_country_code_and_last_two_digits(e164, masked) -> None:
    assert mask(e164) == masked


@pytest.mark.parametrize("text", ["", "garbage", "+", "+999"], ids=["empty", "text", "plus", "bad-code"])
def test_mask_of_something_that_is_not_a_number_hides_everything(text) -> None:
    assert mask(text) == "***"


@settings(max_examples=300, deadline=None)
@given(number=valid_numbers())
def test_mask_shows_only_the_country_code_first_group_and_last_two_digits(number) -> None:
    _, parsed = number
    e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
    national = phonenumbers.national_significant_number(parsed)
    masked = mask(e164)
    prefix = f"+{parsed.country_code} "
    assert masked.startswith(prefix)
    body = masked[len(prefix):]
    slots = "".join(c for c in body if c.isdigit() or c == "*")
    assert len(slots) == len(national)
    assert slots[-2:] == national[-2:]
    visible = [i for i, c in enumerate(slots) if c.isdigit()]
    first_group = len(body.split(" ", 1)[0]) if " " in body else 0
    # Every shown digit is in its true place, and only the first group and the last two show.
    assert all(slots[i] == national[i] for i in visible)
    assert all(i < first_group or i >= len(national) - 2 for i in visible)


def test_mask_hides_at_least_half_of_the_national_digits() -> None:
    masked = mask("+376712345")  # Andorra: shown as '+376 712 *45', one of six digits hidden
    assert masked.count("*") >= 3


def test_kaliningrad_numbers_are_in_the_kaliningrad_zone() -> None:
    assert normalize("+7 4012 12-34-56").timezones == ("Europe/Kaliningrad",)
    assert "Europe/Bucharest" not in normalize("+79991234567").timezones


def _answer(parse, raw: str, region: str | None):
    try:
        return parse(raw, region)
    except InvalidNumber as exc:
        return str(exc)


def test_a_nanp_number_normalizes_exactly_as_the_full_parse_in_every_spelling_of_every_area_code() -> None:
    """``+1`` and ten digits (and, for the US default region, ten digits with or without the
    leading 1) come from the compiled exchange table: the same number, region, zones, state and
    error message as phonenumbers' full parse, over every area code, valid or not."""
    import random

    rng = random.Random(1201)
    checked = {"valid": 0, "invalid": 0}
    for npa in range(200, 1000):
        nsn = f"{npa}{rng.randrange(1000):03d}{rng.randrange(10000):04d}"
        spellings = [(f"+1{nsn}", None), (f"+1 ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}", "RU"), (nsn, "US"),
                     (f"1{nsn}", "US"), (f"1-{nsn[:3]}-{nsn[3:6]}-{nsn[6:]}", "US"), (nsn, "CA")]
        for raw, region in spellings:
            expected = _answer(parse_number, raw, region)
            assert _answer(normalize.__wrapped__, raw, region) == expected, (raw, region)
            checked["valid" if isinstance(expected, PhoneNumber) else "invalid"] += 1
    assert checked["valid"] > 2000 and checked["invalid"] > 1000  # both sides are exercised


def _phonenumbers_functions_called(action) -> set[str]:
    import sys

    called: set[str] = set()

    def watch(frame, event, _arg) -> None:
        if event == "call" and "phonenumbers" in frame.f_code.co_filename:
            called.add(frame.f_code.co_name)

    sys.setprofile(watch)
    try:
        action()
    finally:
        sys.setprofile(None)
    return called


def test_a_nanp_number_is_answered_from_the_exchange_table_not_a_full_parse() -> None:
    normalize.__wrapped__("+12125550100")  # the table is built on first use
    assert "parse" not in _phonenumbers_functions_called(lambda: normalize.__wrapped__("+1 305 555 0123"))
    assert "parse" not in _phonenumbers_functions_called(lambda: normalize.__wrapped__("(305) 555-0124", "US"))
    assert "parse" in _phonenumbers_functions_called(lambda: normalize.__wrapped__("810 44 20 7946 0958", "RU"))
    assert "parse" in _phonenumbers_functions_called(lambda: normalize.__wrapped__("305 555 0125", "CA"))


def test_prepare_loads_a_nanp_regions_data_before_any_number_is_normalized() -> None:
    """What a first US number would load inside its decision budget (the geocoder's data, the
    exchange table: ~0.6 s), ``prepare`` loads up front; a region it does not know is skipped."""
    from tests_support import in_fresh_python

    printed = in_fresh_python(
        "import sys\n"
        "from callscreen.nanp import NanpExchanges\n"
        "from callscreen.numbers import prepare\n"
        "built = lambda: NanpExchanges.shared.__func__.cache_info().currsize\n"
        "assert 'phonenumbers.geodata' not in sys.modules and built() == 0\n"
        "print(prepare(['RU', 'US', 'XX', 'US']))\n"
        "assert 'phonenumbers.geodata' in sys.modules and built() == 1\n"
    )
    assert printed.strip() == "['RU', 'US']"
