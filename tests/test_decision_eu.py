"""EU baseline (GDPR, ePrivacy) and Bulgaria, which extends it with its public holidays."""

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
    opt_out,
    screen,
    utc,
)

from callscreen.models import Reason, Result

BERLIN = "Europe/Berlin"
SOFIA = "Europe/Sofia"
EU_NOON = local(BERLIN, 2026, 11, 18, 12)
BG_NOON = local(SOFIA, 2026, 11, 18, 12)
NOON = {"EU": EU_NOON, "BG": BG_NOON}
BOTH = pytest.mark.parametrize("jurisdiction", ["EU", "BG"])


@BOTH
@pytest.mark.parametrize(
    ("record", "reason"),
    [
        pytest.param(consent(), Reason.CONSENT, id="consent-allows"),
        pytest.param(interest(), Reason.LEGITIMATE_INTEREST, id="legitimate-interest-allows-marketing"),
        pytest.param(ebr("purchase", EU_NOON - 10 * DAY), Reason.NO_BASIS,
                     id="existing-relationship-alone-is-no-basis-for-marketing"),
        pytest.param(consent(purposes=("appointment_reminders",)), Reason.PURPOSE_MISMATCH, id="purpose-mismatch"),
        pytest.param(consent(withdrawn_at=EU_NOON - DAY), Reason.CONSENT_WITHDRAWN, id="withdrawn"),
        pytest.param(consent(expires_at=EU_NOON - DAY), Reason.CONSENT_EXPIRED, id="expired"),
        pytest.param(consent(captured_at=EU_NOON + DAY), Reason.NO_BASIS, id="captured-in-the-future"),
        pytest.param(consent(source="crm_import"), Reason.CONSENT, id="crm-row-needs-no-verification-here"),
    ],
)
def test_marketing_basis(jurisdiction, record, reason) -> None:
    decision = screen(jurisdiction, NOON[jurisdiction], facts(record))
    assert decision.reason == reason
    assert decision.allowed is (reason in (Reason.CONSENT, Reason.LEGITIMATE_INTEREST))
    assert decision.policy_pack == jurisdiction.lower()


@BOTH
def test_consent_is_preferred_over_legitimate_interest_as_the_recorded_basis(jurisdiction) -> None:
    decision = screen(jurisdiction, NOON[jurisdiction], facts(interest(), consent()))
    assert decision.reason == Reason.CONSENT
    assert decision.basis is not None and decision.basis.consent_id == "c-1"


@BOTH
@pytest.mark.parametrize(
    ("days_ago", "relationship", "expected"),
    [
        pytest.param(729, "purchase", Reason.EXISTING_RELATIONSHIP, id="customer-729-days-ago-holds"),
        pytest.param(730, "purchase", Reason.CONSENT_EXPIRED, id="customer-730-days-ago-lapsed"),
        pytest.param(89, "inquiry", Reason.EXISTING_RELATIONSHIP, id="inquiry-89-days-ago-holds"),
        pytest.param(90, "inquiry", Reason.CONSENT_EXPIRED, id="inquiry-90-days-ago-lapsed"),
    ],
)
def test_existing_relationship_for_service_calls(jurisdiction, days_ago, relationship, expected) -> None:
    at = NOON[jurisdiction]
    record = ebr(relationship, at - days_ago * DAY, purposes=("service",))
    decision = screen(jurisdiction, at, facts(record), purpose="service", advertising=False)
    assert decision.reason == expected


@BOTH
@pytest.mark.parametrize(
    ("scope", "advertising", "blocked"),
    [
        pytest.param("direct_marketing", True, True, id="objection-to-marketing-blocks-marketing"),
        pytest.param("profiling", True, True, id="any-objection-blocks-marketing"),
        pytest.param("direct_marketing", False, False, id="objection-to-marketing-spares-service-calls"),
        pytest.param("all", False, True, id="objection-to-all-blocks-service-calls"),
    ],
)
def test_objection_is_absolute_for_direct_marketing(jurisdiction, scope, advertising, blocked) -> None:
    purpose = "promotions" if advertising else "service"
    known = facts(consent(purposes=(purpose,)), objections=(objection(scope),))
    decision = screen(jurisdiction, NOON[jurisdiction], known, purpose=purpose, advertising=advertising)
    assert decision.allowed is not blocked
    if blocked:
        assert decision.reason == Reason.OBJECTION


@BOTH
def test_objection_overrides_consent_and_legitimate_interest(jurisdiction) -> None:
    decision = screen(jurisdiction, NOON[jurisdiction], facts(consent(), interest(), objections=(objection(),)))
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.OBJECTION)
    assert "objection (direct_marketing)" in check(decision, "objection").detail


@BOTH
def test_automated_marketing_calls_need_consent(jurisdiction) -> None:
    at = NOON[jurisdiction]
    assert screen(jurisdiction, at, facts(interest()), automatic=True).reason == Reason.AUTOMATIC_DIALING_FORBIDDEN
    assert screen(jurisdiction, at, facts(consent()), automatic=True).reason == Reason.CONSENT


@BOTH
def test_no_registry_applies(jurisdiction) -> None:
    decision = screen(jurisdiction, NOON[jurisdiction], facts(interest()))
    assert check(decision, "registries").detail == "no do-not-call registry applies"


@BOTH
def test_company_wide_opt_out_blocks_and_other_campaign_opt_out_does_not(jurisdiction) -> None:
    at = NOON[jurisdiction]
    assert screen(jurisdiction, at, facts(consent(), opt_outs=(opt_out(None),))).reason == Reason.OPTED_OUT
    assert screen(jurisdiction, at, facts(consent(), opt_outs=(opt_out("other"),))).allowed


@pytest.mark.parametrize(
    ("wall_clock", "allowed"),
    [
        pytest.param((2026, 11, 18, 8, 59), False, id="wednesday-08:59-closed"),
        pytest.param((2026, 11, 18, 9, 0), True, id="wednesday-09:00-open"),
        pytest.param((2026, 11, 18, 19, 59), True, id="wednesday-19:59-open"),
        pytest.param((2026, 11, 18, 20, 0), False, id="wednesday-20:00-closed"),
        pytest.param((2026, 11, 21, 10, 0), True, id="saturday-10:00-open"),
        pytest.param((2026, 11, 21, 14, 0), False, id="saturday-14:00-closed"),
        pytest.param((2026, 11, 22, 12, 0), False, id="sunday-closed"),
        pytest.param((2026, 12, 25, 12, 0), False, id="christmas-closed"),
        pytest.param((2027, 1, 1, 12, 0), False, id="new-year-closed"),
        pytest.param((2026, 3, 3, 12, 0), True, id="bulgarian-liberation-day-is-a-normal-day-in-berlin"),
    ],
)
def test_eu_baseline_hours_in_berlin(wall_clock, allowed) -> None:
    decision = screen("EU", local(BERLIN, *wall_clock), facts(consent()))
    assert decision.allowed is allowed
    assert decision.timezone == BERLIN


@pytest.mark.parametrize(
    ("wall_clock", "allowed"),
    [
        pytest.param((2026, 3, 3, 12, 0), False, id="liberation-day-mar-3-closed"),
        pytest.param((2026, 3, 4, 12, 0), True, id="the-day-after-liberation-day-open"),
        pytest.param((2026, 5, 6, 12, 0), False, id="st-georges-day-closed"),
        pytest.param((2026, 5, 24, 12, 0), False, id="day-of-bulgarian-culture-closed"),
        pytest.param((2026, 9, 22, 12, 0), False, id="independence-day-closed"),
        pytest.param((2026, 12, 24, 12, 0), False, id="christmas-eve-closed"),
        pytest.param((2026, 12, 26, 12, 0), False, id="second-day-of-christmas-closed"),
        pytest.param((2026, 11, 18, 19, 59), True, id="wednesday-19:59-open-as-in-the-eu-baseline"),
        pytest.param((2026, 11, 22, 12, 0), False, id="sunday-closed-as-in-the-eu-baseline"),
    ],
)
def test_bulgarian_holidays_in_sofia(wall_clock, allowed) -> None:
    decision = screen("BG", local(SOFIA, *wall_clock), facts(consent()))
    assert decision.allowed is allowed
    assert decision.reason == (Reason.CONSENT if allowed else Reason.OUTSIDE_CALLING_HOURS)
    assert decision.timezone == SOFIA
    if not allowed and wall_clock[:3] != (2026, 11, 22):
        assert "(holiday): no calls" in check(decision, "calling_hours").detail


def test_cest_starts_and_the_window_follows_the_wall_clock() -> None:
    """09:00 on Monday 30 March 2026 in Berlin is 07:00 UTC (CEST), not 08:00 UTC."""
    assert screen("EU", utc(2026, 3, 30, 7, 0), facts(consent())).allowed
    assert not screen("EU", utc(2026, 3, 30, 6, 59), facts(consent())).allowed
    # The last Sunday of October falls back; Monday 09:00 CET is 08:00 UTC.
    assert not screen("EU", utc(2026, 10, 26, 7, 59), facts(consent())).allowed
    assert screen("EU", utc(2026, 10, 26, 8, 0), facts(consent())).allowed
