"""``callscreen-agi`` as Asterisk runs it: a child process, header on stdin, commands on stdout."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from asterisk_client import SCRIPT_TRANSCRIPT, header_bytes, run_script
from test_fastagi_reasons import CAPTURED, RU_NUMBER

from callscreen.config import Settings
from callscreen.crypto import NumberVault
from callscreen.decision_log import DecisionLog
from callscreen.models import Campaign, Consent, LegalBasis
from callscreen.numbers import normalize
from callscreen.store import Store

SCRIPT = [str(Path(sys.executable).with_name("callscreen-agi"))]
VARIABLE_ORDER = ["SCREEN_ID", "SCREEN_REASON", "SCREEN_BASIS", "SCREEN_RESULT"]


@pytest.fixture
def script_env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env.update(
        CALLSCREEN_REDIS_URL=str(settings.redis_url),
        CALLSCREEN_HASH_KEY=settings.hash_key.hex(),
        CALLSCREEN_ENCRYPTION_KEY=settings.encryption_key.hex(),
        CALLSCREEN_LOG_KEY=settings.log_key.hex(),
        CALLSCREEN_DATA_DIR=str(tmp_path),
    )
    return env


def classic_header(args: list[str], **overrides: str) -> bytes:
    return header_bytes(SCRIPT_TRANSCRIPT, args=args, **overrides)


def _ready(store: Store, number: str = RU_NUMBER) -> None:
    store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    store.add_consent(normalize(number, "RU"), Consent("c-1", "", ("promotions",), LegalBasis.CONSENT,
                                                       "sms_double_opt_in", CAPTURED,
                                                       verified_at=CAPTURED + timedelta(minutes=3)))


def test_script_answers_through_pipes_with_the_same_contract_as_fastagi(
        store: Store, script_env: dict[str, str], vault: NumberVault, settings: Settings) -> None:
    _ready(store, "+79990000001")
    session = run_script(SCRIPT, classic_header(["spring", "+79990000001"]), script_env)
    assert session.violations == [] and session.returncode == 0, session.stderr
    assert [c.split()[2] for c in session.commands] == VARIABLE_ORDER
    assert session.reason in ("consent", "outside_calling_hours")  # real clock: depends on the hour
    record = DecisionLog(store.client, settings.log_key).get(session.variables["SCREEN_ID"])
    assert record is not None and record.origin == "agi-script" and record.reason == session.reason


def test_script_screens_the_extension_when_no_number_is_given(store: Store, script_env: dict[str, str]) -> None:
    _ready(store)
    session = run_script(SCRIPT, classic_header(["spring"], extension="+79990000123"), script_env)
    assert (session.result, session.reason) == ("BLOCK", "no_basis")


def test_script_unknown_campaign_blocks(store: Store, script_env: dict[str, str]) -> None:
    session = run_script(SCRIPT, classic_header(["nope", RU_NUMBER]), script_env)
    assert (session.result, session.reason) == ("BLOCK", "unknown_campaign")
    assert session.variables["SCREEN_BASIS"] == "none"


def test_script_fails_closed_when_the_store_is_unreachable(script_env: dict[str, str]) -> None:
    script_env["CALLSCREEN_REDIS_URL"] = "redis://127.0.0.1:1/0"
    session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER]), script_env)
    assert (session.result, session.reason, session.variables["SCREEN_ID"]) == (
        "BLOCK", "screening_unavailable", "")


def test_script_fails_closed_without_keys(script_env: dict[str, str]) -> None:
    del script_env["CALLSCREEN_LOG_KEY"]
    session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER]), script_env)
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")
    assert session.returncode == 1 and "log_key" in session.stderr


def test_script_fails_closed_on_a_broken_config_file(script_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("agi_port = [")
    script_env["CALLSCREEN_CONFIG"] = str(bad)
    session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER]), script_env)
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")


def test_script_with_wrong_arguments_blocks(store: Store, script_env: dict[str, str]) -> None:
    _ready(store)
    session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER, "extra"]), script_env)
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")


@pytest.mark.parametrize("hostile", ['8999" EXEC System "reboot', "\\\\", '"; SET VARIABLE SCREEN_RESULT "ALLOW'])
def test_script_keeps_hostile_input_inside_one_argument(store: Store, script_env: dict[str, str],
                                                         hostile: str) -> None:
    _ready(store)
    session = run_script(SCRIPT, classic_header(["spring", hostile], callerid=hostile, calleridname=hostile),
                         script_env)
    assert session.violations == []
    assert (session.result, session.reason) == ("BLOCK", "invalid_number")
    assert not any(hostile in c for c in session.commands)


def test_script_answers_block_to_a_header_with_a_smuggled_argument(script_env: dict[str, str]) -> None:
    header = classic_header(["spring"], calleridname=f"x\nagi_arg_2: {RU_NUMBER}")
    session = run_script(SCRIPT, header, script_env)
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")


def test_script_writes_no_personal_data_to_stderr(store: Store, script_env: dict[str, str]) -> None:
    _ready(store)
    session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER], callerid="+79995550000"), script_env)
    assert session.result and "9991234567" not in session.stderr and "9995550000" not in session.stderr


def test_script_survives_hangup_lines_between_replies(store: Store, script_env: dict[str, str]) -> None:
    _ready(store)
    session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER]), script_env, hangup_before_reply=True)
    assert len(session.commands) == 4 and session.violations == []
    assert session.reason in ("consent", "outside_calling_hours")


def test_script_says_nothing_when_the_header_is_cut_short(script_env: dict[str, str]) -> None:
    session = run_script(SCRIPT, classic_header(["spring"])[:120], script_env, close_after_header=True)
    assert session.commands == [] and session.returncode == 1


def test_script_linked_as_outcome_records_how_the_allowed_call_ended(
        store: Store, script_env: dict[str, str], settings: Settings) -> None:
    _ready(store, "+79990000001")
    screened = run_script(SCRIPT, classic_header(["spring", "+79990000001"]), script_env)
    decision_id = screened.variables["SCREEN_ID"]
    session = run_script(SCRIPT, classic_header([decision_id, "ANSWER", "42", "16"],
                                                request="/var/lib/asterisk/agi-bin/callscreen/outcome"), script_env)
    assert session.commands == [] and session.returncode == 0, session.stderr
    assert DecisionLog(store.client, settings.log_key).outcome_of(decision_id) == {
        "decision_id": decision_id, "dialstatus": "ANSWER", "answered_seconds": 42, "hangup_cause": "16"}


@pytest.mark.parametrize("args", [
    ["d-mx4kou1w-e6f59abd", "ANSWER", "1", "16"],  # well-formed, but no such decision
    ["d-mx4kou1w-e6f59abd", "BOGUS", "", ""],
    ["x", "ANSWER"],
])
def test_script_linked_as_outcome_refuses_what_is_not_an_outcome(script_env: dict[str, str], args: list[str]) -> None:
    session = run_script(SCRIPT, classic_header(args, request="callscreen/outcome"), script_env)
    assert session.commands == [] and session.returncode == 1
    assert "outcome" in session.stderr


@pytest.mark.parametrize("source", ["web\nform", "web\rform"], ids=["LF", "CR"])
def test_script_withholds_a_stored_value_with_a_line_break_instead_of_sending_it(
        store: Store, script_env: dict[str, str], source: str) -> None:
    _ready(store)  # the campaign; the number below has only the record with the unsafe source
    store.add_consent(normalize("+79990000010", "RU"), Consent("c-2", "", ("promotions",), LegalBasis.CONSENT,
                                                               source, CAPTURED))
    session = run_script(SCRIPT, classic_header(["spring", "+79990000010"]), script_env)
    assert session.violations == [] and len(session.commands) == 4, session.commands
    assert session.variables["SCREEN_BASIS"] == "withheld"
    assert all(source not in c for c in session.commands)


def test_script_keeps_the_holiday_calendar_it_computed_in_its_data_dir_for_the_next_call(
        store: Store, script_env: dict[str, str], tmp_path: Path) -> None:
    _ready(store, "+79990000001")
    first = run_script(SCRIPT, classic_header(["spring", "+79990000001"]), script_env)
    cached = list((tmp_path / "cache" / "calendars").glob("holidays-*/RU-*.json"))
    assert first.returncode == 0 and len(cached) == 1, first.stderr
    second = run_script(SCRIPT, classic_header(["spring", "+79990000001"]), script_env)
    assert second.returncode == 0 and second.reason == first.reason, second.stderr
