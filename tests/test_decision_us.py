"""United States (TCPA, TSR, state rules): consent or EBR, the National DNC Registry, 8:00-21:00
at the called party's location with stricter state tables, and state attempt caps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from decision_cases import (
    BOOK,
    DAY,
    check,
    consent,
    ebr,
    facts,
    interest,
    local,
    number,
    opt_out,
    pack,
    registry,
    screen,
    suppression,
    utc,
    with_pack,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from callscreen.models import Contact, Facts, Proof, Reason, Result
from callscreen.numbers import PhoneNumber

NY = "America/New_York"
WEDNESDAY_NOON = local(NY, 2026, 11, 18, 12)
MIAMI = "+13055550100"      # area code 305: US-FL
DALLAS = "+12145550100"     # area code 214: US-TX
OKLAHOMA_CITY = "+14055550100"
BALTIMORE = "+14105550100"
FRESH = registry("us-dnc", loaded_at=WEDNESDAY_NOON - 2 * DAY)


# --- basis --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("captured_at", "relationship", "expected"),
    [
        # WEDNESDAY_NOON is 2026-11-18 17:00 UTC: 18 calendar months back is 2025-05-18 17:00 UTC.
        pytest.param(utc(2025, 5, 18, 17, 0, 1), "purchase", Reason.EXISTING_RELATIONSHIP,
                     id="purchase-18-months-less-a-second-ago-holds"),
        pytest.param(utc(2025, 5, 18, 17), "purchase", Reason.CONSENT_EXPIRED,
                     id="purchase-exactly-18-calendar-months-ago-has-lapsed"),
        pytest.param(WEDNESDAY_NOON - 545 * DAY, "purchase", Reason.EXISTING_RELATIONSHIP,
                     id="purchase-545-days-ago-is-inside-18-calendar-months"),
        pytest.param(utc(2026, 8, 18, 17, 0, 1), "inquiry", Reason.EXISTING_RELATIONSHIP,
                     id="inquiry-3-months-less-a-second-ago-holds"),
        pytest.param(utc(2026, 8, 18, 17), "inquiry", Reason.CONSENT_EXPIRED,
                     id="inquiry-exactly-3-calendar-months-ago-has-lapsed"),
        pytest.param(WEDNESDAY_NOON - 91 * DAY, "inquiry", Reason.EXISTING_RELATIONSHIP,
                     id="inquiry-91-days-ago-is-inside-3-calendar-months"),
        pytest.param(WEDNESDAY_NOON - 200 * DAY, "inquiry", Reason.CONSENT_EXPIRED,
                     id="inquiry-does-not-get-the-purchase-window"),
    ],
)
def test_existing_business_relationship_windows_are_calendar_months(captured_at, relationship, expected) -> None:
    decision = screen("US", WEDNESDAY_NOON, facts(ebr(relationship, captured_at), registries=(FRESH,)))
    assert decision.reason == expected
    assert decision.allowed is (expected is Reason.EXISTING_RELATIONSHIP)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        pytest.param(utc(2025, 11, 30, 9), Reason.CONSENT_EXPIRED, id="three-months-after-31-august-is-30-november"),
        pytest.param(utc(2025, 11, 29, 20), Reason.EXISTING_RELATIONSHIP, id="29-november-is-still-inside"),
    ],
)
def test_an_inquiry_window_ending_in_a_shorter_month_ends_on_its_last_day(at, expected) -> None:
    record = ebr("inquiry", utc(2025, 8, 31, 9))
    assert screen("US", at, facts(record)).reason == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        pytest.param(consent(), Reason.CONSENT, id="express-consent-allows"),
        pytest.param(consent(purposes=("appointment_reminders",)), Reason.PURPOSE_MISMATCH,
                     id="reminder-consent-is-not-promotion-consent"),
        pytest.param(consent(withdrawn_at=WEDNESDAY_NOON), Reason.CONSENT_WITHDRAWN, id="withdrawn-at-call-time"),
        pytest.param(consent(expires_at=WEDNESDAY_NOON - DAY), Reason.CONSENT_EXPIRED, id="expired"),
        pytest.param(consent(source="web_form"), Reason.CONSENT, id="web-form-needs-no-double-opt-in-here"),
        pytest.param(interest(), Reason.NO_BASIS, id="legitimate-interest-is-not-a-us-basis"),
    ],
)
def test_basis_for_a_telemarketing_call(record, reason) -> None:
    decision = screen("US", WEDNESDAY_NOON, facts(record, registries=(FRESH,)))
    assert decision.reason == reason


# --- the National DNC Registry ------------------------------------------------------------

@pytest.mark.parametrize(
    ("status", "passed", "detail"),
    [
        pytest.param(None, False, "us-dnc is not loaded", id="registry-never-loaded"),
        pytest.param(registry("us-dnc", loaded_at=None), False, "us-dnc is not loaded",
                     id="registry-without-load-time"),
        pytest.param(registry("us-dnc", loaded_at=WEDNESDAY_NOON - 32 * DAY), False, "loaded 32 days ago",
                     id="loaded-32-days-ago-is-stale"),
        pytest.param(registry("us-dnc", loaded_at=WEDNESDAY_NOON - 31 * DAY), True, "not on us-dnc",
                     id="loaded-exactly-31-days-ago-is-fresh-enough"),
        pytest.param(registry("us-dnc", loaded_at=WEDNESDAY_NOON - 30 * DAY), True, "not on us-dnc",
                     id="loaded-30-days-ago-is-fresh"),
        pytest.param(registry("us-dnc", listed=True, loaded_at=WEDNESDAY_NOON - DAY), False, "listed on us-dnc",
                     id="listed-number"),
    ],
)
def test_national_dnc_is_checked_when_nothing_exempts_the_call(status, passed, detail) -> None:
    """Every US advertising basis (consent, EBR) exempts from the registry; without a basis the
    answer is ``national_dnc`` for a listed number (it tells more than "no basis"), else
    ``no_basis``, and the registry verdict is in the trace."""
    known = Facts(registries=(status,) if status else ())
    decision = screen("US", WEDNESDAY_NOON, known)
    listed = status is not None and status.listed and status.loaded_at is not None
    expected = Reason.NATIONAL_DNC if listed else Reason.NO_BASIS
    assert (decision.result, decision.reason) == (Result.BLOCK, expected)
    registries = check(decision, "registries")
    assert registries.passed is passed
    assert detail in registries.detail


@pytest.mark.parametrize(
    "record",
    [pytest.param(consent(), id="consent"), pytest.param(ebr("purchase", WEDNESDAY_NOON - 100 * DAY), id="ebr")],
)
@pytest.mark.parametrize(
    "status",
    [
        pytest.param(registry("us-dnc", listed=True, loaded_at=WEDNESDAY_NOON - DAY), id="listed"),
        pytest.param(registry("us-dnc", loaded_at=WEDNESDAY_NOON - 90 * DAY), id="stale"),
        pytest.param(None, id="not-loaded"),
    ],
)
def test_consent_or_ebr_exempts_the_call_from_the_national_dnc(record, status) -> None:
    known = facts(record, registries=(status,) if status else ())
    decision = screen("US", WEDNESDAY_NOON, known)
    assert decision.allowed
    assert "exempts the call from us-dnc" in check(decision, "registries").detail


def test_registries_are_skipped_for_non_advertising_calls() -> None:
    record = consent(purposes=("appointment_reminders",))
    stale = registry("us-dnc", listed=True, loaded_at=None)
    decision = screen("US", WEDNESDAY_NOON, facts(record, registries=(stale,)), purpose="appointment_reminders",
                      advertising=False)
    assert decision.allowed
    assert check(decision, "registries").detail == "no do-not-call registry applies"


def test_withdrawn_consent_does_not_exempt_the_number_from_the_registry_in_the_trace() -> None:
    known = facts(consent(withdrawn_at=WEDNESDAY_NOON - DAY),
                  registries=(registry("us-dnc", listed=True, loaded_at=WEDNESDAY_NOON - DAY),))
    decision = screen("US", WEDNESDAY_NOON, known)
    assert decision.reason == Reason.CONSENT_WITHDRAWN
    assert not check(decision, "registries").passed


# --- automatic dialing ---------------------------------------------------------------------

def test_autodialed_telemarketing_with_prior_express_consent_is_allowed() -> None:
    decision = screen("US", WEDNESDAY_NOON, facts(consent()), automatic=True)
    assert (decision.result, decision.reason) == (Result.ALLOW, Reason.CONSENT)


def test_autodialed_telemarketing_on_an_ebr_alone_is_forbidden() -> None:
    decision = screen("US", WEDNESDAY_NOON, facts(ebr("purchase", WEDNESDAY_NOON - 10 * DAY)), automatic=True)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.AUTOMATIC_DIALING_FORBIDDEN)
    assert check(decision, "basis").passed


def test_autodialing_with_a_withdrawn_consent_is_forbidden() -> None:
    decision = screen("US", WEDNESDAY_NOON, facts(consent(withdrawn_at=WEDNESDAY_NOON - DAY)), automatic=True)
    assert decision.reason == Reason.AUTOMATIC_DIALING_FORBIDDEN


# --- calling hours at the called party's location ------------------------------------------

@pytest.mark.parametrize(
    ("raw", "wall_clock", "allowed"),
    [
        pytest.param("+12125550100", (2026, 3, 8, 8, 30), True, id="ny-spring-forward-sunday-08:30-edt-open"),
        pytest.param("+12125550100", (2026, 3, 8, 7, 59), False, id="ny-spring-forward-07:59-edt-closed"),
        pytest.param("+12125550100", (2026, 3, 8, 20, 59), True, id="ny-spring-forward-20:59-open"),
        pytest.param("+12125550100", (2026, 11, 1, 8, 30), True, id="ny-fall-back-sunday-08:30-est-open"),
        pytest.param("+12125550100", (2026, 11, 1, 7, 59), False, id="ny-fall-back-07:59-est-closed"),
        pytest.param("+12125550100", (2026, 11, 18, 20, 59), True, id="ny-20:59-open"),
        pytest.param("+12125550100", (2026, 11, 18, 21, 0), False, id="ny-21:00-closed"),
        pytest.param(MIAMI, (2026, 11, 18, 19, 59), True, id="florida-19:59-open"),
        pytest.param(MIAMI, (2026, 11, 18, 20, 0), False, id="florida-20:00-closed"),
        pytest.param(OKLAHOMA_CITY, (2026, 11, 18, 20, 0), False, id="oklahoma-20:00-closed"),
        pytest.param(BALTIMORE, (2026, 11, 18, 20, 0), False, id="maryland-20:00-closed"),
        pytest.param(DALLAS, (2026, 11, 22, 11, 59), False, id="texas-sunday-11:59-closed"),
        pytest.param(DALLAS, (2026, 11, 22, 12, 0), True, id="texas-sunday-noon-opens"),
        pytest.param(DALLAS, (2026, 11, 23, 8, 59), False, id="texas-monday-08:59-closed"),
        pytest.param(DALLAS, (2026, 11, 23, 9, 0), True, id="texas-monday-09:00-opens"),
        pytest.param(DALLAS, (2026, 11, 23, 20, 59), True, id="texas-monday-20:59-open"),
    ],
)
def test_calling_hours_in_the_callees_local_time(raw, wall_clock, allowed) -> None:
    zone = number(raw).timezones[0]
    decision = screen("US", local(zone, *wall_clock), facts(consent()), raw=raw)
    assert decision.allowed is allowed, check(decision, "calling_hours")
    assert decision.reason == (Reason.CONSENT if allowed else Reason.OUTSIDE_CALLING_HOURS)
    assert decision.timezone == zone


def test_dst_is_applied_not_a_fixed_offset() -> None:
    """12:30 UTC on the spring-forward Sunday is 08:30 EDT (open), not 07:30 EST; 12:30 UTC on the
    fall-back Sunday is 07:30 EST (closed), not 08:30 EDT."""
    assert screen("US", utc(2026, 3, 8, 12, 30), facts(consent())).allowed
    assert screen("US", utc(2026, 11, 1, 12, 30), facts(consent())).reason == Reason.OUTSIDE_CALLING_HOURS
    assert screen("US", utc(2026, 11, 1, 13, 30), facts(consent())).allowed


def test_the_contacts_known_zone_wins_over_the_numbers_zone() -> None:
    """A New York number whose owner lives in Los Angeles: 10:00 in New York is 07:00 there."""
    at = local(NY, 2026, 11, 18, 10)
    moved = facts(consent(), contact=Contact(timezone="America/Los_Angeles"))
    decision = screen("US", at, moved)
    assert (decision.reason, decision.timezone) == (Reason.OUTSIDE_CALLING_HOURS, "America/Los_Angeles")
    assert screen("US", at, facts(consent())).allowed


def test_the_contacts_known_state_wins_over_the_area_code() -> None:
    at = local(NY, 2026, 11, 18, 20, 30)
    in_florida = facts(consent(), contact=Contact(subdivision="US-FL"))
    assert screen("US", at, in_florida).reason == Reason.OUTSIDE_CALLING_HOURS
    assert screen("US", at, facts(consent())).allowed


UNKNOWN_STATE = PhoneNumber("+12125550100", "US", ("America/New_York",), None)


@pytest.mark.parametrize(
    ("wall_clock", "allowed"),
    [
        pytest.param((2026, 11, 18, 20, 30), False, id="weekday-20:30-closed-as-in-florida"),
        pytest.param((2026, 11, 22, 11, 0), False, id="sunday-11:00-closed-as-in-texas"),
        pytest.param((2026, 11, 23, 8, 30), False, id="monday-08:30-closed-as-in-texas"),
        pytest.param((2026, 11, 23, 9, 0), True, id="monday-09:00-open-everywhere"),
        pytest.param((2026, 11, 23, 19, 59), True, id="monday-19:59-open-everywhere"),
    ],
)
def test_unknown_state_applies_the_strictest_table(wall_clock, allowed) -> None:
    decision = screen("US", local(NY, *wall_clock), facts(consent()), phone=UNKNOWN_STATE)
    assert decision.allowed is allowed


# --- attempt caps ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("raw", "ages_hours", "allowed"),
    [
        pytest.param(MIAMI, (1, 5, 10), False, id="florida-three-calls-in-24h-block-the-fourth"),
        pytest.param(MIAMI, (1, 5), True, id="florida-two-calls-allow-a-third"),
        pytest.param(MIAMI, (1, 5, 24), True, id="florida-call-exactly-24h-ago-no-longer-counts"),
        pytest.param(MIAMI, (1, 5, 30, 40, 50), True, id="florida-older-calls-do-not-count"),
        pytest.param(OKLAHOMA_CITY, (1, 2, 3), False, id="oklahoma-three-in-24h"),
        pytest.param(BALTIMORE, (1, 2, 3), False, id="maryland-three-in-24h"),
        pytest.param("+12125550100", (1, 2, 3, 4, 5, 6), True, id="new-york-has-no-cap"),
    ],
)
def test_state_attempt_caps(raw, ages_hours, allowed) -> None:
    zone = number(raw).timezones[0]
    at = local(zone, 2026, 11, 18, 15)
    attempts = tuple(at - timedelta(hours=h) for h in sorted(ages_hours, reverse=True))
    decision = screen("US", at, facts(consent(), attempts=attempts), raw=raw)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason == Reason.ATTEMPT_CAP
        assert check(decision, "attempts").detail == "3 calls in the last 24 h; cap 3"


def newest_read(attempts: tuple, at, limit: int) -> Facts:
    """What the store reads: the newest ``limit`` attempts of the 8-day history up to ``at``."""
    kept = sorted(t for t in attempts if at - 8 * DAY <= t <= at)
    return facts(consent(), attempts=tuple(kept[-limit:] if limit else ()), attempts_limit=limit)


@settings(max_examples=300, deadline=None)
@given(
    ages_minutes=st.lists(st.integers(min_value=-600, max_value=3000), max_size=12),
    phone=st.sampled_from((MIAMI, OKLAHOMA_CITY, DALLAS, None)),
)
def test_the_newest_attempts_the_store_reads_decide_every_cap_as_the_whole_history_does(ages_minutes, phone) -> None:
    at = local(NY, 2026, 11, 18, 15)
    attempts = tuple(sorted(at - timedelta(minutes=m) for m in ages_minutes))
    kwargs = {"raw": phone} if phone else {"phone": UNKNOWN_STATE}
    limit = BOOK.get("US").attempt_read_limit
    whole = screen("US", at, facts(consent(), attempts=attempts), **kwargs)
    bounded = screen("US", at, newest_read(attempts, at, limit), **kwargs)
    assert (bounded.result, bounded.reason) == (whole.result, whole.reason)
    assert [(c.name, c.passed) for c in bounded.checks] == [(c.name, c.passed) for c in whole.checks]


def test_a_capped_read_says_at_least_when_the_window_may_hold_more() -> None:
    at = local(NY, 2026, 11, 18, 15)
    attempts = tuple(at - timedelta(minutes=m) for m in range(500, 0, -1))
    limit = BOOK.get("US").attempt_read_limit
    assert limit == 4  # the largest US cap (3) plus one
    decision = screen("US", at, newest_read(attempts, at, limit), raw=MIAMI)
    assert decision.reason == Reason.ATTEMPT_CAP
    assert check(decision, "attempts").detail == "at least 4 calls in the last 24 h; cap 3"
    exact = screen("US", at, newest_read(attempts[-3:], at, limit), raw=MIAMI)
    assert check(exact, "attempts").detail == "3 calls in the last 24 h; cap 3"


def test_unknown_state_applies_every_state_cap() -> None:
    at = local(NY, 2026, 11, 18, 15)
    attempts = tuple(at - timedelta(hours=h) for h in (3, 2, 1))
    assert screen("US", at, facts(consent(), attempts=attempts), phone=UNKNOWN_STATE).reason == Reason.ATTEMPT_CAP


def test_calling_hours_come_before_the_attempt_cap() -> None:
    at = local(NY, 2026, 11, 18, 20, 30)
    attempts = tuple(at - timedelta(hours=h) for h in (3, 2, 1))
    decision = screen("US", at, facts(consent(), attempts=attempts), raw=MIAMI)
    assert decision.reason == Reason.OUTSIDE_CALLING_HOURS
    assert not check(decision, "attempts").passed


def test_opt_out_and_complaint_block_a_consented_call() -> None:
    assert screen("US", WEDNESDAY_NOON, facts(consent(), opt_outs=(opt_out(None),))).reason == Reason.OPTED_OUT
    assert screen("US", WEDNESDAY_NOON, facts(consent(), suppressions=(suppression(),))).reason == (
        Reason.COMPLAINT_SUPPRESSED)


# --- reassigned numbers, proof of written consent, state lists ----------------------------------

@pytest.mark.parametrize(
    ("captured_at", "disconnected_at", "expected"),
    [
        pytest.param(WEDNESDAY_NOON - 100 * DAY, WEDNESDAY_NOON - 30 * DAY, Reason.CONSENT_REASSIGNED,
                     id="consent-given-before-the-number-was-disconnected-is-void"),
        pytest.param(WEDNESDAY_NOON - 10 * DAY, WEDNESDAY_NOON - 30 * DAY, Reason.CONSENT,
                     id="consent-given-by-the-new-subscriber-holds"),
        pytest.param(WEDNESDAY_NOON - 100 * DAY, WEDNESDAY_NOON + DAY, Reason.CONSENT,
                     id="a-disconnection-after-the-call-time-does-not-count-yet"),
        pytest.param(WEDNESDAY_NOON - 100 * DAY, None, Reason.CONSENT, id="never-disconnected"),
    ],
)
def test_a_consent_older_than_the_last_permanent_disconnection_is_void(captured_at, disconnected_at,
                                                                         expected) -> None:
    known = facts(consent(captured_at=captured_at), disconnected_at=disconnected_at)
    decision = screen("US", WEDNESDAY_NOON, known)
    assert decision.reason == expected
    if expected is Reason.CONSENT_REASSIGNED:
        assert "may belong to someone else" in check(decision, "basis").detail


def test_a_reassigned_number_voids_an_ebr_too() -> None:
    known = facts(ebr("purchase", WEDNESDAY_NOON - 100 * DAY), disconnected_at=WEDNESDAY_NOON - 30 * DAY)
    assert screen("US", WEDNESDAY_NOON, known).reason == Reason.CONSENT_REASSIGNED


def test_a_web_form_consent_must_keep_the_disclosure_the_person_agreed_to() -> None:
    bare = consent(source="web_form", proof=Proof(ip="192.0.2.10"))
    decision = screen("US", WEDNESDAY_NOON, facts(bare))
    assert decision.reason == Reason.CONSENT_UNVERIFIED
    assert "needs form_text for web_form" in check(decision, "basis").detail
    assert screen("US", WEDNESDAY_NOON, facts(consent(source="web_form"))).allowed


def test_a_double_opt_in_claim_without_its_confirmation_time_is_unverified() -> None:
    decision = screen("US", WEDNESDAY_NOON, facts(consent(verified_at=None)))
    assert decision.reason == Reason.CONSENT_UNVERIFIED


TEXAS_LIST = with_pack(pack("US"), registry_exempt_bases=(), subdivision_registries={"US-TX": ("us-tx-dnc",)})


@pytest.mark.parametrize(
    ("phone", "statuses", "expected"),
    [
        pytest.param(DALLAS, (FRESH, registry("us-tx-dnc", listed=True, loaded_at=WEDNESDAY_NOON - DAY)),
                     Reason.NATIONAL_DNC, id="a-texas-number-on-the-texas-list"),
        pytest.param(DALLAS, (FRESH,), Reason.REGISTRY_STALE, id="the-texas-list-not-loaded-for-a-texas-number"),
        pytest.param("+12125550100", (FRESH,), Reason.CONSENT, id="a-new-york-number-needs-no-texas-list"),
    ],
)
def test_a_state_list_applies_to_numbers_in_its_state(phone, statuses, expected) -> None:
    decision = screen("US", local("America/Chicago", 2026, 11, 18, 12), facts(consent(), registries=statuses),
                      raw=phone, policy=TEXAS_LIST)
    assert decision.reason == expected
