"""The FastAGI server under hostile, broken and slow conditions: it answers BLOCK or closes,
never ALLOWs by accident, never lets one connection's trouble reach another."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import pytest
import redis
from agi_env import AGIEnv
from asterisk_client import AsteriskClient, closed_within, header_bytes, open_idle
from test_fastagi_reasons import RU_NUMBER, campaign, consent, screen

from agi import protocol
from callscreen.decision_log import APPEND_SHA, LOOKUP_SHA, DecisionLog
from callscreen.numbers import normalize
from tests_support import monitored


def _ready(env: AGIEnv) -> None:
    campaign(env, "spring")
    consent(env, RU_NUMBER)


# --- the store is slow ---------------------------------------------------------------------


def _pause_store(env: AGIEnv, milliseconds: int) -> None:
    admin = redis.Redis.from_url(env.settings.redis_url)
    admin.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")
    admin.close()


def test_slow_store_answers_block_before_it_resumes_and_the_block_is_logged_once_it_does(agi_factory) -> None:
    env = agi_factory(agi_decision_deadline_ms=100)
    _ready(env)
    screen(env, "spring")  # warm the campaign cache and the connections
    before = env.client.xlen("cs:{log}:stream")
    _pause_store(env, 1500)
    session = screen(env, "spring")
    assert (session.result, session.reason, session.variables["SCREEN_ID"]) == (
        "BLOCK", "screening_unavailable", "")
    assert session.seconds < 1.0  # answered long before the store came back
    assert env.metric("callscreen_agi_session_errors_total", kind="deadline") == 1
    assert env.metric("callscreen_screening_failures_total", stage="facts", kind="timeout") == 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and env.client.xlen("cs:{log}:stream") <= before:
        time.sleep(0.1)
    newest = DecisionLog(env.client, env.settings.log_key).tail(1)[0]
    assert newest.reason == "screening_unavailable" and newest.number_digest
    assert "100 ms budget" in newest.checks[0][2]


def test_store_unreachable_answers_block_without_an_id(agi_factory) -> None:
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    env = agi_factory(aclient_url=f"redis://127.0.0.1:{port}/0")
    _ready(env)
    session = screen(env, "spring")
    assert (session.result, session.reason, session.variables["SCREEN_ID"]) == (
        "BLOCK", "screening_unavailable", "")
    assert env.metric("callscreen_agi_session_errors_total", kind="screener") == 1


# --- what the dialplan asked -----------------------------------------------------------------


def test_unknown_script_name_answers_block_and_is_counted(agi: AGIEnv) -> None:
    session = agi.asterisk().run(header_bytes(script="scren", args=["spring"]))
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")
    assert agi.metric("callscreen_agi_session_errors_total", kind="unknown_script") == 1
    assert agi.metric("callscreen_agi_sessions_total", script="unknown") == 1


@pytest.mark.parametrize("args", [[], ["spring", RU_NUMBER, "+79990000000"], ["a", "b", "c", "d"]])
def test_wrong_argument_count_answers_block_without_guessing(agi: AGIEnv, args: list[str]) -> None:
    _ready(agi)
    session = agi.asterisk().run(header_bytes(args=args))
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")
    assert agi.metric("callscreen_agi_session_errors_total", kind="bad_arguments") == 1


# --- injection --------------------------------------------------------------------------------

HOSTILE = [
    '8999" EXEC System "reboot',
    "8999\\",
    '\\"\\\\"',
    "EXEC System rm -rf /",
    "8999\tSET VARIABLE SCREEN_RESULT ALLOW",
    "x" * 6000,
    '"; SET VARIABLE SCREEN_RESULT "ALLOW',
    "${SHELL(reboot)}",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_extension_caller_id_and_args_never_leave_their_argument(agi: AGIEnv, hostile: str) -> None:
    _ready(agi)
    for header in (
        header_bytes(extension=hostile, args=["spring"]),
        header_bytes(callerid=hostile, calleridname=hostile, args=["spring", hostile]),
        header_bytes(args=[hostile]),
    ):
        session = agi.asterisk().run(header)
        assert session.violations == []
        assert not session.dialplan_dials
        if len(header) > protocol.MAX_HEADER_BYTES:
            assert session.commands == []  # cut unanswered: the dialplan reads the empty result as BLOCK
            continue
        assert session.result == "BLOCK"
        (command,) = session.commands  # one EXEC MSet of plain values: nothing hostile in it
        assert command.startswith("EXEC MSet SCREEN_ID=")
        assert not any(hostile in c for c in session.commands)


def test_caller_id_is_not_screened_or_echoed(agi: AGIEnv) -> None:
    _ready(agi)  # the caller ID's number has a consent: screening it would answer ALLOW
    session = agi.asterisk().run(header_bytes(callerid=RU_NUMBER, extension="+79990000009", args=["spring"]))
    assert (session.result, session.reason) == ("BLOCK", "no_basis")  # the extension was screened
    record = DecisionLog(agi.client, agi.settings.log_key).get(session.variables["SCREEN_ID"])
    assert record.number_digest == agi.store.vault.digest("+79990000009")
    caller = normalize(RU_NUMBER, "RU")
    sent = "".join(session.commands)
    for spelling in (RU_NUMBER, caller.e164, caller.national_digits, caller.e164[-7:]):
        assert spelling not in sent  # not echoed in any variable


@pytest.mark.parametrize("char", ["\r", "\x00", "\x1b"])
def test_control_characters_in_the_header_answer_block(agi: AGIEnv, char: str) -> None:
    _ready(agi)
    session = agi.asterisk().run(header_bytes(calleridname=f"evil{char}name", args=["spring"]))
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")
    assert agi.metric("callscreen_agi_session_errors_total", kind="bad_header") == 1


def test_newline_in_caller_id_cannot_inject_a_number_argument(agi: AGIEnv) -> None:
    _ready(agi)
    session = agi.asterisk().run(
        header_bytes(extension="+79990000009", calleridname=f"x\nagi_arg_2: {RU_NUMBER}", args=["spring"])
    )
    assert (session.result, session.reason) == ("BLOCK", "screening_unavailable")


def test_unsafe_value_from_the_store_is_withheld_not_sent(agi: AGIEnv) -> None:
    _ready(agi)
    consent(agi, "+79990000010", source="web\nform", verified_at=None, cid="c-2")
    session = screen(agi, "spring", "+79990000010")
    assert session.violations == []
    # web\nform is not a verification-exempt source, so this is a BLOCK; its basis is withheld
    assert session.variables["SCREEN_BASIS"] == "withheld"
    assert agi.metric("callscreen_agi_session_errors_total", kind="unsafe_value") == 1


# --- Asterisk's side of the conversation ------------------------------------------------------


def test_hangup_line_before_a_reply_is_skipped_and_the_answer_completes(agi: AGIEnv) -> None:
    _ready(agi)
    session = agi.asterisk().run(header_bytes(args=["spring"]), hangup_before_reply=True)
    assert session.result == "ALLOW" and session.violations == []


def test_connection_dropped_after_the_header_is_counted_not_fatal(agi: AGIEnv) -> None:
    _ready(agi)
    agi.asterisk().run(header_bytes(args=["spring"]), drop_after_header=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and agi.metric(
            "callscreen_agi_session_errors_total", kind="connection_lost") == 0:
        time.sleep(0.05)
    assert agi.metric("callscreen_agi_session_errors_total", kind="connection_lost") == 1
    assert screen(agi, "spring").result == "ALLOW"  # the server is fine


def test_asterisk_refusing_a_command_ends_the_session_before_result_is_set(agi: AGIEnv) -> None:
    _ready(agi)

    class Refusing(AsteriskClient):
        @staticmethod
        def reply(session, line):  # type: ignore[override]
            if "SCREEN_BASIS" in line:
                return "520-Invalid command syntax.  Proper usage follows:\nusage\n520 End of proper usage.\n"
            return AsteriskClient.reply(session, line)

    session = Refusing(agi.server.host, agi.port).run(header_bytes(args=["spring"]))
    assert "SCREEN_RESULT" not in session.variables  # the dialplan reads empty as BLOCK
    assert agi.metric("callscreen_agi_session_errors_total", kind="asterisk_error") == 1


def test_garbage_reply_ends_the_session(agi: AGIEnv) -> None:
    _ready(agi)

    class Garbage(AsteriskClient):
        @staticmethod
        def reply(session, line):  # type: ignore[override]
            return "HELLO THERE\n"

    session = Garbage(agi.server.host, agi.port).run(header_bytes(args=["spring"]))
    assert len(session.commands) == 1 and session.closed_by_server


def test_asterisk_that_never_replies_is_cut_after_the_reply_timeout(agi_factory) -> None:
    env = agi_factory(agi_reply_timeout=0.5)
    _ready(env)
    session = env.asterisk().run(header_bytes(args=["spring"]), silent=True)
    assert len(session.commands) == 1 and session.closed_by_server
    assert env.metric("callscreen_agi_session_errors_total", kind="reply_timeout") == 1


# --- slow, silent, half-open and garbage clients -------------------------------------------------


def test_silent_client_is_closed_after_the_read_timeout(agi_factory) -> None:
    env = agi_factory(agi_read_timeout=0.5)
    (sock,) = open_idle("127.0.0.1", env.port, 1)
    assert closed_within(sock, 3.0)
    assert env.metric("callscreen_agi_session_errors_total", kind="header_timeout") == 1


def test_slowloris_header_must_arrive_within_the_timeout_as_a_whole(agi_factory) -> None:
    env = agi_factory(agi_read_timeout=0.6)
    sock = socket.create_connection(("127.0.0.1", env.port))
    lines = header_bytes(args=["spring"]).split(b"\n")
    closed = False
    for line in lines:  # one line every 0.2 s: each line is "on time", the header is not
        try:
            sock.sendall(line + b"\n")
        except OSError:
            closed = True
            break
        time.sleep(0.2)
    assert closed or closed_within(sock, 2.0)
    assert env.metric("callscreen_agi_session_errors_total", kind="header_timeout") == 1


def test_half_open_header_is_dropped(agi_factory) -> None:
    env = agi_factory(agi_read_timeout=0.5)
    (sock,) = open_idle("127.0.0.1", env.port, 1, header_bytes(args=["spring"])[:200])
    sock.shutdown(socket.SHUT_WR)  # half-close: no more data will come
    assert closed_within(sock, 3.0)
    assert env.metric("callscreen_agi_session_errors_total", kind="connection_lost") == 1


@pytest.mark.parametrize("garbage", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\n\n",
                                     b"hello\n\n"])
def test_garbage_clients_get_block_or_nothing(agi_factory, garbage: bytes) -> None:
    agi = agi_factory(agi_read_timeout=0.5)
    sock = socket.create_connection(("127.0.0.1", agi.port))
    sock.sendall(garbage)
    sock.settimeout(3)
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
        if received.endswith(b"\n"):
            sock.sendall(b"200 result=1\n")
    assert b"ALLOW" not in received
    # refused as a bad header, or (CRLF never makes the blank line AGI ends with) timed out
    assert agi.metric("callscreen_agi_session_errors_total", kind="bad_header") + agi.metric(
        "callscreen_agi_session_errors_total", kind="header_timeout") == 1


def test_header_larger_than_the_bound_is_cut(agi: AGIEnv) -> None:
    sock = socket.create_connection(("127.0.0.1", agi.port))
    lines = b"".join(f"agi_x{i}: {'v' * 60}\n".encode() for i in range(400))
    with contextlib.suppress(OSError):
        sock.sendall(b"agi_request: agi://127.0.0.1/screen\n" + lines)
    assert closed_within(sock, 3.0)
    assert agi.metric("callscreen_agi_session_errors_total", kind="header_too_large") == 1


def test_single_endless_header_line_is_cut(agi: AGIEnv) -> None:
    sock = socket.create_connection(("127.0.0.1", agi.port))
    with contextlib.suppress(OSError):
        sock.sendall(b"agi_request: " + b"a" * (protocol.MAX_LINE_BYTES * 4))
    assert closed_within(sock, 3.0)
    assert agi.metric("callscreen_agi_session_errors_total", kind="header_too_large") == 1


def test_idle_connections_cannot_starve_a_live_call(agi_factory) -> None:
    env = agi_factory(agi_max_connections=8, agi_read_timeout=5.0)
    _ready(env)
    idle = open_idle("127.0.0.1", env.port, 8, b"agi_request: agi://127.0.0.1/screen\n")
    time.sleep(0.2)
    session = screen(env, "spring")  # the server is "full" of idle peers, yet this call is answered
    assert session.result == "ALLOW"
    assert env.metric("callscreen_agi_session_errors_total", kind="evicted") >= 1
    assert closed_within(idle[0], 2.0)  # the oldest idle peer made room
    for sock in idle:
        sock.close()


# --- who may connect ---------------------------------------------------------------------------


def test_peer_outside_the_allowlist_is_closed_without_a_word(agi_factory) -> None:
    env = agi_factory(host="127.0.0.1", allowed_hosts=["127.0.0.2"])
    _ready(env)
    session = env.asterisk().run(header_bytes(args=["spring"]))
    assert session.commands == [] and session.result == ""
    assert env.metric("callscreen_agi_rejected_connections_total", why="peer") == 1
    allowed = env.asterisk().run(header_bytes(args=["spring"]), source="127.0.0.2")
    assert allowed.result == "ALLOW"


def test_allowlist_accepts_networks_and_names() -> None:
    from agi.server import PeerAllowlist

    allow = PeerAllowlist(["10.0.0.0/8", "localhost", "::1"])
    assert allow.allows("10.2.3.4") and allow.allows("127.0.0.1") and allow.allows("::ffff:10.0.0.1")
    assert not allow.allows("192.168.1.1") and not allow.allows("garbage")
    for _ in range(2):  # answers kept per address stay the same, for thousands of addresses too
        assert [allow.allows(f"10.9.{i // 256}.{i % 256}") for i in range(5000)] == [True] * 5000
        assert [allow.allows(f"192.168.{i // 256}.{i % 256}") for i in range(5000)] == [False] * 5000
    with pytest.raises(ValueError):
        PeerAllowlist([])
    with pytest.raises(ValueError):
        PeerAllowlist(["no-such-host.invalid"])


# --- outcomes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["d-zz-00000000", "ANSWER", "10", "16", "extra"],
        ["not-an-id", "ANSWER", "10", "16"],
        ["d-mwqzyg94-6da2e6a2", "ANSWERED; EXEC", "10", "16"],
        ["d-mwqzyg94-6da2e6a2", "ANSWER", "-5", "16"],
        ["d-mwqzyg94-6da2e6a2", "ANSWER", "99999999", "16"],
        ["d-mwqzyg94-6da2e6a2", "BUSY", "12", "17"],
        ["d-mwqzyg94-6da2e6a2", "ANSWER", "10", "999"],
        ["d-mwqzyg94-6da2e6a2", "ANSWER", "10", "16a"],
    ],
)
def test_garbage_outcomes_are_rejected_and_counted(agi: AGIEnv, args: list[str]) -> None:
    session = agi.asterisk().run(header_bytes(script="outcome", args=args))
    assert session.commands == [] and session.closed_by_server
    assert agi.metric("callscreen_agi_session_errors_total", kind="outcome_rejected") == 1


def test_outcome_for_an_unknown_decision_is_rejected(agi: AGIEnv) -> None:
    agi.asterisk().run(header_bytes(script="outcome", args=["d-mwqzyg94-6da2e6a2", "ANSWER", "10", "16"]))
    assert agi.metric("callscreen_agi_session_errors_total", kind="outcome_rejected") == 1


def test_answered_outcome_is_recorded_against_the_decision(agi: AGIEnv) -> None:
    _ready(agi)
    decision_id = screen(agi, "spring").variables["SCREEN_ID"]
    agi.asterisk().run(header_bytes(script="outcome", args=[decision_id, "ANSWER", "42", "16"]))
    log = DecisionLog(agi.client, agi.settings.log_key)
    assert log.outcome_of(decision_id) == {
        "decision_id": decision_id, "dialstatus": "ANSWER", "answered_seconds": 42, "hangup_cause": "16"}


def _store_commands_during(env: AGIEnv, action: Callable[[], object]) -> list[str]:
    """The commands the store ran while ``action`` ran, scripts' own calls included (MONITOR)."""
    return [entry["command"] for entry in monitored(env.client, action)]


def _outcome(env: AGIEnv, decision_id: str, seconds: str = "42") -> None:
    session = env.asterisk().run(header_bytes(script="outcome", args=[decision_id, "ANSWER", seconds, "16"]))
    assert session.commands == [] and session.closed_by_server


def test_an_outcome_of_this_servers_allow_is_recorded_without_reading_the_decision_back(agi: AGIEnv) -> None:
    _ready(agi)
    decision_id = screen(agi, "spring").variables["SCREEN_ID"]
    first = _store_commands_during(agi, lambda: _outcome(agi, decision_id))
    assert any(APPEND_SHA in command for command in first)  # the outcome was appended
    assert not any(LOOKUP_SHA in command or "XRANGE" in command for command in first)
    again = _store_commands_during(agi, lambda: _outcome(agi, decision_id, "43"))  # taken once: read back
    assert any(LOOKUP_SHA in command for command in again)
    log = DecisionLog(agi.client, agi.settings.log_key)
    decision = log.get(decision_id)
    outcomes = [r for r in log.scan() if r.kind == "outcome"]
    assert [r.extra["answered_seconds"] for r in outcomes] == [43, 42]
    assert {(r.campaign_id, r.number_digest) for r in outcomes} == {(decision.campaign_id, decision.number_digest)}
    assert agi.metric("callscreen_agi_outcomes_total", dialstatus="ANSWER") == 2


def test_an_outcome_of_another_servers_allow_reads_the_decision_back(agi_factory) -> None:
    deciding, other = agi_factory(), agi_factory()  # two workers on one store
    _ready(deciding)
    decision_id = screen(deciding, "spring").variables["SCREEN_ID"]
    commands = _store_commands_during(other, lambda: _outcome(other, decision_id))
    assert any(LOOKUP_SHA in command for command in commands)
    assert DecisionLog(other.client, other.settings.log_key).outcome_of(decision_id)["answered_seconds"] == 42
    assert other.metric("callscreen_agi_outcomes_total", dialstatus="ANSWER") == 1


def test_a_flood_of_refused_peers_logs_one_warning_not_one_per_connection(agi_factory, caplog) -> None:
    env = agi_factory(host="127.0.0.1", allowed_hosts=["127.0.0.2"])
    with caplog.at_level("WARNING", logger="callscreen.agi"):
        for _ in range(20):
            env.asterisk().run(header_bytes(args=["spring"]))
    refused = [r for r in caplog.records if "refused AGI connection" in r.getMessage()]
    assert env.metric("callscreen_agi_rejected_connections_total", why="peer") == 20
    assert 1 <= len(refused) <= 2
