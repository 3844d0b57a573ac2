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


def expected_victim(live: list, peer: str, total: int, share: int):
    """The rule, restated over plain lists: whom a newcomer from ``peer`` displaces (None: no
    one) when the table is full; every waiting session is stalled (no reply grace here)."""
    waiting = sorted((s for s in live if s.waiting_for), key=lambda s: s.waiting_since)
    held = {p: sum(s.peer == p for s in live) for p in PEERS}
    share = min(share, total)
    if held[peer] >= share:
        return next((s for s in waiting if s.peer == peer), None)
    greedy = [s for s in waiting if held[s.peer] > share]
    return (greedy or waiting or [None])[0]


@settings(max_examples=300, deadline=None)
@given(ops=operations, total=st.integers(1, 6), per_peer=st.integers(1, 6))
def test_caps_hold_and_the_newcomer_displaces_exactly_whom_the_rule_names(ops, total, per_peer) -> None:
    table = SlotTable(total, per_peer)
    live: list = []
    for op, peer, pick in ops:
        if op == "admit":
            full = len(live) >= total
            expected = expected_victim(live, peer, total, per_peer) if full else None
            slot, evicted, refusal = table.admit(peer, None, None)
            assert evicted == ([expected] if expected is not None else [])
            for victim in evicted:
                assert victim.evicted and not victim.open
                live.remove(victim)
            if slot is None:
                assert full and expected is None and refusal in (PEER_LIMIT, OVERLOAD)
            else:
                assert not full or expected is not None
                live.append(slot)
        elif live:
            slot = live[pick % len(live)]
            if op == "wait":
                table.wait(slot, REPLY)
            elif op == "work":
                table.work(slot)
            else:
                table.release(slot)
                live.remove(slot)
        assert len(table) == len(live) <= total
        for name in PEERS:
            assert table.held_by(name) == sum(s.peer == name for s in live)
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
