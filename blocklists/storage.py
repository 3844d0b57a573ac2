"""Compact registry storage: one Redis bitmap per shard, built in memory, written whole.

Key schema (all under ``cs:reg:``; documented in ``docs/registries.md``):

- ``cs:reg:index`` — set of loaded registry ids
- ``cs:reg:<id>:current`` — JSON of the live generation's metadata (the pointer readers use)
- ``cs:reg:<id>:gen`` — counter of generations
- ``cs:reg:<id>:lock`` — held while an import or change list writes
- ``cs:reg:<id>:history`` — the last imports, newest first (JSON)
- ``cs:reg:<id>:v<gen>:shards`` — set of the shard names a generation holds
- ``cs:reg:<id>:v<gen>:<cc>:<prefix>`` — the bitmap: bit ``offset`` set = number listed

Bitmaps use Redis bit order (offset 0 is the most significant bit of byte 0) so a lookup is
``GETBIT <shard key> <offset>``. A shard is trimmed after its last set byte: Redis answers 0
for bits past the end of a string.

Building: a shard with few numbers keeps a list of offsets and sets their bits one by one;
a dense shard marks numbers in a *byte* map (one byte per possible number; setting many bytes
is a C-level loop), then packs it 8:1 into the bitmap with a few big-integer shifts. Byte maps
are kept for at most ``memory_bytes``; beyond that the least recently used is packed and
merged (OR) into its bitmap — as is any shard the last batches did not touch.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Iterator
from itertools import islice, repeat
from operator import sub

from blocklists.numbering import Scheme

PREFIX = "cs:reg:"
INDEX_KEY = PREFIX + "index"
EVENTS_CHANNEL = PREFIX + "events"


def current_key(registry_id: str) -> str:
    return f"{PREFIX}{registry_id}:current"


def generation_counter_key(registry_id: str) -> str:
    return f"{PREFIX}{registry_id}:gen"


def lock_key(registry_id: str) -> str:
    return f"{PREFIX}{registry_id}:lock"


def history_key(registry_id: str) -> str:
    return f"{PREFIX}{registry_id}:history"


def shards_key(registry_id: str, generation: int) -> str:
    return f"{PREFIX}{registry_id}:v{generation}:shards"


def shard_key(registry_id: str, generation: int, shard: str) -> str:
    return f"{PREFIX}{registry_id}:v{generation}:{shard}"


# --- packing -----------------------------------------------------------------------------------

def pack(bytemap: bytes | bytearray) -> bytes:
    """Byte map (each byte 0 or 1, length a multiple of 8) -> bitmap in Redis bit order.

    Byte ``i`` holds its flag in bit 0; shifting the whole map right by 7, 14, 28 bits and
    OR-ing gathers the 8 flags of each aligned group into the group's last byte, flag ``k``
    of the group at bit ``7 - k`` — exactly GETBIT's order. No carries can occur because
    every (byte, bit) position receives at most one flag.
    """
    size = len(bytemap)
    if size % 8:
        raise ValueError("byte map length must be a multiple of 8")
    value = int.from_bytes(bytemap, "big")
    if not value:
        return b""
    value |= value >> 7
    value |= value >> 14
    value |= value >> 28
    return value.to_bytes(size, "big")[7::8]


def merge(left: bytes, right: bytes) -> bytes:
    """Bitwise OR of two bitmaps of possibly different lengths (Redis bit order)."""
    size = max(len(left), len(right))
    a = int.from_bytes(left.ljust(size, b"\0"), "big")
    b = int.from_bytes(right.ljust(size, b"\0"), "big")
    return (a | b).to_bytes(size, "big")


def popcount(bitmap: bytes) -> int:
    return int.from_bytes(bitmap, "big").bit_count()


def offsets(bitmap: bytes, limit: int | None = None) -> Iterator[int]:
    """Set bit offsets of a bitmap, ascending (stops after ``limit``)."""
    found = 0
    for index, byte in enumerate(bitmap):
        if not byte:
            continue
        for bit in range(8):
            if byte & (0x80 >> bit):
                yield index * 8 + bit
                found += 1
                if limit is not None and found >= limit:
                    return


# --- building -------------------------------------------------------------------------------------

class BitmapBuilder:
    """Collects registry keys (see :class:`~blocklists.numbering.Scheme`) into shard bitmaps.

    A shard starts *sparse* (a list of offsets, set bit by bit when folded — cheap for a few
    thousand numbers) and turns into a byte map once it holds more than ``1/128`` of its
    possible numbers (where the C-level byte map and 8:1 packing win).
    """

    def __init__(self, scheme: Scheme, memory_bytes: int = 4 << 30) -> None:
        self.scheme = scheme
        self._unit = 10**scheme.tail
        self._sparse_limit = self._unit // 128
        self._sparse: dict[int, list[int]] = {}
        self._maps: OrderedDict[int, bytearray] = OrderedDict()
        self._max_maps = max(1, memory_bytes // self._unit)
        self._packed: dict[int, bytes] = {}
        self._touched: dict[int, int] = {}  # shard id -> number of the last batch that marked it
        self._batch = 0
        self.accepted = 0  # keys added, duplicates included

    def add(self, keys: list[int]) -> None:
        """Mark ``keys`` (any order; the list is sorted in place)."""
        if not keys:
            return
        keys.sort()
        self.accepted += len(keys)
        unit, start, size = self._unit, 0, len(keys)
        while start < size:
            shard_id = keys[start] // unit
            end = bisect_left(keys, (shard_id + 1) * unit, start)
            offsets = map(sub, islice(keys, start, end), repeat(shard_id * unit))
            bytemap = self._maps.get(shard_id)
            if bytemap is None:
                sparse = self._sparse.setdefault(shard_id, [])
                sparse.extend(offsets)
                if len(sparse) > self._sparse_limit:
                    bytemap = self._bytemap(shard_id)
                    offsets = iter(self._sparse.pop(shard_id))
            if bytemap is not None:
                self._maps.move_to_end(shard_id)
                deque(map(bytemap.__setitem__, offsets, repeat(1)), maxlen=0)
            self._touched[shard_id] = self._batch
            start = end
        self._batch += 1
        # Sorted input (the FTC delivers per area code) never returns to a shard: fold what the
        # last batches did not touch, so memory stays at a few shards. Unsorted input touches
        # every shard in every batch and keeps them.
        for shard_id in [s for s in self._maps if self._touched[s] < self._batch - 2]:
            self._fold(shard_id, self._maps.pop(shard_id))
        for shard_id in [s for s in self._sparse if self._touched[s] < self._batch - 2]:
            self._fold_sparse(shard_id, self._sparse.pop(shard_id))

    def _bytemap(self, shard_id: int) -> bytearray:
        while len(self._maps) >= self._max_maps:
            self._fold(*self._maps.popitem(last=False))
        bytemap = self._maps[shard_id] = bytearray(self._unit)
        return bytemap

    def _keep(self, shard_id: int, bits: bytes) -> None:
        previous = self._packed.get(shard_id)
        self._packed[shard_id] = merge(previous, bits) if previous else bits

    def _fold(self, shard_id: int, bytemap: bytearray) -> None:
        base = self.scheme.base
        last = bytemap.rfind(1)  # pack only up to the last marked number
        if last < base:
            return
        end = base + ((last - base) // 8 + 1) * 8
        self._keep(shard_id, pack(memoryview(bytemap)[base:end]))

    def _fold_sparse(self, shard_id: int, offsets: list[int]) -> None:
        base = self.scheme.base
        valid = [o - base for o in offsets if o >= base]
        if not valid:
            return
        bits = bytearray(max(valid) // 8 + 1)
        for offset in valid:
            bits[offset >> 3] |= 0x80 >> (offset & 7)
        self._keep(shard_id, bytes(bits))

    def shards(self) -> Iterator[tuple[int, bytes]]:
        """Every non-empty shard as (shard id, bitmap trimmed after its last set byte), sorted.

        Consumes the builder: byte maps are released as they are packed.
        """
        while self._maps:
            self._fold(*self._maps.popitem(last=False))
        while self._sparse:
            self._fold_sparse(*self._sparse.popitem())
        for shard_id in sorted(self._packed):
            bitmap = self._packed.pop(shard_id).rstrip(b"\0")
            if bitmap:
                yield shard_id, bitmap
