"""The sample dialplan in a real Asterisk 22, calls originated over AMI.

What a dialer sees: an ALLOW is dialed and its outcome recorded; every BLOCK, an empty or
failed AGI, and a stale ALLOW left on the channel are not dialed; the classic script answers
what the FastAGI server answers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from callscreen.models import Campaign, Objection, OptOut, Suppression
from callscreen.numbers import normalize
from harness.pbx import HOLD_VARIABLE, Call, Dialer
from harness.screening import (
    ALWAYS,
    CAPTURED,
    CLASSIC_AGI,
    LISTED,
    LISTED_NUMBER,
    NIGHT,
    Screening,
    assert_blocked,
    assert_dialed_with_its_allow_record,
    fresh_number,
)
from tests_support import free_port


def outcome(screening: Screening, decision_id: str, timeout: float = 5.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while (found := screening.log.outcome_of(decision_id)) is None:
        assert time.monotonic() < deadline, f"no outcome recorded for {decision_id}"
        time.sleep(0.05)
    return found


# --- ALLOW ------------------------------------------------------------------------------------


def test_an_allowed_call_is_dialed_and_its_outcome_is_recorded(dialer: Dialer, screening: Screening) -> None:
    number = screening.allowed_number()
    (call,) = dialer.wait([dialer.call(number, ALWAYS)])
    assert_dialed_with_its_allow_record(screening, call)
    record = screening.log.get(call.screen_id)
    assert record is not None and (record.reason, record.origin, record.campaign_id) == ("consent", "agi", ALWAYS)
    dial = next(e for e in call.events if e.event == "DialBegin")
    assert dial.get("DialString") == f"{number}@callscreen-test-trunk"  # the screened number, unchanged
    assert outcome(screening, call.screen_id)["dialstatus"] == "ANSWER"


def test_an_allowed_call_is_not_cut_by_the_screening_timeout(dialer: Dialer, screening: Screening) -> None:
    (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS, CALLSCREEN_SCREEN_TIMEOUT="2",
                                       **{f"_{HOLD_VARIABLE}": "3.5"})])
    assert_dialed_with_its_allow_record(screening, call)
    recorded = outcome(screening, call.screen_id)
    assert recorded["dialstatus"] == "ANSWER" and int(recorded["answered_seconds"]) >= 3  # type: ignore[call-overload]


def test_the_campaign_defaults_to_the_global_when_the_dialer_sets_none(dialer: Dialer, screening: Screening) -> None:
    screening.store.put_campaign(Campaign("default", "promotions", "XA", "RU", "Europe/Moscow"))
    (call,) = dialer.wait([dialer.call(screening.allowed_number())])
    assert_dialed_with_its_allow_record(screening, call)


# --- every BLOCK reason -------------------------------------------------------------------------


def _opted_out(s: Screening, n: str) -> None:
    s.store.add_opt_out(normalize(n, "RU"), OptOut(None, "call", CAPTURED))


def _complaint(s: Screening, n: str) -> None:
    s.store.suppress(s.store.vault.digest(normalize(n, "RU").e164), Suppression("cmp-1", CAPTURED))


def _objection(s: Screening, n: str) -> None:
    s.store.add_objection(normalize(n, "RU"), Objection(CAPTURED, "call"))


def _robo_campaign(s: Screening, n: str) -> None:
    s.store.put_campaign(Campaign("robo", "promotions", "XA", "RU", "Europe/Moscow", automatic_dialing=True))


# reason -> (campaign, the number (None: a fresh one with consent), what to add to the store)
BLOCKS: dict[str, tuple[str, str | None, Callable[[Screening, str], None] | None]] = {
    "no_basis": (ALWAYS, "89990000000", None),
    "opted_out": (ALWAYS, None, _opted_out),
    "complaint_suppressed": (ALWAYS, None, _complaint),
    "objection": (ALWAYS, None, _objection),
    "outside_calling_hours": (NIGHT, None, None),
    "national_dnc": (LISTED, LISTED_NUMBER, None),
    "invalid_number": (ALWAYS, "123", None),
    "unknown_campaign": ("no-such-campaign", None, None),
    "automatic_dialing_forbidden": ("robo", None, _robo_campaign),
}


@pytest.mark.parametrize("reason", BLOCKS)
def test_a_blocked_call_is_not_dialed_and_the_dialer_is_told_why(dialer: Dialer, screening: Screening,
                                                                 reason: str) -> None:
    campaign, number, prepare = BLOCKS[reason]
    number = number or screening.allowed_number()
    if prepare:
        prepare(screening, number)
    (call,) = dialer.wait([dialer.call(number, campaign)])
    assert_blocked(call, reason)
    record = screening.log.get(call.screen_id)
    assert record is not None and (record.result, record.reason) == ("BLOCK", reason)
    assert screening.log.outcome_of(call.screen_id) is None  # never dialed: no outcome either


# --- FastAGI failures -----------------------------------------------------------------------------


@contextmanager
def fake_agi(session: Callable[[socket.socket], None]) -> Iterator[str]:
    """A FastAGI listener on a free port running ``session`` on each connection; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                session(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"agi://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def _read_header(conn: socket.socket) -> None:
    data = b""
    while b"\n\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk


def _drop_at_once(conn: socket.socket) -> None:
    pass


def _drop_after_header(conn: socket.socket) -> None:
    _read_header(conn)


def _answer_all_but_the_result(conn: socket.socket) -> None:
    _read_header(conn)
    for name, value in (("SCREEN_ID", "d-forged"), ("SCREEN_REASON", "consent"), ("SCREEN_BASIS", "consent")):
        conn.sendall(f'SET VARIABLE {name} "{value}"\n'.encode())
        conn.recv(4096)


@pytest.mark.parametrize("session", [_drop_at_once, _drop_after_header, _answer_all_but_the_result],
                         ids=["dropped-on-connect", "dropped-after-header", "cut-short-before-result"])
def test_a_fastagi_session_that_ends_without_an_answer_is_not_dialed(
        dialer: Dialer, screening: Screening, session: Callable[[socket.socket], None]) -> None:
    with fake_agi(session) as url:
        (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS, CALLSCREEN_AGI=url)])
    assert_blocked(call, "screening_unavailable", agi_status="SUCCESS")


def test_a_hung_screening_server_is_cut_at_the_timeout_and_not_dialed(dialer: Dialer,
                                                                     screening: Screening) -> None:
    """Asterisk never times out a FastAGI session itself: the dialplan's absolute timeout does."""
    release = threading.Event()
    with fake_agi(lambda conn: (_read_header(conn), release.wait(20))) as url:
        started = time.monotonic()
        (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS, CALLSCREEN_AGI=url,
                                           CALLSCREEN_SCREEN_TIMEOUT="1")], timeout=15)
        release.set()
    assert_blocked(call, "screening_unavailable", agi_status="TIMEOUT")
    assert time.monotonic() - started < 10


def test_nothing_listening_is_agistatus_failure_and_not_dialed(dialer: Dialer, screening: Screening) -> None:
    url = f"agi://127.0.0.1:{free_port()}"
    (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS, CALLSCREEN_AGI=url)])
    assert_blocked(call, "screening_unavailable", agi_status="FAILURE")


def test_a_stale_allow_on_the_channel_does_not_survive_a_dropped_screening(dialer: Dialer,
                                                                          screening: Screening) -> None:
    with fake_agi(_drop_after_header) as url:
        (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS, CALLSCREEN_AGI=url,
                                           SCREEN_RESULT="ALLOW", SCREEN_ID="d-stale")])
    assert_blocked(call, "screening_unavailable")
    assert call.screen_id == ""


def _mset_after_a_stale_id(conn: socket.socket) -> None:
    _read_header(conn)
    for line in (b'SET VARIABLE SCREEN_ID "d-stale"\n',
                 b"EXEC MSet SCREEN_ID=,SCREEN_REASON=opted_out,SCREEN_BASIS=none,SCREEN_RESULT=BLOCK\n"):
        conn.sendall(line)
        assert conn.recv(4096).startswith(b"200 result=")


def test_asterisk_sets_the_answer_of_one_mset_command_and_an_empty_value_clears_its_variable(
        dialer: Dialer, screening: Screening) -> None:
    """The server answers in one EXEC MSet: Asterisk sets every variable in it, and the empty
    SCREEN_ID of an answer without a record replaces whatever the channel held."""
    with fake_agi(_mset_after_a_stale_id) as url:
        (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS, CALLSCREEN_AGI=url)])
    assert_blocked(call, "opted_out")
    assert call.screen_id == ""


# --- the classic script ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_classic_script_answers_what_the_fastagi_server_answers(dialer: Dialer, screening: Screening) -> None:
    cases = [(screening.allowed_number(), ALWAYS), (fresh_number(), ALWAYS), (LISTED_NUMBER, LISTED),
             (screening.allowed_number(), NIGHT), (screening.allowed_number(), "no-such-campaign")]
    fast = dialer.wait([dialer.call(n, c) for n, c in cases])
    # One at a time: each is a Python start-up, and the script gives up (BLOCK) after 10 s.
    classic = [dialer.wait([dialer.call(n, c, CALLSCREEN_AGI=CLASSIC_AGI)], timeout=30)[0] for n, c in cases]

    def answer(call: Call) -> tuple[bool, str]:
        record = screening.log.get(call.screen_id)
        assert record is not None, call.events
        return call.dialed, record.reason

    assert [answer(c) for c in classic] == [answer(c) for c in fast]
    assert [answer(c) for c in fast] == [(True, "consent"), (False, "no_basis"), (False, "national_dnc"),
                                         (False, "outside_calling_hours"), (False, "unknown_campaign")]
    assert {screening.log.get(c.screen_id).origin for c in classic} == {"agi-script"}  # type: ignore[union-attr]
    for call in (c for c in classic if c.dialed):  # the script linked as callscreen/outcome records it
        assert_dialed_with_its_allow_record(screening, call)
        assert outcome(screening, call.screen_id)["dialstatus"] == "ANSWER"
