"""NANP exchanges answered from compiled metadata: exactly what a full parse answers."""

import random

import pytest

from callscreen.nanp import NanpExchanges, deep_areas
from callscreen.numbers import InvalidNumber, parse_number


def normalized(nsn):
    try:
        number = parse_number("+1" + nsn)
    except InvalidNumber:
        return None
    return number.region, number.timezones, number.subdivision


@pytest.fixture(scope="module")
def exchanges():
    return NanpExchanges()


def test_every_area_code_gets_the_answer_of_a_full_parse(exchanges):
    rng = random.Random(20261201)
    cases = [f"{npa:03d}{rng.randrange(1000):03d}{rng.randrange(10000):04d}" for npa in range(1000) for _ in range(8)]
    kinds = {"valid": 0, "invalid": 0}
    for nsn in cases:
        expected = normalized(nsn)
        kinds["valid" if expected else "invalid"] += 1
        assert exchanges.exchange(nsn) == expected, nsn
    assert kinds["valid"] > 2000 and kinds["invalid"] > 2000  # both sides are exercised


@pytest.mark.parametrize("npa", [
    "212", "305", "907", "808", "671",  # US, Alaska, Hawaii, Guam
    "800", "833", "844", "855", "866", "877", "888", "900", "500", "521", "533", "544", "600",  # non-geographic
    "416", "604", "867", "204",  # Canada
    "242", "246", "264", "268", "284", "340", "345", "441", "473", "649", "658", "664", "670", "684", "721",
    "758", "767", "784", "787", "809", "829", "849", "868", "869", "876", "939",  # Caribbean and Pacific
    "211", "311", "555", "950", "999", "021", "123",  # not in service, N11, leading 0 and 1
])
def test_special_area_codes_get_the_answer_of_a_full_parse(exchanges, npa):
    rng = random.Random(npa)
    for exchange in (*range(0, 1000, 7), 211, 411, 555, 911, 958, 959, 976):
        nsn = f"{npa}{exchange:03d}{rng.randrange(10000):04d}"
        assert exchanges.exchange(nsn) == normalized(nsn), nsn


def test_the_answer_depends_only_on_area_code_and_exchange_outside_the_deep_areas(exchanges):
    rng = random.Random(7)
    areas = sorted(set(range(200, 1000)) - deep_areas())
    for _ in range(300):
        head = f"{rng.choice(areas)}{rng.randrange(1000):03d}"
        answers = {normalized(head + suffix) for suffix in ("0000", "9999", f"{rng.randrange(10000):04d}")}
        assert answers == {exchanges.exchange(head + "5555")}, head


def test_only_ten_digit_national_numbers_are_accepted(exchanges):
    for bad in ("212555010", "21255501000", "212555010x", "２１２５５５０１００"):
        with pytest.raises(ValueError):
            exchanges.exchange(bad)


def test_exchanges_whose_numbers_differ_in_the_seventh_digit_are_in_deep_areas():
    # phonenumbers 9.0: Barbados fixed lines 246521[0369]..., Jamaica 8766060...
    differing = [head for head in ("246521", "876606")
                 if len({normalized(head + suffix) for suffix in ("0000", "5555", "9999")}) > 1]
    assert differing  # the metadata still has such exchanges, or this test no longer proves anything
    assert {int(head[:3]) for head in differing} <= deep_areas()


def test_the_deep_areas_are_few_and_exclude_the_mainland():
    deep = deep_areas()
    assert 0 < len(deep) < 20
    assert not deep & {212, 305, 416, 604, 800, 907}


def test_answers_for_many_numbers_are_those_for_one_number_at_a_time(exchanges):
    from phonenumbers.geodata import GEOCODE_DATA

    # every area code, and every exchange of the area codes whose geocoder keys cover 10 or 100 exchanges
    ranged = sorted({int(key[1:4]) for key in GEOCODE_DATA if key.startswith("1") and len(key) in (5, 6)})
    assert ranged
    nsns = [f"{npa:03d}{exchange:03d}4321" for npa in range(1000) for exchange in range(0, 1000, 37)]
    nsns += [f"{npa:03d}{exchange:03d}1234" for npa in ranged for exchange in range(1000)]
    many = NanpExchanges()
    assert many.exchanges(nsns) == [exchanges.exchange(nsn) for nsn in nsns]


def test_descriptions_read_per_area_code_are_those_searched_per_number(exchanges):
    from phonenumbers.geodata import GEOCODE_DATA

    # nested keys (an area code + one or two digits, then longer keys inside with other names)
    ranged = sorted({key[:4] for key in GEOCODE_DATA if key.startswith("1") and len(key) in (5, 6)})
    many = NanpExchanges()
    for area in ranged:
        for exchange in range(1000):
            digits = f"{area}{exchange:03d}0000"
            assert many._area_description(digits) == exchanges._description(digits), digits


def test_the_prefix_maps_reach_no_further_than_the_exchange():
    # deep_areas reads only the patterns: time zones and descriptions keyed by a seventh national
    # digit would make answers per exchange wrong everywhere (a phonenumbers upgrade must fail here)
    from phonenumbers import timezone
    from phonenumbers.geodata import GEOCODE_DATA

    for data in (timezone.TIMEZONE_DATA, GEOCODE_DATA):
        assert max(len(key) for key in data if key.startswith("1")) <= 1 + 6
