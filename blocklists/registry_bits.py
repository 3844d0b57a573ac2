"""Registry answers for a batch scrub: the bits of the live generation's shard bitmaps.

The dial-time path asks Redis one ``GETBIT`` per number. A scrub reads the bits of a whole batch
in the batch's round trip: one ``BITFIELD_RO`` per registry and shard, same generation, same
bits. A shard this process has already read :data:`COPY_AFTER` numbers from is copied whole
instead (one ``GET`` in a batch's round trip, at most 1 MB: about what 256 bit reads cost the
server), and its bits are then read here: a lead list spread over a whole country reads each
shard thousands of times.

Invariants:

- copies take at most ``copy_budget`` bytes per process (:data:`COPY_BUDGET`); past it, shards
  are read bit by bit;
- a copy answers for ``max_age`` seconds (:data:`COPY_MAX_AGE`), then the shard is read again: a
  change list applied to the live generation while a scrub runs is seen within that time (bit
  reads see it at once);
- the snapshot of generations is taken once, so the whole scrub reads one generation per
  registry; if it is retired and expires meanwhile (a scrub running past the grace period of a
  reload), the ``EXISTS`` on its shard index sent with every batch says so and the scrub stops
  with an error rather than read a missing shard as "not listed";
- NANP numbers (``+1`` and ten digits, area code and exchange 200–999) are located and read with numpy over
  the whole batch; copies of their shards sit in one array per registry (pages never copied
  into are never touched, so they take no memory). Numbers of other schemes are read shard by
  shard. Both give what :func:`~blocklists.numbering.locate_e164` and ``GETBIT`` give.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blocklists import storage
from blocklists.lookup import RedisRegistryLookup
from blocklists.numbering import NANP, locate_e164
from callscreen.models import RegistryStatus
from callscreen.store import Command, StoreError

COPY_AFTER = 256  # numbers read from one shard by BITFIELD_RO before the shard itself is copied
COPY_BUDGET = 400 << 20  # bytes of shard copies one scrubbing process keeps (the US list: 330 MB)
COPY_MAX_AGE = 60.0  # seconds a copy answers before the shard is read again

_FIRST_AREA = 200  # NANP area codes 200-999: one shard each
_AREAS = 800
_SHARD_BYTES = NANP.shard_bits // 8
_POWERS = 10 ** np.arange(9, -1, -1, dtype=np.int64)


@dataclass(slots=True)
class Located:
    """A batch's numbers as the registries shard them. NANP numbers: their places in the batch,
    area code (from 200) and bit offset, as arrays; the others grouped per shard name."""

    places: np.ndarray
    areas: np.ndarray
    offsets: np.ndarray
    others: list[tuple[str, np.ndarray, np.ndarray]]


def locate_batch(e164s: Sequence[str]) -> Located:
    """Where each number's bit lives: NANP numbers in one numpy pass over their characters, the
    others one by one (:func:`~blocklists.numbering.locate_e164`)."""
    count = len(e164s)
    chars = np.array(e164s, dtype="U13").view(np.uint32).reshape(count, 13) if count else np.zeros((0, 13), np.uint32)
    digits = chars[:, 2:12].astype(np.int64) - 48
    nanp = ((chars[:, 0] == 43) & (chars[:, 1] == 49) & (chars[:, 12] == 0) & (digits[:, 0] >= 2)
            & (digits[:, 3] >= 2) & ((digits >= 0) & (digits <= 9)).all(axis=1))  # exchange 200-999: offset >= 0
    places = np.flatnonzero(nanp)
    national = digits[places] @ _POWERS
    others: dict[str, tuple[list[int], list[int]]] = {}
    for position in np.flatnonzero(~nanp).tolist():
        shard, offset = locate_e164(e164s[position])
        found = others.setdefault(shard, ([], []))
        found[0].append(position)
        found[1].append(offset)
    return Located(places, national // 10**7 - _FIRST_AREA, national % 10**7 - NANP.base,
                   [(shard, np.array(positions, dtype=np.intp), np.array(offsets, dtype=np.int64))
                    for shard, (positions, offsets) in others.items()])


def bits_at(shard: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The bits of a Redis bitmap (as uint8) at ``offsets`` (bit 0 is the first byte's highest;
    past the end, 0), as int64."""
    places = offsets >> 3
    inside = (places >= 0) & (places < len(shard))
    bits = np.zeros(len(offsets), dtype=np.int64)
    bits[inside] = shard[places[inside]] >> (7 - (offsets[inside] & 7)) & 1
    return bits


@dataclass(slots=True)
class _Read:
    """One command of a batch's registry reads: ``BITFIELD_RO`` over the numbers' offsets, or
    ``GET`` of the whole shard (``fetch``) to keep as a copy."""

    bit: int  # the registry's bit in a number's pattern
    copies: _Copies
    key: str
    positions: np.ndarray
    offsets: np.ndarray
    fetch: bool = False
    area: int = -1  # a NANP shard's area code from 200; -1 for other schemes


@dataclass(slots=True)
class Planned:
    """What :meth:`RegistryBits.read` needs: the patterns known already (from copies) and the
    reads waiting for their replies."""

    patterns: np.ndarray
    reads: list[_Read] = field(default_factory=list)


class _Copies:
    """The shard copies of one registry generation kept in this process."""

    def __init__(self, slots: int) -> None:
        self.arena: np.ndarray | None = None  # NANP shards, a row each (allocated untouched)
        self.slots = slots
        self.slot_of = np.full(_AREAS, -1, dtype=np.int64)
        self.read_at = np.full(_AREAS, -np.inf)
        self.shards: dict[str, tuple[float, np.ndarray]] = {}  # shards of other schemes

    def keep_area(self, area: int, shard: bytes, now: float) -> np.ndarray:
        """Store a NANP shard; the row it sits in."""
        if self.arena is None:
            self.arena = np.zeros((self.slots, _SHARD_BYTES), dtype=np.uint8)
        slot = int(self.slot_of[area])
        if slot < 0:
            slot = self.slot_of[area] = int((self.slot_of >= 0).sum())
        data = np.frombuffer(shard, dtype=np.uint8)[:_SHARD_BYTES]
        row = self.arena[slot]
        row[:len(data)] = data
        row[len(data):] = 0
        self.read_at[area] = now
        return row


class RegistryBits:
    """Registry answers for a scrub (see the module's invariants): :meth:`plan` a batch's
    commands, send them in the batch's round trip, then :meth:`read` the patterns."""

    def __init__(self, lookup: RedisRegistryLookup, registry_ids: Sequence[str], *, copy_after: int = COPY_AFTER,
                 copy_budget: int = COPY_BUDGET, max_age: float = COPY_MAX_AGE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry_ids = tuple(registry_ids)
        self.snapshot = lookup.refresh()
        self._entries = tuple(self.snapshot.registries.get(r) for r in self.registry_ids)
        self._live = tuple((r, e[0]) for r, e in zip(self.registry_ids, self._entries, strict=True) if e is not None)
        self._statuses: dict[int, tuple[RegistryStatus, ...]] = {}
        self.copy_after, self.copy_budget, self.max_age, self.clock = copy_after, copy_budget, max_age, clock
        slots = max(0, min(_AREAS, copy_budget // _SHARD_BYTES))
        self._copies = [_Copies(slots) for _ in self._live]
        self._copied_bytes = 0
        self._bit_reads: Counter[str] = Counter()  # shard key -> numbers read from it by BITFIELD_RO

    @property
    def copied_bytes(self) -> int:
        return self._copied_bytes

    def plan(self, e164s: Sequence[str]) -> tuple[list[Command], Planned]:
        """The commands reading every number's bit in each loaded registry (``BITFIELD_RO`` or
        ``GET`` per shard, none for a shard copied here), then one ``EXISTS`` per registry."""
        located = locate_batch(e164s)
        now = self.clock()
        planned = Planned(np.zeros(len(e164s), dtype=np.int64))
        commands: list[Command] = []
        for k, (registry_id, generation) in enumerate(self._live):
            bit, copies = 1 << k, self._copies[k]
            fresh = (now - copies.read_at <= self.max_age)[located.areas]
            if fresh.any():  # answered from the copies, at once
                assert copies.arena is not None
                areas, offsets = located.areas[fresh], located.offsets[fresh]
                listed = copies.arena[copies.slot_of[areas], offsets >> 3] >> (7 - (offsets & 7)) & 1
                planned.patterns[located.places[fresh]] |= listed.astype(np.int64) * bit
            stale = ~fresh
            places, areas, offsets = located.places[stale], located.areas[stale], located.offsets[stale]
            order = np.argsort(areas, kind="stable")
            places, areas, offsets = places[order], areas[order], offsets[order]
            cuts = np.flatnonzero(areas[1:] != areas[:-1]) + 1
            for group in np.split(np.arange(len(places)), cuts) if len(places) else ():
                area = int(areas[group[0]])
                key = storage.shard_key(registry_id, generation, f"1:{area + _FIRST_AREA}")
                self._plan_shard(commands, planned, _Read(bit, copies, key, places[group], offsets[group], area=area))
            for shard, positions, shard_offsets in located.others:
                key = storage.shard_key(registry_id, generation, shard)
                kept = copies.shards.get(key)
                if kept is not None and now - kept[0] <= self.max_age:
                    planned.patterns[positions] |= bits_at(kept[1], shard_offsets) * bit
                else:
                    self._plan_shard(commands, planned, _Read(bit, copies, key, positions, shard_offsets))
        commands.extend(("EXISTS", storage.shards_key(registry_id, generation))
                        for registry_id, generation in self._live)
        return commands, planned

    def _plan_shard(self, commands: list[Command], planned: Planned, read: _Read) -> None:
        """``GET`` the shard to copy it once this process has read enough of its bits (and the
        budget allows), else ``BITFIELD_RO`` its numbers' bits."""
        if self._may_copy(read):
            read.fetch = True
            commands.append(("GET", read.key))
        else:
            self._bit_reads[read.key] += len(read.offsets)
            parts: list[Any] = ["GET", "u1", 0] * len(read.offsets)
            parts[2::3] = read.offsets.tolist()
            commands.append(("BITFIELD_RO", read.key, *parts))
        planned.reads.append(read)

    def _may_copy(self, read: _Read) -> bool:
        if self._bit_reads[read.key] + len(read.offsets) < self.copy_after:
            return False
        if read.area < 0:
            return self._copied_bytes < self.copy_budget
        return read.copies.slot_of[read.area] >= 0 or self._copied_bytes + _SHARD_BYTES <= self.copy_budget

    def read(self, planned: Planned, replies: Sequence[Any]) -> list[int]:
        """Each number's registry pattern (bit k: listed in the k-th loaded registry; see
        :meth:`statuses`) from the replies to :meth:`plan`'s commands."""
        for (registry_id, _generation), alive in zip(self._live, replies[len(replies) - len(self._live):], strict=True):
            if isinstance(alive, Exception):
                raise StoreError(f"registry {registry_id} unreadable: {alive}")
            if not alive:
                raise StoreError(f"registry {registry_id} was replaced while the scrub ran; run the scrub again")
        patterns = planned.patterns
        now = self.clock()
        for read, answer in zip(planned.reads, replies, strict=False):
            if isinstance(answer, Exception):
                registry_id = self._live[read.bit.bit_length() - 1][0]
                raise StoreError(f"registry {registry_id} lookup failed: {answer}")
            if not read.fetch:
                bits = np.array(answer, dtype=np.int64)
            elif read.area >= 0:
                first = read.copies.slot_of[read.area] < 0
                row = read.copies.keep_area(read.area, answer or b"", now)
                self._copied_bytes += _SHARD_BYTES if first else 0
                bits = bits_at(row, read.offsets)
            else:
                shard = np.frombuffer(answer or b"", dtype=np.uint8)
                old = read.copies.shards.get(read.key)
                read.copies.shards[read.key] = (now, shard)
                self._copied_bytes += len(shard) - (len(old[1]) if old is not None else 0)
                bits = bits_at(shard, read.offsets)
            patterns[read.positions] |= bits * read.bit
        return patterns.tolist()

    def statuses(self, pattern: int) -> tuple[RegistryStatus, ...]:
        """The registry statuses a pattern stands for."""
        found = self._statuses.get(pattern)
        if found is not None:
            return found
        out, k = [], 0
        for registry_id, entry in zip(self.registry_ids, self._entries, strict=True):
            if entry is None:
                out.append(RegistryStatus(registry_id, False, None))
            else:
                out.append(RegistryStatus(registry_id, bool(pattern >> k & 1), entry[1]))
                k += 1
        found = self._statuses[pattern] = tuple(out)
        return found
