"""Every screening reason, end to end: Asterisk's header in, SCREEN_* variables out, over a real
socket, against the real server, the real Screener and the real valkey server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from agi_env import WEDNESDAY_MORNING, WEDNESDAY_US_NOON, AGIEnv, TestRegistries
from asterisk_client import header_bytes

from agi.answer import SCREEN_VARIABLES
from blocklists.disconnects import import_disconnects
from callscreen.decision_log import DecisionLog
from callscreen.models import (
    Campaign,
    Consent,
    LegalBasis,
    Objection,
    OptOut,
    Reason,
    Suppression,
)
from callscreen.numbers import PhoneNumber, normalize

RU_NUMBER = "89991234567"  # as a Russian dialer sends it (trunk prefix 8)
GB_NUMBER = "+442079460123"
FL_NUMBER = "+13055550123"
CAPTURED = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def campaign(env: AGIEnv, cid: str, jurisdiction: str = "RU", **changes: object) -> Campaign:
    region = {"RU": "RU", "GB": "GB", "US": "US"}[jurisdiction]
    zone = {"RU": "Europe/Moscow", "GB": "Europe/London", "US": "America/New_York"}[jurisdiction]
    return env.store.put_campaign(
        replace(Campaign(cid, "promotions", jurisdiction, region, zone), **changes)  # type: ignore[arg-type]
    )


def consent(env: AGIEnv, number: str, region: str = "RU", cid: str = "c-1", **changes: object) -> Consent:
    base = Consent(id=cid, number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
                   source="sms_double_opt_in", captured_at=CAPTURED,
                   verified_at=CAPTURED + timedelta(minutes=3))
    return env.store.add_consent(normalize(number, region), replace(base, **changes))  # type: ignore[arg-type]


def screen(env: AGIEnv, campaign_id: str, number: str | None = None, extension: str = RU_NUMBER):
    args = [campaign_id] if number is None else [campaign_id, number]
    session = env.asterisk().run(header_bytes(args=args, extension=extension))
    assert session.violations == []
    assert session.closed_by_server
    return session


def assert_logged(env: AGIEnv, session, reason: Reason) -> None:
    log = DecisionLog(env.client, env.settings.log_key)
    record = log.get(session.variables["SCREEN_ID"])
    assert record is not None, "every answer with a SCREEN_ID has its log record"
    assert record.result == session.result and record.reason == reason.value
    assert record.origin == "agi"


def test_consent_allows_and_sets_all_four_variables(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    session = screen(agi, "spring")
    assert session.variables["SCREEN_RESULT"] == "ALLOW", session.variables
    assert session.variables["SCREEN_REASON"] == "consent"
    assert session.variables["SCREEN_BASIS"] == "consent:sms_double_opt_in:2026-05-01"
    assert session.variables["SCREEN_ID"].startswith("d-")
    assert_logged(agi, session, Reason.CONSENT)


def test_a_screening_answers_in_one_mset_command_with_the_result_set_last(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    session = screen(agi, "spring")
    (command,) = session.commands
    assert command.startswith("EXEC MSet ")
    names = [pair.partition("=")[0] for pair in command.split(" ", 2)[2].split(",")]
    assert names == ["SCREEN_ID", "SCREEN_REASON", "SCREEN_BASIS", "SCREEN_RESULT"]
    assert session.result == "ALLOW"


def test_an_unavailable_screening_clears_the_id_in_its_one_mset_command(agi: AGIEnv) -> None:
    session = agi.asterisk(initial={"SCREEN_ID": "d-stale"}).run(header_bytes(args=["a", "b", "c"]))
    assert session.violations == []
    assert session.commands == ["EXEC MSet SCREEN_ID=,SCREEN_REASON=screening_unavailable,"
                                "SCREEN_BASIS=none,SCREEN_RESULT=BLOCK"]
    assert session.variables["SCREEN_ID"] == ""


def test_a_value_that_is_not_plain_goes_by_four_quoted_set_commands_with_the_result_last(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER, source='web form "spring", page 2')
    session = screen(agi, "spring")
    names = [c.split()[2] for c in session.commands]
    assert names == ["SCREEN_ID", "SCREEN_REASON", "SCREEN_BASIS", "SCREEN_RESULT"]
    assert all(c.startswith("SET VARIABLE ") for c in session.commands)
    assert session.variables["SCREEN_BASIS"] == 'consent:web form "spring", page 2:2026-05-01'
    assert session.result == "ALLOW"


def test_an_asterisk_without_mset_gets_set_variable_commands_from_then_on(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    client = agi.asterisk(has_mset=False)
    first = client.run(header_bytes(args=["spring"], extension=RU_NUMBER))
    second = client.run(header_bytes(args=["spring"], extension=RU_NUMBER))
    assert first.violations == second.violations == []
    assert first.commands[0].startswith("EXEC MSet ")
    assert [c.split()[:3] for c in first.commands[1:]] == [["SET", "VARIABLE", n] for n in SCREEN_VARIABLES]
    assert [c.split()[:3] for c in second.commands] == [["SET", "VARIABLE", n] for n in SCREEN_VARIABLES]
    assert first.result == second.result == "ALLOW"


def test_number_argument_wins_over_the_extension(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, "+79990000001")
    assert screen(agi, "spring", "+79990000001", extension="89995550000").result == "ALLOW"
    assert screen(agi, "spring", extension="+79990000001").result == "ALLOW"
    assert screen(agi, "spring", "+79990000002", extension="+79990000001").reason == "no_basis"


def test_an_erased_number_is_blocked_for_every_campaign_and_its_record_holds_no_number(agi: AGIEnv) -> None:
    from callscreen.erasure import MIGRATED_KEY, Eraser
    from callscreen.journal import AccessJournal

    campaign(agi, "spring")
    campaign(agi, "service", advertising=False)
    consent(agi, RU_NUMBER)
    assert screen(agi, "spring").result == "ALLOW"
    agi.client.set(MIGRATED_KEY, "1")
    log = DecisionLog(agi.client, agi.settings.log_key)
    Eraser(agi.store, log, AccessJournal(agi.client, agi.settings.log_key), None).erase(
        normalize(RU_NUMBER, "RU"), reason="DSR-7 art. 17 request", by="dpo")
    for cid in ("spring", "service"):
        session = screen(agi, cid)
        assert (session.result, session.reason) == ("BLOCK", "erased_subject")
        assert_logged(agi, session, Reason.ERASED_SUBJECT)
        assert log.get(session.variables["SCREEN_ID"]).number_sealed == ""


def test_existing_relationship_allows_a_non_advertising_call(agi: AGIEnv) -> None:
    campaign(agi, "service", advertising=False)
    consent(agi, RU_NUMBER, basis=LegalBasis.EXISTING_RELATIONSHIP, source="crm_import", relationship="purchase")
    session = screen(agi, "service")
    assert (session.result, session.reason) == ("ALLOW", "existing_relationship")
    assert session.variables["SCREEN_BASIS"] == "existing_relationship:crm_import:2026-05-01"
    assert_logged(agi, session, Reason.EXISTING_RELATIONSHIP)


def _gb_registries(env: AGIEnv, listed: bool = False, loaded: datetime | None = WEDNESDAY_MORNING) -> None:
    for rid in ("gb-tps", "gb-ctps"):
        if loaded is not None:
            TestRegistries.load(env.client, rid, [GB_NUMBER] if listed and rid == "gb-tps" else [],
                                loaded - timedelta(days=1))


def test_legitimate_interest_allows_when_registries_are_fresh_and_clear(agi: AGIEnv) -> None:
    campaign(agi, "uk-live", "GB")
    consent(agi, GB_NUMBER, "GB", basis=LegalBasis.LEGITIMATE_INTEREST, source="crm_import")
    _gb_registries(agi)
    session = screen(agi, "uk-live", GB_NUMBER)
    assert (session.result, session.reason) == ("ALLOW", "legitimate_interest")
    assert_logged(agi, session, Reason.LEGITIMATE_INTEREST)


def test_number_on_a_national_registry_blocks(agi: AGIEnv) -> None:
    campaign(agi, "uk-live", "GB")
    consent(agi, GB_NUMBER, "GB", basis=LegalBasis.LEGITIMATE_INTEREST, source="crm_import")
    _gb_registries(agi, listed=True)
    session = screen(agi, "uk-live", GB_NUMBER)
    assert (session.result, session.reason) == ("BLOCK", "national_dnc")
    assert_logged(agi, session, Reason.NATIONAL_DNC)


def test_registry_not_loaded_blocks_as_stale(agi: AGIEnv) -> None:
    campaign(agi, "uk-live", "GB")
    consent(agi, GB_NUMBER, "GB", basis=LegalBasis.LEGITIMATE_INTEREST, source="crm_import")
    session = screen(agi, "uk-live", GB_NUMBER)
    assert (session.result, session.reason) == ("BLOCK", "registry_stale")


@pytest.mark.parametrize(
    ("number", "expected"),
    [("12ab", "invalid_number"), ("", "invalid_number"), ("8" * 80, "invalid_number")],
)
def test_malformed_numbers_block_as_invalid(agi: AGIEnv, number: str, expected: str) -> None:
    campaign(agi, "spring")
    session = screen(agi, "spring", number)
    assert (session.result, session.reason) == ("BLOCK", expected)
    assert session.variables["SCREEN_BASIS"] == "none"
    assert_logged(agi, session, Reason.INVALID_NUMBER)


def test_unknown_campaign_blocks(agi: AGIEnv) -> None:
    session = screen(agi, "no-such-campaign")
    assert (session.result, session.reason) == ("BLOCK", "unknown_campaign")
    assert_logged(agi, session, Reason.UNKNOWN_CAMPAIGN)


def test_complaint_suppression_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    digest = agi.store.vault.digest(normalize(RU_NUMBER, "RU").e164)
    agi.store.suppress(digest, Suppression("cmp-1", CAPTURED))
    assert screen(agi, "spring").reason == "complaint_suppressed"


def test_opt_out_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    agi.store.add_opt_out(normalize(RU_NUMBER, "RU"), OptOut(None, "call", CAPTURED))
    assert screen(agi, "spring").reason == "opted_out"


def test_objection_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    agi.store.add_objection(normalize(RU_NUMBER, "RU"), Objection(CAPTURED, "call"))
    assert screen(agi, "spring").reason == "objection"


def test_no_basis_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    assert screen(agi, "spring").reason == "no_basis"


def test_withdrawn_consent_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER, withdrawn_at=CAPTURED + timedelta(days=2), withdrawn_how="call")
    assert screen(agi, "spring").reason == "consent_withdrawn"


def test_expired_consent_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER, expires_at=CAPTURED + timedelta(days=2))
    session = screen(agi, "spring")
    assert session.reason == "consent_expired"
    assert session.variables["SCREEN_BASIS"] == "consent:sms_double_opt_in:2026-05-01"


def test_unverified_web_form_consent_blocks_in_russia(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER, source="web_form", verified_at=None)
    assert screen(agi, "spring").reason == "consent_unverified"


def test_consent_from_before_a_permanent_disconnection_blocks_as_reassigned(agi: AGIEnv, tmp_path) -> None:
    agi.clock[0] = WEDNESDAY_US_NOON
    campaign(agi, "us-promo", "US")
    consent(agi, FL_NUMBER, "US")  # captured 2026-05-01
    disconnects = tmp_path / "reassigned.csv"
    disconnects.write_text("number,disconnected\n(305) 555-0123,2026-06-01\n", encoding="utf-8")
    import_disconnects(agi.store, str(disconnects), country="US")
    session = screen(agi, "us-promo", FL_NUMBER)
    assert session.reason == "consent_reassigned"
    assert_logged(agi, session, Reason.CONSENT_REASSIGNED)


def test_consent_for_another_purpose_blocks(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER, purposes=("appointment_reminders",))
    assert screen(agi, "spring").reason == "purpose_mismatch"


def test_night_time_blocks_as_outside_calling_hours(agi: AGIEnv) -> None:
    campaign(agi, "spring")
    consent(agi, RU_NUMBER)
    agi.clock[0] = datetime(2026, 6, 10, 0, 30, tzinfo=UTC)  # 03:30 in Moscow
    session = screen(agi, "spring")
    assert session.reason == "outside_calling_hours"
    assert_logged(agi, session, Reason.OUTSIDE_CALLING_HOURS)


def test_automatic_dialing_of_advertising_is_forbidden_in_russia(agi: AGIEnv) -> None:
    campaign(agi, "robo", automatic_dialing=True)
    consent(agi, RU_NUMBER)
    assert screen(agi, "robo").reason == "automatic_dialing_forbidden"


def test_fourth_call_in_a_day_to_florida_hits_the_attempt_cap(agi: AGIEnv) -> None:
    agi.clock[0] = WEDNESDAY_US_NOON
    campaign(agi, "us-promo", "US")
    consent(agi, FL_NUMBER, "US")
    results = [screen(agi, "us-promo", FL_NUMBER).reason for _ in range(4)]
    assert results == ["consent", "consent", "consent", "attempt_cap"]


def test_outcome_of_a_call_that_never_left_does_not_count_as_an_attempt(agi: AGIEnv) -> None:
    agi.clock[0] = WEDNESDAY_US_NOON
    campaign(agi, "us-promo", "US")
    consent(agi, FL_NUMBER, "US")
    ids = [screen(agi, "us-promo", FL_NUMBER).variables["SCREEN_ID"] for _ in range(3)]
    outcome = agi.asterisk().run(header_bytes(script="outcome", args=[ids[0], "CHANUNAVAIL", "", "34"]))
    assert outcome.commands == [] and outcome.closed_by_server
    assert agi.metric("callscreen_agi_outcomes_total", dialstatus="CHANUNAVAIL") == 1
    assert screen(agi, "us-promo", FL_NUMBER).reason == "consent"  # the cap counts real attempts only
    assert screen(agi, "us-promo", FL_NUMBER).reason == "attempt_cap"


Target = tuple[str, str | None]  # (campaign, number); number None: the extension is screened
SPRING: Target = ("spring", None)


def _spring_with_consent(env: AGIEnv, **changes: object) -> Target:
    campaign(env, "spring")
    consent(env, RU_NUMBER, **changes)
    return SPRING


def _ru_number() -> PhoneNumber:
    return normalize(RU_NUMBER, "RU")


def _uk_with_interest(env: AGIEnv, *, listed: bool = False, loaded: bool = True) -> Target:
    campaign(env, "uk-live", "GB")
    consent(env, GB_NUMBER, "GB", basis=LegalBasis.LEGITIMATE_INTEREST, source="crm_import")
    if loaded:
        _gb_registries(env, listed=listed)
    return "uk-live", GB_NUMBER


def _existing_relationship(env: AGIEnv) -> Target:
    campaign(env, "spring", advertising=False)
    consent(env, RU_NUMBER, basis=LegalBasis.EXISTING_RELATIONSHIP, source="crm_import", relationship="purchase")
    return SPRING


def _invalid_number(env: AGIEnv) -> Target:
    campaign(env, "spring")
    return "spring", "12ab"


def _suppressed(env: AGIEnv) -> Target:
    env.store.suppress(env.store.vault.digest(_ru_number().e164), Suppression("cmp-1", CAPTURED))
    return _spring_with_consent(env)


def _opted_out(env: AGIEnv) -> Target:
    env.store.add_opt_out(_ru_number(), OptOut(None, "call", CAPTURED))
    return _spring_with_consent(env)


def _objected(env: AGIEnv) -> Target:
    env.store.add_objection(_ru_number(), Objection(CAPTURED, "call"))
    return _spring_with_consent(env)


def _at_night(env: AGIEnv) -> Target:
    env.clock[0] = datetime(2026, 6, 10, 0, 30, tzinfo=UTC)  # 03:30 in Moscow
    return _spring_with_consent(env)


def _florida_called_three_times(env: AGIEnv) -> Target:
    env.clock[0] = WEDNESDAY_US_NOON
    campaign(env, "us-promo", "US")
    consent(env, FL_NUMBER, "US")
    for _ in range(3):
        assert screen(env, "us-promo", FL_NUMBER).result == "ALLOW"
    return "us-promo", FL_NUMBER


def _florida_number_disconnected_after_its_consent(env: AGIEnv) -> Target:
    env.clock[0] = WEDNESDAY_US_NOON
    campaign(env, "us-promo", "US")
    consent(env, FL_NUMBER, "US")  # captured 2026-05-01
    disconnects = env.settings.data_dir / "reassigned.csv"
    disconnects.write_text("number,disconnected\n(305) 555-0123,2026-06-01\n", encoding="utf-8")
    import_disconnects(env.store, str(disconnects), country="US")
    return "us-promo", FL_NUMBER


def _robocall(env: AGIEnv) -> Target:
    campaign(env, "spring", automatic_dialing=True)
    consent(env, RU_NUMBER)
    return SPRING


def _no_policy_pack(env: AGIEnv) -> Target:
    env.store.put_campaign(Campaign("spring", "promotions", "ZZ", "RU", "Europe/Moscow"))
    return SPRING


def _erased(env: AGIEnv) -> Target:
    from callscreen.erasure import MIGRATED_KEY, Eraser
    from callscreen.journal import AccessJournal

    target = _spring_with_consent(env)
    env.client.set(MIGRATED_KEY, "1")
    Eraser(env.store, DecisionLog(env.client, env.settings.log_key),
           AccessJournal(env.client, env.settings.log_key), None).erase(
        _ru_number(), reason="DSR-7 art. 17 request", by="dpo")
    return target


# How to meet each reason end to end, over a real socket against the real server and store.
SCENARIOS: dict[Reason, Callable[[AGIEnv], Target]] = {
    Reason.CONSENT: _spring_with_consent,
    Reason.EXISTING_RELATIONSHIP: _existing_relationship,
    Reason.LEGITIMATE_INTEREST: _uk_with_interest,
    Reason.INVALID_NUMBER: _invalid_number,
    Reason.UNKNOWN_CAMPAIGN: lambda env: ("no-such-campaign", None),
    Reason.COMPLAINT_SUPPRESSED: _suppressed,
    Reason.OPTED_OUT: _opted_out,
    Reason.OBJECTION: _objected,
    Reason.NATIONAL_DNC: lambda env: _uk_with_interest(env, listed=True),
    Reason.REGISTRY_STALE: lambda env: _uk_with_interest(env, loaded=False),
    Reason.NO_BASIS: lambda env: campaign(env, "spring") and SPRING,
    Reason.CONSENT_WITHDRAWN: lambda env: _spring_with_consent(
        env, withdrawn_at=CAPTURED + timedelta(days=2), withdrawn_how="call"),
    Reason.CONSENT_EXPIRED: lambda env: _spring_with_consent(env, expires_at=CAPTURED + timedelta(days=2)),
    Reason.CONSENT_UNVERIFIED: lambda env: _spring_with_consent(env, source="web_form", verified_at=None),
    Reason.CONSENT_REASSIGNED: _florida_number_disconnected_after_its_consent,
    Reason.PURPOSE_MISMATCH: lambda env: _spring_with_consent(env, purposes=("appointment_reminders",)),
    Reason.OUTSIDE_CALLING_HOURS: _at_night,
    Reason.ATTEMPT_CAP: _florida_called_three_times,
    Reason.AUTOMATIC_DIALING_FORBIDDEN: _robocall,
    Reason.SCREENING_UNAVAILABLE: _no_policy_pack,
    Reason.ERASED_SUBJECT: _erased,
}


@pytest.mark.parametrize("reason", list(Reason), ids=[r.value for r in Reason])
def test_every_reason_is_answered_and_logged_end_to_end_over_fastagi(agi: AGIEnv, reason: Reason) -> None:
    """Parametrized over the Reason enum itself: a new reason fails here until it has a scenario."""
    assert reason in SCENARIOS, f"no end-to-end scenario for {reason.value}"
    session = screen(agi, *SCENARIOS[reason](agi))
    allowed = reason in (Reason.CONSENT, Reason.EXISTING_RELATIONSHIP, Reason.LEGITIMATE_INTEREST)
    assert (session.result, session.reason) == ("ALLOW" if allowed else "BLOCK", reason.value)
    assert_logged(agi, session, reason)
