"""What every jurisdiction shares: the gate checks, the policy order of the rules, the trace,
which basis is chosen, the recorded time zone, and the ALLOW-needs-a-basis invariant."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from decision_cases import (
    BOOK,
    CHECK_ORDER,
    DAY,
    HOME,
    UTC,
    campaign,
    check,
    consent,
    ebr,
    facts,
    interest,
    local,
    number,
    objection,
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

from callscreen.decision import ALLOW_REASON, ScreeningRequest, decide
from callscreen.models import (
    CONSENT_SOURCES,
    Campaign,
    Consent,
    Contact,
    Facts,
    LegalBasis,
    Objection,
    OptOut,
    Reason,
    RegistryStatus,
    Result,
    Suppression,
)
from callscreen.numbers import PhoneNumber
from callscreen.policy import AttemptCap

LONDON_WEDNESDAY = local("Europe/London", 2026, 11, 18, 12)
LONDON_SUNDAY = local("Europe/London", 2026, 11, 22, 12)


# --- gates before any rule ------------------------------------------------------------------

def everything_wrong(at: datetime) -> Facts:
    return facts(consent(withdrawn_at=at - DAY), suppressions=(suppression(),), opt_outs=(opt_out(None),),
                 objections=(objection("all"),), attempts=(at - timedelta(hours=1),) * 5)


def test_invalid_number_is_a_block_with_no_basis_and_does_not_echo_the_input() -> None:
    request = ScreeningRequest("call me maybe 555", None, campaign("US"), LONDON_WEDNESDAY)
    decision = decide(request, everything_wrong(LONDON_WEDNESDAY), pack("US"))
    assert (decision.result, decision.reason, decision.basis) == (Result.BLOCK, Reason.INVALID_NUMBER, None)
    assert [(c.name, c.passed) for c in decision.checks] == [("number", False)]
    assert "555" not in decision.checks[0].detail
    assert decision.decided_at == LONDON_WEDNESDAY


def test_unknown_campaign_beats_every_rule() -> None:
    request = ScreeningRequest(HOME["US"][0], number(HOME["US"][0]), None, LONDON_WEDNESDAY)
    decision = decide(request, everything_wrong(LONDON_WEDNESDAY), pack("US"))
    assert (decision.result, decision.reason, decision.basis) == (Result.BLOCK, Reason.UNKNOWN_CAMPAIGN, None)


def test_jurisdiction_without_a_policy_pack_fails_closed() -> None:
    martian = Campaign("mars", "promotions", "ZZ", "US", "UTC")
    assert BOOK.for_campaign(martian) is None
    decision = screen("US", LONDON_WEDNESDAY, facts(consent()), the_campaign=martian, policy=None)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE)
    assert "'ZZ'" in decision.checks[0].detail


@pytest.mark.parametrize("jurisdiction", sorted(HOME))
def test_complaint_suppression_beats_consent_in_every_jurisdiction(jurisdiction) -> None:
    decision = screen(jurisdiction, LONDON_WEDNESDAY, facts(consent(), suppressions=(suppression("cmp-9"),)))
    assert decision.reason == Reason.COMPLAINT_SUPPRESSED
    assert check(decision, "complaint").detail == "suppressed by complaint cmp-9"


# --- policy order -----------------------------------------------------------------------------

GB_WITH_CAP = with_pack(pack("GB"), attempt_cap=AttemptCap(3, timedelta(hours=24)))
ORDER = (Reason.COMPLAINT_SUPPRESSED, Reason.OPTED_OUT, Reason.OBJECTION, Reason.AUTOMATIC_DIALING_FORBIDDEN,
         Reason.PURPOSE_MISMATCH, Reason.NATIONAL_DNC, Reason.OUTSIDE_CALLING_HOURS, Reason.ATTEMPT_CAP)


def failing_from(first: int):
    """Facts, time and dialing mode where every rule from ``first`` on fails and those before pass."""
    def fails(rule: int) -> bool:
        return rule >= first

    at = LONDON_SUNDAY if fails(6) else LONDON_WEDNESDAY
    record = consent(purposes=("appointment_reminders",)) if fails(4) else interest()
    known = facts(
        record,
        suppressions=(suppression(),) if fails(0) else (),
        opt_outs=(opt_out(None),) if fails(1) else (opt_out("another-campaign"),),
        objections=(objection(),) if fails(2) else (),
        registries=(registry("gb-tps", listed=fails(5), loaded_at=at - DAY),
                    registry("gb-ctps", loaded_at=at - DAY)),
        attempts=tuple(at - timedelta(hours=h) for h in (3, 2, 1)) if fails(7) else (at - 2 * DAY,),
    )
    return known, at, fails(3)


@pytest.mark.parametrize(
    "first", range(len(ORDER) + 1),
    ids=[f"first-failing-{name}" for name in CHECK_ORDER] + ["nothing-fails"],
)
def test_the_first_failing_rule_in_policy_order_is_the_reason_and_the_trace_lists_every_check(first) -> None:
    known, at, automatic = failing_from(first)
    decision = screen("GB", at, known, automatic=automatic, policy=GB_WITH_CAP)
    expected = ORDER[first] if first < len(ORDER) else Reason.LEGITIMATE_INTEREST
    assert decision.reason == expected
    assert tuple(c.name for c in decision.checks) == CHECK_ORDER
    assert [c.passed for c in decision.checks] == [index < first for index in range(len(CHECK_ORDER))]
    assert all(c.detail for c in decision.checks)


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        pytest.param((consent(source="web_form", consent_id="unverified"),
                      consent(expires_at=utc(2026, 1, 1), consent_id="expired"),
                      consent(withdrawn_at=utc(2026, 2, 1), consent_id="withdrawn")),
                     Reason.CONSENT_WITHDRAWN, id="withdrawn-before-expired-before-unverified"),
        pytest.param((consent(source="web_form", consent_id="unverified"),
                      consent(expires_at=utc(2026, 1, 1), consent_id="expired")),
                     Reason.CONSENT_EXPIRED, id="expired-before-unverified"),
        pytest.param((consent(source="web_form", consent_id="unverified"),
                      ebr("purchase", utc(2026, 11, 1))),
                     Reason.CONSENT_UNVERIFIED, id="unverified-consent-before-an-unaccepted-basis"),
        pytest.param((ebr("purchase", utc(2026, 11, 1)), consent(purposes=("surveys",))),
                     Reason.NO_BASIS, id="unaccepted-basis-before-purpose-mismatch"),
        pytest.param((consent(purposes=("surveys",)), consent(channel="sms")),
                     Reason.PURPOSE_MISMATCH, id="purpose-mismatch-names-voice-records-only"),
        pytest.param((consent(withdrawn_at=utc(2026, 2, 1), consent_id="withdrawn"), consent(consent_id="good")),
                     Reason.CONSENT, id="one-valid-consent-among-failed-ones-allows"),
    ],
)
def test_basis_problems_are_reported_most_telling_first(records, reason) -> None:
    at = local("Europe/Moscow", 2026, 11, 18, 12)
    decision = screen("RU", at, facts(*records))
    assert decision.reason == reason
    if reason is Reason.CONSENT_WITHDRAWN:
        assert decision.basis is not None and decision.basis.consent_id == "withdrawn"


def test_purpose_mismatch_detail_names_the_purposes_on_record() -> None:
    decision = screen("GB", LONDON_WEDNESDAY, facts(consent(purposes=("surveys", "appointment_reminders"))))
    assert check(decision, "basis").detail == "records cover appointment_reminders, surveys, not promotions"


def test_consent_captured_after_the_call_is_not_described_as_an_unaccepted_basis() -> None:
    decision = screen("GB", LONDON_WEDNESDAY, facts(consent(captured_at=LONDON_WEDNESDAY + DAY)))
    assert decision.reason == Reason.NO_BASIS
    assert "not accepted" not in check(decision, "basis").detail
    assert "captured later" in check(decision, "basis").detail


@pytest.mark.parametrize(
    ("records", "chosen"),
    [
        pytest.param((interest(consent_id="li"), ebr("purchase", utc(2026, 11, 1), consent_id="ebr"),
                      consent(consent_id="c")), "c", id="consent-beats-relationship-and-interest"),
        pytest.param((interest(consent_id="li"), ebr("purchase", utc(2026, 11, 1), consent_id="ebr")), "ebr",
                     id="relationship-beats-interest"),
        pytest.param((consent(consent_id="old", captured_at=utc(2025, 1, 1)),
                      consent(consent_id="new", captured_at=utc(2026, 1, 1))), "new", id="newest-consent-wins"),
    ],
)
def test_the_strongest_valid_basis_is_recorded(records, chosen) -> None:
    decision = screen("GB", LONDON_WEDNESDAY, facts(*records), advertising=False)
    assert decision.allowed
    assert decision.basis is not None and decision.basis.consent_id == chosen


def test_allow_records_basis_pack_version_and_time() -> None:
    record = consent(purposes=("promotions", "surveys"))
    decision = screen("GB", LONDON_WEDNESDAY, facts(record))
    assert decision.basis is not None
    assert decision.basis.short() == "consent:sms_double_opt_in:2025-06-01"
    assert (decision.basis.purpose, decision.basis.form_version) == ("promotions", "v3")
    assert (decision.policy_pack, decision.policy_version) == ("gb", pack("GB").version)
    assert decision.decided_at == LONDON_WEDNESDAY


# --- the recorded time zone -------------------------------------------------------------------

RU_MOBILE = "+79991234567"


@pytest.mark.parametrize(
    ("phone", "contact_zone", "at", "zone"),
    [
        pytest.param(number("+12125550100"), "", utc(2026, 11, 18, 17), "America/New_York",
                     id="the-numbers-single-zone"),
        pytest.param(number("+12125550100"), "America/Chicago", utc(2026, 11, 18, 17), "America/Chicago",
                     id="the-contacts-zone"),
        pytest.param(number("+12125550100"), "Mars/Olympus_Mons", utc(2026, 11, 18, 17), "America/New_York",
                     id="an-unknown-contact-zone-falls-back-to-the-number"),
        pytest.param(PhoneNumber("+12125550100", "US", (), "US-NY"), "", utc(2026, 11, 18, 17),
                     "America/New_York", id="a-number-without-zones-uses-the-campaign-zone"),
        pytest.param(number(RU_MOBILE), "", utc(2026, 11, 18, 7), ",".join(number(RU_MOBILE).timezones),
                     id="every-candidate-zone-when-all-are-inside-the-window"),
        pytest.param(number(RU_MOBILE), "", utc(2026, 11, 18, 3), ("Europe/Bucharest", "Europe/Kaliningrad"),
                     id="the-westernmost-candidate-zone-that-is-outside-the-window"),
    ],
)
def test_the_zone_used_is_recorded(phone, contact_zone, at, zone) -> None:
    jurisdiction = "RU" if phone.region == "RU" else "US"
    decision = screen(jurisdiction, at, facts(consent(), contact=Contact(timezone=contact_zone)), phone=phone)
    assert decision.timezone in (zone if isinstance(zone, tuple) else (zone,))


def test_with_no_usable_zone_at_all_utc_is_used_and_recorded() -> None:
    nowhere = Campaign("x", "promotions", "US", "US", "Not/AZone")
    phone = PhoneNumber("+12125550100", "US", (), "US-NY")
    decision = screen("US", utc(2026, 11, 18, 12), facts(consent()), phone=phone, the_campaign=nowhere)
    assert decision.timezone == "UTC"
    assert "(fallback)" in check(decision, "calling_hours").detail


# --- invariant: never ALLOW without a basis -------------------------------------------------

PURPOSES = ("promotions", "appointment_reminders", "*")
PHONES = [number(raw) for raw in (*(h[0] for h in HOME.values()), RU_MOBILE, "+13055550100", "+12145550100")]
START = utc(2025, 1, 1)
instants = st.integers(0, 2 * 365 * 24 * 60).map(lambda m: START + timedelta(minutes=m))
maybe_instant = st.none() | instants
# Mostly-clean facts so that a good share of the examples reach ALLOW and test the invariant.
mostly_none = st.one_of(st.none(), st.none(), st.none(), instants)


def rarely(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.just(()), st.just(()), st.just(()), st.lists(strategy, min_size=1, max_size=2).map(tuple))


@st.composite
def records(draw) -> Consent:
    return Consent(
        id=draw(st.sampled_from(("a", "b", "c"))),
        number_digest="d",
        purposes=tuple(draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=2))),
        basis=draw(st.sampled_from(list(LegalBasis))),
        source=draw(st.sampled_from(CONSENT_SOURCES)),
        captured_at=draw(instants),
        channel=draw(st.sampled_from(("voice", "voice", "sms"))),
        verified_at=draw(maybe_instant),
        expires_at=draw(mostly_none),
        withdrawn_at=draw(mostly_none),
        relationship=draw(st.sampled_from(("purchase", "inquiry", ""))),
    )


random_facts = st.builds(
    Facts,
    consents=st.lists(records(), min_size=1, max_size=3).map(tuple),
    opt_outs=rarely(st.builds(OptOut, st.sampled_from((None, "spring-promo", "other")), st.just("call"), instants)),
    objections=rarely(st.builds(Objection, instants, st.just("email"), st.sampled_from(("direct_marketing", "all")))),
    suppressions=rarely(st.builds(Suppression, st.just("k"), instants)),
    registries=st.lists(st.builds(RegistryStatus, st.sampled_from(("us-dnc", "gb-tps", "gb-ctps")), st.booleans(),
                                  maybe_instant), max_size=3).map(tuple),
    attempts=st.lists(instants, max_size=4).map(tuple),
    contact=st.builds(Contact, st.sampled_from(("", "Europe/Moscow", "America/Chicago", "bogus")),
                      st.sampled_from(("", "US-FL", "US-TX"))),
)


@settings(max_examples=300, deadline=None)
@given(
    known=random_facts,
    jurisdiction=st.sampled_from(sorted(HOME)),
    phone=st.sampled_from(PHONES),
    purpose=st.sampled_from(PURPOSES[:2]),
    advertising=st.booleans(),
    automatic=st.booleans(),
    at=instants,
)
def test_allow_always_rests_on_a_valid_basis_record_and_names_its_kind(known, jurisdiction, phone, purpose,
                                                                          advertising, automatic, at) -> None:
    the_campaign = campaign(jurisdiction, purpose=purpose, advertising=advertising, automatic=automatic)
    decision = screen(jurisdiction, at, known, phone=phone, the_campaign=the_campaign)
    assert tuple(c.name for c in decision.checks) == CHECK_ORDER
    if decision.result is Result.BLOCK:
        assert not all(c.passed for c in decision.checks)
        return
    assert all(c.passed for c in decision.checks)
    assert decision.basis is not None
    assert decision.reason == ALLOW_REASON[decision.basis.kind]
    assert decision.basis.kind in pack(jurisdiction).accepted_bases(the_campaign)
    record = next(c for c in known.consents if c.id == decision.basis.consent_id and c.basis is decision.basis.kind
                  and c.captured_at == decision.basis.captured_at)
    assert record.channel == "voice" and record.covers(purpose)
    assert record.captured_at <= at
    assert record.withdrawn_at is None or record.withdrawn_at > at
    assert record.expires_at is None or record.expires_at > at
    assert not known.suppressions
    assert not any(o.campaign_id in (None, the_campaign.id) for o in known.opt_outs)


def test_decisions_are_pure_and_repeatable() -> None:
    known = facts(consent(), interest(), attempts=(utc(2026, 11, 18, 9),))
    first = screen("GB", LONDON_WEDNESDAY, known)
    assert screen("GB", LONDON_WEDNESDAY, known) == first
    assert first.decided_at is not None and first.decided_at.tzinfo is UTC
