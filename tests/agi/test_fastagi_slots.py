"""Connection slots under stalled, slow and greedy peers: sessions cannot starve each other.

Peers that send a header and then never reply (or never finish the header) are evicted,
oldest wait first, to make room for live calls; one address cannot hold more than its
share; header lines may end in CRLF; every answer written is counted."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from agi_env import AGIEnv
from asterisk_client import closed_within, header_bytes
from test_fastagi_failures import _pause_store
from test_fastagi_reasons import RU_NUMBER, campaign, consent

UNKNOWN_NUMBER = "89997654321"  # no consent: a real BLOCK no_basis
PARTIAL_HEADER = b"agi_network: yes\nagi_request: agi://127.0.0.1/screen\n"


def _ready(env: AGIEnv) -> None:
    campaign(env, "spring")
    consent(env, RU_NUMBER)


def _connect(env: AGIEnv, source: str | None = None) -> socket.socket:
    return socket.create_connection(("127.0.0.1", env.port), timeout=5,
                                    source_address=(source, 0) if source else None)


def stall_in_header(env: AGIEnv, source: str | None = None) -> socket.socket:
    """A peer that starts its header and never finishes it."""
    sock = _connect(env, source)
    sock.sendall(PARTIAL_HEADER)
    return sock


def stall_on_reply(env: AGIEnv, source: str | None = None) -> socket.socket:
    """A peer that sends a whole screening header, reads the answer's command, never replies."""
    sock = _connect(env, source)
    sock.sendall(header_bytes(args=["spring"]))
    received = b""
    while not received.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, "the server closed before sending its first command"
        received += chunk
    assert received.startswith(b"EXEC MSet SCREEN_ID=")
    return sock


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def _screen(env: AGIEnv, number: str, source: str | None = None):
    return env.asterisk().run(header_bytes(args=["spring", number]), source=source)


# --- stalled peers -----------------------------------------------------------------------------


def test_stalled_peers_beyond_the_slot_cap_leave_every_real_screening_its_answer(agi_factory) -> None:
    """The 600-peers-on-512-slots case, scaled: 48 peers stalled on a reply or inside their header
    hold all 32 slots (timeouts far away), then 100 real screenings all get their real answer."""
    # the deadline is not what this test is about: a busy host must not turn real answers into BLOCKs
    env = agi_factory(agi_max_connections=32, agi_read_timeout=30.0, agi_reply_timeout=30.0,
                      agi_stalled_reply_after=0.2, agi_decision_deadline_ms=2000)
    _ready(env)
    stalled = [stall_on_reply(env) if i % 2 else stall_in_header(env) for i in range(48)]
    wait_until(lambda: env.server.slots.waiting == 32 == env.server.open_connections)
    assert env.metric("callscreen_agi_session_errors_total", kind="evicted") == 16
    time.sleep(0.25)  # the replies are now overdue: every stalled session may be evicted

    numbers = [RU_NUMBER if i % 2 else UNKNOWN_NUMBER for i in range(100)]
    answers: dict[int, tuple[str, str]] = {}

    def caller(indexes: range) -> None:
        for i in indexes:
            session = _screen(env, numbers[i])
            answers[i] = (session.result, session.reason)

    threads = [threading.Thread(target=caller, args=(range(k, 100, 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    expected = {i: ("ALLOW", "consent") if n == RU_NUMBER else ("BLOCK", "no_basis") for i, n in enumerate(numbers)}
    assert answers == expected
    assert env.metric("callscreen_agi_rejected_connections_total", why="overload") == 0
    assert env.metric("callscreen_agi_answers_total", result="ALLOW", reason="consent") == 50
    assert env.metric("callscreen_agi_answers_total", result="BLOCK", reason="no_basis") == 50
    assert closed_within(stalled[0], 2.0)  # the oldest stalled peers made the room
    for sock in stalled:
        sock.close()


def test_newcomer_evicts_the_session_stalled_longest_on_a_reply(agi_factory) -> None:
    env = agi_factory(agi_max_connections=2, agi_reply_timeout=30.0, agi_stalled_reply_after=0.2)
    _ready(env)
    oldest = stall_on_reply(env)
    time.sleep(0.05)
    newer = stall_on_reply(env)
    time.sleep(0.25)
    session = _screen(env, RU_NUMBER)  # the server is full of peers that will never reply
    assert (session.result, session.reason) == ("ALLOW", "consent")
    assert closed_within(oldest, 2.0)
    assert not closed_within(newer, 0.3)
    assert env.metric("callscreen_agi_session_errors_total", kind="evicted") == 1
    for sock in (oldest, newer):
        sock.close()


def test_a_reply_not_yet_overdue_keeps_its_slot_and_the_newcomer_is_closed_unanswered(agi_factory) -> None:
    """A decided session whose reply is late but within the grace may just be queued behind
    a busy server: it is not thrown away for a newcomer."""
    env = agi_factory(agi_max_connections=1, agi_stalled_reply_after=5.0)
    _ready(env)
    slow: list = []
    worker = threading.Thread(target=lambda: slow.append(
        env.asterisk().run(header_bytes(args=["spring", RU_NUMBER]), reply_delay=0.3)))
    worker.start()
    wait_until(lambda: env.server.slots.waiting_on("reply") == 1 == env.server.open_connections)
    refused = _screen(env, RU_NUMBER)
    worker.join(10)
    assert refused.result == "" and refused.commands == []
    assert env.metric("callscreen_agi_rejected_connections_total", why="overload") == 1
    assert slow[0].result == "ALLOW" and env.metric("callscreen_agi_session_errors_total", kind="evicted") == 0


def test_server_full_of_sessions_being_decided_closes_the_newcomer_unanswered(agi_factory) -> None:
    """Only a session waiting on its peer may be evicted: a session being decided keeps its slot."""
    env = agi_factory(agi_max_connections=2, agi_decision_deadline_ms=4000)
    _ready(env)
    results: list = []
    workers = [threading.Thread(target=lambda: results.append(_screen(env, RU_NUMBER))) for _ in range(2)]
    _pause_store(env, 1500)
    for worker in workers:
        worker.start()
    wait_until(lambda: env.server.open_connections == 2 and env.server.slots.waiting == 0)
    refused = _screen(env, RU_NUMBER)
    for worker in workers:
        worker.join(10)
    assert refused.result == "" and refused.commands == []  # dialplan: empty result → BLOCK
    assert env.metric("callscreen_agi_rejected_connections_total", why="overload") == 1
    assert [r.result for r in results] == ["ALLOW", "ALLOW"]


# --- per-peer share ------------------------------------------------------------------------------


def test_a_lone_asterisk_may_use_every_slot_beyond_its_share(agi_factory) -> None:
    """The per-peer share binds only when the server is full: one Asterisk host is not starved."""
    env = agi_factory(agi_max_connections=4, agi_max_connections_per_peer=1, agi_decision_deadline_ms=4000)
    _ready(env)
    results: list = []
    calls = [threading.Thread(target=lambda: results.append(_screen(env, RU_NUMBER))) for _ in range(4)]
    _pause_store(env, 1000)
    for call in calls:
        call.start()
    wait_until(lambda: env.server.slots.held_by("127.0.0.1") == 4)
    for call in calls:
        call.join(10)
    assert [r.result for r in results] == ["ALLOW"] * 4
    assert env.metric("callscreen_agi_rejected_connections_total", why="peer_limit") == 0


def test_when_full_a_peer_over_its_share_gives_way_first(agi_factory) -> None:
    env = agi_factory(agi_max_connections=4, agi_max_connections_per_peer=2, agi_read_timeout=30.0,
                      allowed_hosts=["127.0.0.0/8"])
    _ready(env)
    mine = stall_in_header(env, "127.0.0.1")  # the oldest wait of all, but within its peer's share
    time.sleep(0.05)
    greedy = [stall_in_header(env, "127.0.0.2") for _ in range(3)]  # one over its share of 2
    wait_until(lambda: env.server.open_connections == 4)
    session = _screen(env, RU_NUMBER, "127.0.0.1")
    assert session.result == "ALLOW"
    assert closed_within(greedy[0], 2.0)
    assert not closed_within(mine, 0.2)
    for sock in (mine, *greedy):
        sock.close()


def test_a_peer_at_its_share_displaces_only_its_own_stalled_sessions(agi_factory) -> None:
    env = agi_factory(agi_max_connections=4, agi_max_connections_per_peer=2, agi_read_timeout=30.0,
                      allowed_hosts=["127.0.0.0/8"])
    elsewhere = [stall_in_header(env, "127.0.0.1") for _ in range(2)]  # the oldest waits of all
    time.sleep(0.05)
    first, second = stall_in_header(env, "127.0.0.2"), stall_in_header(env, "127.0.0.2")
    wait_until(lambda: env.server.open_connections == 4)
    third = stall_in_header(env, "127.0.0.2")
    assert closed_within(first, 2.0)
    assert not any(closed_within(sock, 0.1) for sock in elsewhere)
    assert env.server.slots.held_by("127.0.0.2") == 2
    for sock in (*elsewhere, first, second, third):
        sock.close()


def test_a_peer_at_its_share_with_every_session_working_is_refused_when_full(agi_factory) -> None:
    env = agi_factory(agi_max_connections=3, agi_max_connections_per_peer=2, agi_decision_deadline_ms=4000,
                      agi_read_timeout=30.0, allowed_hosts=["127.0.0.0/8"])
    _ready(env)
    idle_elsewhere = stall_in_header(env, "127.0.0.1")
    results: list = []
    greedy = [threading.Thread(target=lambda: results.append(_screen(env, RU_NUMBER, "127.0.0.2")))
              for _ in range(2)]
    _pause_store(env, 1500)
    for call in greedy:
        call.start()
    wait_until(lambda: env.server.slots.held_by("127.0.0.2") == 2 and env.server.slots.waiting == 1)
    refused = _screen(env, RU_NUMBER, "127.0.0.2")  # may not displace the other peer's idle session
    for call in greedy:
        call.join(10)
    assert refused.commands == [] and refused.result == ""
    assert env.metric("callscreen_agi_rejected_connections_total", why="peer_limit") == 1
    assert not closed_within(idle_elsewhere, 0.1)
    assert [r.result for r in results] == ["ALLOW", "ALLOW"]
    idle_elsewhere.close()


# --- header line ends ------------------------------------------------------------------------------


@pytest.mark.parametrize("line_ends", [
    pytest.param(lambda h: h.replace(b"\n", b"\r\n"), id="crlf"),
    pytest.param(lambda h: h[:-1] + b"\r\n", id="lf-lines-crlf-blank-line"),
    pytest.param(lambda h: h[:-2].replace(b"\n", b"\r\n") + b"\n\n", id="crlf-lines-lf-blank-line"),
    pytest.param(lambda h: b"".join(line + (b"\r\n" if i % 2 else b"\n")
                                    for i, line in enumerate(h.split(b"\n")[:-1])), id="alternating"),
])
def test_header_lines_ending_in_crlf_are_accepted(agi: AGIEnv, line_ends) -> None:
    _ready(agi)
    session = agi.asterisk().run(line_ends(header_bytes(args=["spring", RU_NUMBER])))
    assert (session.result, session.reason) == ("ALLOW", "consent")
    assert session.seconds < 1.5  # answered at once, not after the header timeout


# --- counting ------------------------------------------------------------------------------------


def test_every_answer_is_counted_including_blocks_for_malformed_headers(agi: AGIEnv) -> None:
    _ready(agi)
    sessions = [
        agi.asterisk().run(header_bytes(calleridname="evil\x1bname", args=["spring"])),  # malformed header
        agi.asterisk().run(header_bytes(script="bogus", args=["spring"])),  # unknown script
        agi.asterisk().run(header_bytes(args=["spring", RU_NUMBER, "extra"])),  # wrong argument count
        _screen(agi, RU_NUMBER),
        _screen(agi, UNKNOWN_NUMBER),
    ]
    written = Counter((s.result, s.reason) for s in sessions)
    assert written == {("BLOCK", "screening_unavailable"): 3, ("ALLOW", "consent"): 1, ("BLOCK", "no_basis"): 1}
    for (result, reason), count in written.items():
        assert agi.metric("callscreen_agi_answers_total", result=result, reason=reason) == count
