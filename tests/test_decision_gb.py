"""United Kingdom (PECR, UK GDPR): consent or legitimate interest, TPS/CTPS unless specific
consent, objection absolute for marketing, no Sunday or bank-holiday calls (house default)."""

from __future__ import annotations

import pytest
from decision_cases import (
    DAY,
    check,
    consent,
    ebr,
    facts,
    interest,
    local,
    objection,
    registry,
    screen,
    utc,
)

from callscreen.models import Reason, Result

LONDON = "Europe/London"
WEDNESDAY_NOON = local(LONDON, 2026, 11, 18, 12)


def screened(loaded_days_ago: int = 1, *, tps: bool = False, ctps: bool = False) -> tuple:
    loaded = WEDNESDAY_NOON - loaded_days_ago * DAY
    return (registry("gb-tps", listed=tps, loaded_at=loaded), registry("gb-ctps", listed=ctps, loaded_at=loaded))


@pytest.mark.parametrize(
    ("record", "registries", "reason"),
    [
        pytest.param(consent(), (), Reason.CONSENT, id="specific-consent-needs-no-tps-screening"),
        pytest.param(consent(), screened(tps=True), Reason.CONSENT, id="specific-consent-overrides-tps"),
        pytest.param(interest(), screened(), Reason.LEGITIMATE_INTEREST,
                     id="legitimate-interest-on-a-screened-number-allows"),
        pytest.param(interest(), screened(tps=True), Reason.NATIONAL_DNC,
                     id="legitimate-interest-does-not-exempt-from-tps"),
        pytest.param(interest(), screened(ctps=True), Reason.NATIONAL_DNC,
                     id="legitimate-interest-does-not-exempt-from-ctps"),
        pytest.param(interest(), (), Reason.REGISTRY_STALE, id="tps-never-loaded-is-stale"),
        pytest.param(interest(), screened(28), Reason.LEGITIMATE_INTEREST, id="tps-screened-28-days-ago-is-fresh"),
        pytest.param(interest(), screened(29), Reason.REGISTRY_STALE, id="tps-screened-29-days-ago-is-stale"),
        pytest.param(interest(), screened(tps=True)[:1], Reason.NATIONAL_DNC,
                     id="tps-listed-is-reported-before-missing-ctps"),
        pytest.param(interest(), screened()[:1], Reason.REGISTRY_STALE, id="ctps-missing-is-stale"),
        pytest.param(ebr("purchase", WEDNESDAY_NOON - 10 * DAY), screened(), Reason.NO_BASIS,
                     id="existing-relationship-is-no-basis-for-marketing"),
        pytest.param(consent(purposes=("appointment_reminders",)), screened(), Reason.PURPOSE_MISMATCH,
                     id="purpose-mismatch"),
        pytest.param(consent(withdrawn_at=WEDNESDAY_NOON), screened(), Reason.CONSENT_WITHDRAWN,
                     id="withdrawn-exactly-at-call-time"),
        pytest.param(consent(expires_at=WEDNESDAY_NOON - DAY), screened(), Reason.CONSENT_EXPIRED, id="expired"),
        pytest.param(consent(source="web_form"), (), Reason.CONSENT, id="web-form-needs-no-verification-here"),
    ],
)
def test_marketing_call_basis_and_tps(record, registries, reason) -> None:
    decision = screen("GB", WEDNESDAY_NOON, facts(record, registries=registries))
    assert decision.reason == reason
    assert decision.allowed is (reason in (Reason.CONSENT, Reason.LEGITIMATE_INTEREST))


def test_legitimate_interest_allow_records_its_basis() -> None:
    decision = screen("GB", WEDNESDAY_NOON, facts(interest(), registries=screened()))
    assert decision.basis is not None
    assert (decision.basis.kind.value, decision.basis.consent_id) == ("legitimate_interest", "li-1")
    assert check(decision, "registries").detail == "not on gb-tps, gb-ctps"


def test_non_marketing_calls_skip_tps() -> None:
    record = ebr("purchase", WEDNESDAY_NOON - 10 * DAY, purposes=("delivery",))
    decision = screen("GB", WEDNESDAY_NOON, facts(record), purpose="delivery", advertising=False)
    assert (decision.result, decision.reason) == (Result.ALLOW, Reason.EXISTING_RELATIONSHIP)


@pytest.mark.parametrize(
    ("scope", "advertising", "reason"),
    [
        pytest.param("direct_marketing", True, Reason.OBJECTION, id="marketing-objection-blocks-marketing"),
        pytest.param("all", True, Reason.OBJECTION, id="objection-to-all-blocks-marketing"),
        pytest.param("direct_marketing", False, Reason.LEGITIMATE_INTEREST,
                     id="marketing-objection-does-not-block-a-service-call"),
        pytest.param("all", False, Reason.OBJECTION, id="objection-to-all-blocks-a-service-call"),
    ],
)
def test_objection_is_absolute_for_marketing(scope, advertising, reason) -> None:
    purpose = "promotions" if advertising else "service"
    known = facts(interest(purposes=(purpose,)), objections=(objection(scope),), registries=screened())
    decision = screen("GB", WEDNESDAY_NOON, known, purpose=purpose, advertising=advertising)
    assert decision.reason == reason


def test_objection_beats_even_specific_consent() -> None:
    decision = screen("GB", WEDNESDAY_NOON, facts(consent(), objections=(objection(),)))
    assert decision.reason == Reason.OBJECTION


def test_automated_marketing_needs_consent_not_legitimate_interest() -> None:
    on_interest = screen("GB", WEDNESDAY_NOON, facts(interest(), registries=screened()), automatic=True)
    assert on_interest.reason == Reason.AUTOMATIC_DIALING_FORBIDDEN
    assert screen("GB", WEDNESDAY_NOON, facts(consent()), automatic=True).reason == Reason.CONSENT


@pytest.mark.parametrize(
    ("wall_clock", "allowed"),
    [
        pytest.param((2026, 11, 18, 7, 59), False, id="wednesday-07:59-closed"),
        pytest.param((2026, 11, 18, 8, 0), True, id="wednesday-08:00-open"),
        pytest.param((2026, 11, 18, 20, 59), True, id="wednesday-20:59-open"),
        pytest.param((2026, 11, 18, 21, 0), False, id="wednesday-21:00-closed"),
        pytest.param((2026, 11, 21, 8, 30), False, id="saturday-08:30-closed"),
        pytest.param((2026, 11, 21, 16, 59), True, id="saturday-16:59-open"),
        pytest.param((2026, 11, 21, 17, 0), False, id="saturday-17:00-closed"),
        pytest.param((2026, 11, 22, 12, 0), False, id="sunday-noon-closed"),
        pytest.param((2026, 12, 25, 12, 0), False, id="christmas-day-closed"),
        pytest.param((2026, 12, 26, 12, 0), False, id="boxing-day-closed"),
        pytest.param((2026, 3, 29, 8, 30), False, id="bst-starts-sunday-closed"),
        pytest.param((2026, 3, 30, 8, 0), True, id="first-bst-monday-08:00-open"),
        pytest.param((2026, 10, 26, 8, 0), True, id="first-gmt-monday-08:00-open"),
    ],
)
def test_calling_hours_in_london(wall_clock, allowed) -> None:
    decision = screen("GB", local(LONDON, *wall_clock), facts(consent()))
    assert decision.allowed is allowed
    assert decision.reason == (Reason.CONSENT if allowed else Reason.OUTSIDE_CALLING_HOURS)
    assert decision.timezone == LONDON


def test_london_08_00_bst_is_07_00_utc() -> None:
    assert screen("GB", utc(2026, 3, 30, 7, 0), facts(consent())).allowed
    assert not screen("GB", utc(2026, 3, 30, 6, 59), facts(consent())).allowed


def test_a_tps_listed_number_with_nothing_on_file_is_refused_for_the_listing() -> None:
    decision = screen("GB", WEDNESDAY_NOON, facts(registries=screened(tps=True)))
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.NATIONAL_DNC)
    assert not check(decision, "basis").passed


@pytest.mark.parametrize(
    ("wall_clock", "allowed"),
    [
        pytest.param((2026, 4, 3, 12, 0), False, id="good-friday-2026-is-a-bank-holiday"),
        pytest.param((2026, 4, 6, 12, 0), False, id="easter-monday-2026-is-a-bank-holiday"),
        pytest.param((2026, 5, 25, 12, 0), False, id="spring-bank-holiday-2026"),
        pytest.param((2026, 12, 28, 12, 0), False, id="boxing-day-observed-on-monday-28-december-2026"),
        pytest.param((2026, 4, 7, 12, 0), True, id="the-tuesday-after-easter-is-a-working-day"),
    ],
)
def test_bank_holidays_in_england_come_from_the_calendar(wall_clock, allowed) -> None:
    decision = screen("GB", local(LONDON, *wall_clock), facts(consent()))
    assert decision.allowed is allowed
