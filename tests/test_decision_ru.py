"""Russia (38-FZ art. 18, 152-FZ): prior consent only for advertising, no robo-dialing,
verified consents for web forms and CRM rows, 230-FZ-style hours in the callee's local time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from decision_cases import (
    CAPTURED,
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
    suppression,
    utc,
)

from callscreen.models import Contact, Proof, Reason, Result

MSK = "Europe/Moscow"
WEDNESDAY_NOON = local(MSK, 2026, 11, 18, 12)
MOBILE = "+79991234567"


def test_prior_consent_allows_an_advertising_call_and_records_its_basis() -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(consent()))
    assert (decision.result, decision.reason) == (Result.ALLOW, Reason.CONSENT)
    assert decision.basis is not None
    assert (decision.basis.consent_id, decision.basis.source, decision.basis.purpose) == (
        "c-1", "sms_double_opt_in", "promotions")
    assert decision.basis.form_version == "v3"
    assert (decision.policy_pack, decision.timezone) == ("ru", MSK)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        pytest.param(consent(purposes=("appointment_reminders",)), Reason.PURPOSE_MISMATCH,
                     id="consent-to-reminders-does-not-cover-promotions"),
        pytest.param(consent(withdrawn_at=WEDNESDAY_NOON - DAY), Reason.CONSENT_WITHDRAWN,
                     id="withdrawn-the-day-before"),
        pytest.param(consent(withdrawn_at=WEDNESDAY_NOON), Reason.CONSENT_WITHDRAWN,
                     id="withdrawn-exactly-at-the-call-time"),
        pytest.param(consent(expires_at=WEDNESDAY_NOON - timedelta(seconds=1)), Reason.CONSENT_EXPIRED,
                     id="expired-a-second-before"),
        pytest.param(consent(expires_at=WEDNESDAY_NOON), Reason.CONSENT_EXPIRED,
                     id="expires-exactly-at-the-call-time"),
        pytest.param(consent(captured_at=WEDNESDAY_NOON + timedelta(minutes=1)), Reason.NO_BASIS,
                     id="consent-captured-after-the-call-is-no-basis"),
        pytest.param(consent(source="web_form"), Reason.CONSENT_UNVERIFIED,
                     id="web-form-without-double-opt-in-is-unverified"),
        pytest.param(consent(source="crm_import"), Reason.CONSENT_UNVERIFIED,
                     id="crm-import-without-confirmation-is-unverified"),
        pytest.param(consent(source="web_form", verified_at=WEDNESDAY_NOON + DAY), Reason.CONSENT_UNVERIFIED,
                     id="web-form-verified-only-after-the-call-is-unverified"),
        pytest.param(ebr("purchase", CAPTURED), Reason.NO_BASIS,
                     id="existing-relationship-is-no-basis-for-advertising"),
        pytest.param(interest(), Reason.NO_BASIS, id="legitimate-interest-is-no-basis-for-advertising"),
        pytest.param(consent(channel="sms"), Reason.NO_BASIS, id="sms-consent-is-no-basis-for-a-voice-call"),
    ],
)
def test_advertising_call_is_blocked_when_the_basis_does_not_hold(record, reason) -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(record))
    assert (decision.result, decision.reason) == (Result.BLOCK, reason)
    assert not check(decision, "basis").passed


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(consent(source="sms_double_opt_in"), id="sms-double-opt-in"),
        pytest.param(consent(source="paper"), id="paper-form"),
        pytest.param(consent(source="confirmation_call", proof=Proof(recording_id="rec-42")),
                     id="confirmation-call-with-its-recording"),
        pytest.param(consent(source="web_form", verified_at=CAPTURED + timedelta(minutes=5)),
                     id="web-form-confirmed-by-double-opt-in"),
        pytest.param(consent(source="crm_import", verified_at=CAPTURED + DAY), id="crm-row-confirmed"),
        pytest.param(consent(withdrawn_at=WEDNESDAY_NOON + timedelta(seconds=1)),
                     id="withdrawal-after-the-call-time-does-not-count-yet"),
        pytest.param(consent(expires_at=WEDNESDAY_NOON + timedelta(seconds=1)), id="expires-just-after"),
        pytest.param(consent(purposes=("*",)), id="consent-to-every-purpose"),
    ],
)
def test_consent_allows_the_call(record) -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(record))
    assert (decision.result, decision.reason) == (Result.ALLOW, Reason.CONSENT)


@pytest.mark.parametrize(
    ("captured_days_ago", "relationship", "expected"),
    [
        pytest.param(364, "purchase", Reason.EXISTING_RELATIONSHIP, id="contract-purchase-364-days-ago-holds"),
        pytest.param(365, "purchase", Reason.CONSENT_EXPIRED, id="purchase-365-days-ago-has-lapsed"),
        pytest.param(29, "inquiry", Reason.EXISTING_RELATIONSHIP, id="inquiry-29-days-ago-holds"),
        pytest.param(30, "inquiry", Reason.CONSENT_EXPIRED, id="inquiry-30-days-ago-has-lapsed"),
    ],
)
def test_existing_relationship_is_a_basis_for_non_advertising_calls(captured_days_ago, relationship,
                                                                     expected) -> None:
    record = ebr(relationship, WEDNESDAY_NOON - captured_days_ago * DAY, purposes=("appointment_reminders",))
    decision = screen("RU", WEDNESDAY_NOON, facts(record), purpose="appointment_reminders", advertising=False)
    assert decision.reason == expected
    assert decision.allowed is (expected is Reason.EXISTING_RELATIONSHIP)


def test_legitimate_interest_is_no_basis_even_for_non_advertising_calls() -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(interest(purposes=("service",))),
                      purpose="service", advertising=False)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.NO_BASIS)


def test_automatic_dialing_of_advertising_is_forbidden_even_with_consent() -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(consent()), automatic=True)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.AUTOMATIC_DIALING_FORBIDDEN)
    assert check(decision, "basis").passed
    assert decision.basis is not None and decision.basis.consent_id == "c-1"


def test_automatic_dialing_of_a_non_advertising_reminder_is_allowed() -> None:
    record = consent(purposes=("appointment_reminders",))
    decision = screen("RU", WEDNESDAY_NOON, facts(record), purpose="appointment_reminders",
                      advertising=False, automatic=True)
    assert (decision.result, decision.reason) == (Result.ALLOW, Reason.CONSENT)


@pytest.mark.parametrize(
    ("known", "reason"),
    [
        pytest.param(facts(consent(), opt_outs=(opt_out(None),)), Reason.OPTED_OUT, id="company-wide-opt-out"),
        pytest.param(facts(consent(), opt_outs=(opt_out("spring-promo"),)), Reason.OPTED_OUT,
                     id="opt-out-of-this-campaign"),
        pytest.param(facts(consent(), objections=(objection(),)), Reason.OBJECTION, id="objection-to-marketing"),
        pytest.param(facts(consent(), suppressions=(suppression(),)), Reason.COMPLAINT_SUPPRESSED,
                     id="complaint-suppression"),
    ],
)
def test_refusals_block_a_consented_call(known, reason) -> None:
    assert screen("RU", WEDNESDAY_NOON, known).reason == reason


def test_opt_out_of_another_campaign_does_not_block() -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(consent(), opt_outs=(opt_out("autumn-sale"),)))
    assert decision.allowed


# --- calling hours: 08:00-22:00 on working days, 09:00-20:00 on weekends and public holidays ---

@pytest.mark.parametrize(
    ("wall_clock", "allowed"),
    [
        pytest.param((2026, 11, 18, 7, 59), False, id="wednesday-07:59-too-early"),
        pytest.param((2026, 11, 18, 8, 0), True, id="wednesday-08:00-opens"),
        pytest.param((2026, 11, 18, 21, 59), True, id="wednesday-21:59-still-open"),
        pytest.param((2026, 11, 18, 22, 0), False, id="wednesday-22:00-closed"),
        pytest.param((2026, 11, 21, 8, 30), False, id="saturday-08:30-too-early"),
        pytest.param((2026, 11, 21, 9, 0), True, id="saturday-09:00-opens"),
        pytest.param((2026, 11, 22, 19, 59), True, id="sunday-19:59-open"),
        pytest.param((2026, 11, 22, 20, 0), False, id="sunday-20:00-closed"),
        pytest.param((2027, 1, 7, 8, 30), False, id="christmas-jan-7-a-thursday-08:30-holiday-hours"),
        pytest.param((2027, 1, 7, 9, 0), True, id="christmas-jan-7-09:00-opens"),
        pytest.param((2027, 1, 7, 20, 0), False, id="christmas-jan-7-20:00-closed"),
        pytest.param((2026, 11, 4, 21, 0), False, id="unity-day-nov-4-21:00-closed"),
        pytest.param((2026, 11, 5, 21, 0), True, id="the-working-day-after-unity-day-21:00-open"),
        pytest.param((2026, 1, 9, 8, 30), False, id="jan-9-2026-a-decreed-day-off-08:30-holiday-hours"),
        pytest.param((2026, 12, 31, 21, 0), False, id="dec-31-2026-a-decreed-day-off-21:00-closed"),
        pytest.param((2026, 3, 9, 8, 30), False, id="march-9-2026-the-observed-womens-day-holiday-hours"),
        pytest.param((2026, 3, 10, 8, 30), True, id="march-10-2026-a-working-day-again"),
    ],
)
def test_calling_hours_in_moscow(wall_clock, allowed) -> None:
    decision = screen("RU", local(MSK, *wall_clock), facts(consent()))
    assert decision.allowed is allowed
    assert decision.reason == (Reason.CONSENT if allowed else Reason.OUTSIDE_CALLING_HOURS)
    assert decision.timezone == MSK


def test_hours_follow_the_callee_zone_not_the_campaign_zone() -> None:
    """A Vladivostok landline at 09:00 Moscow time is at 16:00 local: fine. At 15:00 Moscow it is 22:00."""
    vladivostok = "+74232123456"
    at_nine_moscow = local(MSK, 2026, 11, 18, 9)
    assert screen("RU", at_nine_moscow, facts(consent()), raw=vladivostok).timezone == "Asia/Vladivostok"
    assert screen("RU", at_nine_moscow, facts(consent()), raw=vladivostok).allowed
    late = screen("RU", local(MSK, 2026, 11, 18, 15), facts(consent()), raw=vladivostok)
    assert late.reason == Reason.OUTSIDE_CALLING_HOURS


def _mobile_decisions(day: tuple[int, int, int], contact: Contact | None = None) -> dict[str, bool]:
    """Allowed or not for every quarter hour of a UTC day."""
    out = {}
    for minutes in range(0, 24 * 60, 15):
        at = utc(*day) + timedelta(minutes=minutes)
        out[f"{at:%H:%M}"] = screen("RU", at, facts(consent(), contact=contact), raw=MOBILE).allowed
    return out


def test_russian_mobile_without_a_contact_zone_must_be_inside_the_window_in_all_its_zones() -> None:
    """The strictest rule: a +7 9xx mobile may be anywhere from Kaliningrad (UTC+2) to Kamchatka
    (UTC+12), so every one of its candidate zones must be inside the window at once. That leaves
    only 06:00-10:00 UTC on a working day and 07:00-08:00 UTC on a weekend; every other hour of
    the day — including 13:00 Moscow time — is blocked ``outside_calling_hours``."""
    working_day = _mobile_decisions((2026, 11, 18))
    assert {t for t, ok in working_day.items() if ok} == {
        f"{h:02d}:{m:02d}" for h in range(6, 10) for m in (0, 15, 30, 45)}
    saturday = _mobile_decisions((2026, 11, 21))
    assert {t for t, ok in saturday.items() if ok} == {"07:00", "07:15", "07:30", "07:45"}


def test_russian_mobile_at_one_pm_moscow_is_blocked_and_names_the_zone_outside_the_window() -> None:
    decision = screen("RU", local(MSK, 2026, 11, 18, 13), facts(consent()), raw=MOBILE)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.OUTSIDE_CALLING_HOURS)
    assert decision.timezone in ("Asia/Anadyr", "Asia/Kamchatka")  # 22:00 there
    assert "record the contact's time zone" in check(decision, "calling_hours").detail


def test_russian_mobile_with_a_known_moscow_contact_zone_is_allowed_at_one_pm() -> None:
    decision = screen("RU", local(MSK, 2026, 11, 18, 13), facts(consent(), contact=Contact(timezone=MSK)),
                      raw=MOBILE)
    assert (decision.result, decision.reason, decision.timezone) == (Result.ALLOW, Reason.CONSENT, MSK)


def test_russian_mobile_with_a_known_contact_zone_is_open_for_the_whole_local_window() -> None:
    allowed = _mobile_decisions((2026, 11, 18), Contact(timezone=MSK))
    # 08:00-22:00 Moscow is 05:00-19:00 UTC.
    assert {t for t, ok in allowed.items() if ok} == {
        f"{h:02d}:{m:02d}" for h in range(5, 19) for m in (0, 15, 30, 45)}


def test_no_attempt_cap_applies_in_russia() -> None:
    at = WEDNESDAY_NOON
    known = facts(consent(), attempts=tuple(at - timedelta(minutes=m) for m in range(1, 11)))
    decision = screen("RU", at, known)
    assert decision.allowed
    assert check(decision, "attempts").detail == "no attempt cap applies"


def test_kaliningrad_landline_is_not_called_at_seven_in_the_morning_in_summer() -> None:
    """05:00 UTC on a July Wednesday is 07:00 in Kaliningrad: before the 08:00 opening."""
    decision = screen("RU", utc(2026, 7, 15, 5, 0), facts(consent()), raw="+74012123456")
    assert decision.reason == Reason.OUTSIDE_CALLING_HOURS


def test_russian_mobile_without_a_contact_zone_is_not_called_before_eight_in_kaliningrad() -> None:
    decision = screen("RU", utc(2026, 7, 15, 5, 30), facts(consent()), raw=MOBILE)
    assert decision.reason == Reason.OUTSIDE_CALLING_HOURS


@pytest.mark.parametrize(
    ("record", "missing"),
    [
        pytest.param(consent(source="sms_double_opt_in", verified_at=None), "verified_at",
                     id="sms-double-opt-in-claimed-without-its-confirmation-time"),
        pytest.param(consent(source="email_double_opt_in", verified_at=None), "verified_at",
                     id="email-double-opt-in-claimed-without-its-confirmation-time"),
        pytest.param(consent(source="confirmation_call"), "recording_id",
                     id="confirmation-call-without-its-recording"),
    ],
)
def test_a_consent_without_the_proof_its_source_needs_is_unverified(record, missing) -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(record))
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.CONSENT_UNVERIFIED)
    assert f"needs {missing} for {record.source}" in check(decision, "basis").detail


def test_a_disconnection_does_not_void_consent_where_the_pack_has_no_reassignment_rule() -> None:
    decision = screen("RU", WEDNESDAY_NOON, facts(consent(), disconnected_at=WEDNESDAY_NOON - DAY))
    assert decision.allowed


def test_an_allowed_russian_mobile_records_the_russian_zones_only() -> None:
    """phonenumbers lists Kazakh zones (and Bucharest for Kaliningrad) for +7 9xx; the decision's
    evidence names the eleven-hour span of Russian zones it checked, and nothing outside Russia."""
    decision = screen("RU", utc(2026, 11, 18, 7), facts(consent()), raw=MOBILE)
    assert decision.allowed
    assert set(decision.timezone.split(",")) == {
        "Europe/Kaliningrad", "Europe/Moscow", "Europe/Samara", "Asia/Yekaterinburg", "Asia/Omsk",
        "Asia/Novosibirsk", "Asia/Krasnoyarsk", "Asia/Irkutsk", "Asia/Yakutsk", "Asia/Vladivostok",
        "Asia/Sakhalin", "Asia/Magadan", "Asia/Kamchatka", "Asia/Anadyr"}
