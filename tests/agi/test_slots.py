"""The slot table's rules on their own: caps hold, only waiting sessions are evicted (oldest
wait first, the newcomer's own peer first at its share), and a newcomer is refused only when
nothing it could displace is waiting."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agi.slots import HEADER, OVERLOAD, PEER_LIMIT, REPLY, SlotTable, peer_of

PEERS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
operations = st.lists(st.tuples(st.sampled_from(("admit", "wait", "work", "release")),
                                st.sampled_from(PEERS), st.integers(0, 50)), max_size=120)


@settings(max_examples=300, deadline=None)
@given(ops=operations, total=st.integers(1, 6), per_peer=st.integers(1, 6))
def test_caps_hold_and_only_the_longest_waiting_session_is_evicted(ops, total, per_peer) -> None:
    table = SlotTable(total, per_peer)
    live: list = []
    for op, peer, pick in ops:
        if op == "admit":
            waiting_before = [s for s in live if s.waiting_for]
            at_share = table.held_by(peer) >= min(per_peer, total)
            slot, evicted, refusal = table.admit(peer, None, None)
            if at_share and evicted:
                assert evicted[0].peer == peer  # a peer at its share displaces its own session
            for victim in evicted:
                assert victim in waiting_before and victim.evicted and not victim.open
                candidates = [s for s in waiting_before if s.peer == victim.peer] if victim.peer == peer else \
                    waiting_before
                assert victim.waiting_since <= min(s.waiting_since for s in candidates)
                live.remove(victim)
            if slot is None:
                assert refusal in (PEER_LIMIT, OVERLOAD)
                mine = [s for s in live if s.peer == peer]
                assert not any(s.waiting_for for s in (mine if refusal == PEER_LIMIT else live))
            else:
                live.append(slot)
        elif live:
            slot = live[pick % len(live)]
            if op == "wait":
                table.wait(slot, "reply")
            elif op == "work":
                table.work(slot)
            else:
                table.release(slot)
                live.remove(slot)
        assert len(table) == len(live) <= total
        for name in PEERS:
            assert table.held_by(name) == sum(s.peer == name for s in live) <= min(per_peer, total)
        assert table.waiting == sum(bool(s.waiting_for) for s in live)


def test_an_evicted_session_never_waits_again() -> None:
    table = SlotTable(1, 1)
    first, _, _ = table.admit("10.0.0.1", None, None)
    second, evicted, _ = table.admit("10.0.0.1", None, None)
    assert evicted == [first] and first.evicted_waiting_for == "header"
    table.wait(first, "reply")  # a cancelled session reaching its next command
    assert table.waiting == 1 and len(table) == 1
    third, evicted, _ = table.admit("10.0.0.1", None, None)
    assert evicted == [second] and third is not None and len(table) == 1


def test_an_ipv4_mapped_address_is_the_same_peer_as_its_ipv4_address() -> None:
    assert peer_of("::ffff:10.0.0.1") == peer_of("10.0.0.1") == "10.0.0.1"
    assert peer_of("fe80::1%eth0") == "fe80::1"


def test_a_reply_wait_within_the_grace_is_not_evicted_but_a_header_wait_is() -> None:
    table = SlotTable(2, 2, reply_grace=60.0)
    answering, _, _ = table.admit("10.0.0.1", None, None)
    table.wait(answering, REPLY)  # the longest wait, but its reply may just be queued
    idle, _, _ = table.admit("10.0.0.1", None, None)
    assert table.waiting_on(REPLY) == 1 and table.waiting_on(HEADER) == 1
    newcomer, evicted, _ = table.admit("10.0.0.1", None, None)
    assert evicted == [idle] and newcomer is not None
    table.work(newcomer)
    refused, evicted, refusal = table.admit("10.0.0.1", None, None)
    assert (refused, evicted, refusal) == (None, [], OVERLOAD)
    table.reply_grace = 0.0  # the reply is now overdue: that session has stalled
    _, evicted, _ = table.admit("10.0.0.1", None, None)
    assert evicted == [answering]
