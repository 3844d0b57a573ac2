"""Connection slots of the FastAGI server: a total cap, a per-peer share, and eviction of the
session that has waited longest on its peer.

A session is either *working* (its header is parsed and callscreen is deciding or recording) or
*waiting on its peer* (for the header, or for the reply to a command). Only a waiting session
can be stalled by its peer, so only waiting sessions are ever evicted: a live Asterisk sends its
header at once and replies to ``SET VARIABLE`` in well under a millisecond, so whichever session
has been waiting longest is the one least likely to be a live call.

A session waiting for its header has cost nothing yet and may be evicted at once. A session
waiting for a reply has been decided (and its decision logged), and under heavy load its reply
may simply sit unread while the server catches up; so it counts as stalled, and may be evicted,
only once it has waited ``reply_grace`` seconds.

The per-peer share binds only when the table is full (a lone Asterisk may use every slot): then
a peer holding its share or more can only displace its own stalled sessions, and the sessions of
a peer over its share are the first to give way to other peers.

Invariants: the table never holds more than ``total`` slots; a newcomer is refused only when the
table is full and nothing it may displace has stalled (working sessions, and replies not yet
overdue, are never displaced); an evicted session leaves the table at once
(its task is cancelled and its socket aborted) and never waits again, so the slot it held is
free before the newcomer is admitted.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from functools import lru_cache
from typing import Any

PEER_LIMIT = "peer_limit"
OVERLOAD = "overload"
HEADER = "header"
REPLY = "reply"


@lru_cache(maxsize=4096)  # Asterisk connects from a handful of addresses: parse each once
def peer_of(host: str) -> str:
    """One identity per host: an IPv4-mapped IPv6 address counts as its IPv4 address."""
    host = host.split("%")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class Slot:
    """One admitted connection: its peer, its task and transport, and what it waits for."""

    __slots__ = ("evicted", "evicted_waiting_for", "open", "peer", "task", "transport", "waiting_for",
                 "waiting_since")

    def __init__(self, peer: str, task: Any, transport: Any) -> None:
        self.peer = peer
        self.task = task
        self.transport = transport
        self.waiting_for = ""  # "header", "reply" or "" while working
        self.waiting_since = 0.0
        self.evicted = False
        self.evicted_waiting_for = ""
        self.open = True


class SlotTable:
    """Admits, tracks and evicts connections; single-threaded (one event loop)."""

    def __init__(self, total: int, per_peer: int, reply_grace: float = 0.0) -> None:
        if total < 1 or per_peer < 1 or reply_grace < 0:
            raise ValueError("connection limits must be positive and the reply grace not negative")
        self.total = total
        self.per_peer = min(per_peer, total)
        self.reply_grace = reply_grace
        self._count = 0
        self._by_peer: dict[str, int] = {}
        # waiting sessions, oldest wait first: by what they wait for, and by (peer, what)
        self._queues: dict[str, OrderedDict[int, Slot]] = {HEADER: OrderedDict(), REPLY: OrderedDict()}
        self._peer_queues: dict[tuple[str, str], OrderedDict[int, Slot]] = {}

    def __len__(self) -> int:
        return self._count

    def held_by(self, peer: str) -> int:
        return self._by_peer.get(peer, 0)

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def waiting_on(self, what: str) -> int:
        """Sessions waiting for ``HEADER`` or for a ``REPLY``."""
        return len(self._queues[what])

    def admit(self, peer: str, task: Any, transport: Any) -> tuple[Slot | None, list[Slot], str]:
        """A slot for a newcomer from ``peer``, making room by eviction if the table is full.

        While the table has room every peer is admitted, however many slots it holds (a lone
        Asterisk may use them all). When it is full, a peer holding its share or more makes room
        from its own stalled sessions only; any other peer evicts the longest-stalled session
        of the peers over their share first, else the longest-stalled session of all.
        Returns ``(slot, evicted, refusal)``: the slot is None (and ``refusal`` names why) when
        there is nothing the newcomer may evict. The new slot starts out waiting for its header.
        """
        evicted: list[Slot] = []
        if self._count >= self.total:
            now = time.monotonic()
            if self._by_peer.get(peer, 0) >= self.per_peer:
                victim = self._peer_victim(peer, now)
                # refused for its share only if another peer's stalled session was out of reach
                others = self._victim(self._queues[HEADER], self._queues[REPLY], now)
                refusal = PEER_LIMIT if others is not None else OVERLOAD
            else:
                greedy = [p for p, held in self._by_peer.items() if held > self.per_peer]
                victim = self._oldest([self._peer_victim(p, now) for p in greedy])
                if victim is None:
                    victim = self._victim(self._queues[HEADER], self._queues[REPLY], now)
                refusal = OVERLOAD
            if victim is None:
                return None, evicted, refusal
            evicted.append(self._evict(victim))
        slot = Slot(peer, task, transport)
        self._count += 1
        self._by_peer[peer] = self._by_peer.get(peer, 0) + 1
        self.wait(slot, HEADER)
        return slot, evicted, ""

    def wait(self, slot: Slot, what: str) -> None:
        """``slot`` now waits on its peer (for ``HEADER`` or ``REPLY``); it is the newest waiter."""
        self._unwait(slot)
        if not slot.open:  # released or evicted: never waits again
            return
        slot.waiting_for, slot.waiting_since = what, time.monotonic()
        key = id(slot)
        self._queues[what][key] = slot
        self._peer_queues.setdefault((slot.peer, what), OrderedDict())[key] = slot

    def work(self, slot: Slot) -> None:
        """``slot``'s peer has delivered; the session is working and cannot be evicted."""
        self._unwait(slot)

    def release(self, slot: Slot) -> None:
        """The connection ended (or was evicted); idempotent."""
        self._unwait(slot)
        if not slot.open:
            return
        slot.open = False
        self._count -= 1
        held = self._by_peer[slot.peer] - 1
        if held:
            self._by_peer[slot.peer] = held
        else:
            del self._by_peer[slot.peer]

    def _victim(self, headers: OrderedDict[int, Slot] | None, replies: OrderedDict[int, Slot] | None,
                now: float) -> Slot | None:
        """The longest waiter of the two queues; a reply waiter only once its reply is overdue."""
        header = next(iter(headers.values()), None) if headers else None
        reply = next(iter(replies.values()), None) if replies else None
        if reply is not None and now - reply.waiting_since < self.reply_grace:
            reply = None
        return self._oldest([header, reply])

    def _peer_victim(self, peer: str, now: float) -> Slot | None:
        return self._victim(self._peer_queues.get((peer, HEADER)), self._peer_queues.get((peer, REPLY)), now)

    @staticmethod
    def _oldest(candidates: list[Slot | None]) -> Slot | None:
        found = [c for c in candidates if c is not None]
        return min(found, key=lambda c: c.waiting_since) if found else None

    def _unwait(self, slot: Slot) -> None:
        what = slot.waiting_for
        if not what:
            return
        key = id(slot)
        self._queues[what].pop(key, None)
        mine = self._peer_queues.get((slot.peer, what))
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self._peer_queues[(slot.peer, what)]
        slot.waiting_for = ""

    def _evict(self, slot: Slot) -> Slot:
        """Cut a waiting session: mark it, cancel its task, abort its socket, free its slot."""
        slot.evicted, slot.evicted_waiting_for = True, slot.waiting_for
        self.release(slot)
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
        if slot.transport is not None:
            slot.transport.abort()
        return slot
