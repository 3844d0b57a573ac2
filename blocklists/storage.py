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

Building (numpy): a shard with few numbers keeps arrays of offsets and packs them when folded;
a dense shard marks numbers in a *byte* map (one byte per possible number, one fancy
assignment per batch), then packs it 8:1 into the bitmap (``np.packbits``). Byte maps are kept
for at most ``memory_bytes``; beyond that the least recently used is packed and merged (OR)
into its bitmap — as is any shard the last batches did not touch.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

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

def pack(bytemap: bytes | bytearray | np.ndarray) -> bytes:
    """Byte map (each byte 0 or 1, length a multiple of 8) -> bitmap in Redis bit order
    (byte ``i`` of the map is bit ``i``: the most significant bit of byte ``i // 8`` first,
    exactly GETBIT's order); ``b""`` when no byte is set."""
    if len(bytemap) % 8:
        raise ValueError("byte map length must be a multiple of 8")
    bits = np.packbits(np.frombuffer(bytemap, np.uint8) != 0)
    return bits.tobytes() if bits.any() else b""


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

def _packed(offsets: np.ndarray, size: int) -> np.ndarray:
    """Bitmap (uint8, Redis bit order) of ``size`` bits with the bits at ``offsets`` set."""
    flags = np.zeros(size, np.bool_)
    flags[offsets] = True
    return np.packbits(flags)  # big-endian bit order: offset 0 is the most significant bit


def _or(left: np.ndarray | None, right: np.ndarray) -> np.ndarray:
    """Bitwise OR of two bitmaps of possibly different lengths (the longer one is reused)."""
    if left is None:
        return right
    if len(left) < len(right):
        left, right = right, left
    left[:len(right)] |= right
    return left


class BitmapBuilder:
    """Collects registry keys (see :class:`~blocklists.numbering.Scheme`) into shard bitmaps.

    A shard starts *sparse* (arrays of offsets, packed into a bitmap when folded — cheap for a
    few thousand numbers) and turns into a byte map (one byte per possible number, marked with
    one numpy fancy assignment, packed 8:1 with ``np.packbits``) once it holds more than
    ``1/128`` of its possible numbers.
    """

    def __init__(self, scheme: Scheme, memory_bytes: int = 4 << 30) -> None:
        self.scheme = scheme
        self._unit = 10**scheme.tail
        self._size = scheme.shard_bits  # possible numbers (bits) per shard
        self._sparse_limit = self._size // 128
        self._sparse: dict[int, list[np.ndarray]] = {}
        self._sparse_counts: dict[int, int] = {}
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._max_maps = max(1, memory_bytes // self._size)
        self._packed: dict[int, np.ndarray] = {}
        self._touched: dict[int, int] = {}  # shard id -> number of the last batch that marked it
        self._batch = 0
        self.accepted = 0  # keys added, duplicates included

    def add(self, keys: np.ndarray | Sequence[int]) -> None:
        """Mark ``keys`` (any order; sorted input is cheapest)."""
        keys = np.asarray(keys, np.int64)
        if not len(keys):
            return
        if len(keys) > 1 and (keys[1:] < keys[:-1]).any():
            keys = np.sort(keys)
        self.accepted += len(keys)
        shard_ids = keys // self._unit
        cuts = [0, *(np.flatnonzero(shard_ids[1:] != shard_ids[:-1]) + 1).tolist(), len(keys)]
        for start, end in itertools.pairwise(cuts):
            shard_id = int(shard_ids[start])
            offsets = keys[start:end] - (shard_id * self._unit + self.scheme.base)
            if offsets[0] < 0:  # below the scheme's base: no number of the scheme
                offsets = offsets[np.searchsorted(offsets, 0):]
            bytemap = self._maps.get(shard_id)
            if bytemap is None:
                self._sparse.setdefault(shard_id, []).append(offsets)
                count = self._sparse_counts[shard_id] = self._sparse_counts.get(shard_id, 0) + len(offsets)
                if count > self._sparse_limit:
                    bytemap = self._bytemap(shard_id)
                    offsets = np.concatenate(self._sparse.pop(shard_id))
                    del self._sparse_counts[shard_id]
            if bytemap is not None:
                self._maps.move_to_end(shard_id)
                bytemap[offsets] = True
            self._touched[shard_id] = self._batch
        self._batch += 1
        # Sorted input (the FTC delivers per area code) never returns to a shard: fold what the
        # last batches did not touch, so memory stays at a few shards. Unsorted input touches
        # every shard in every batch and keeps them.
        for shard_id in [s for s in self._maps if self._touched[s] < self._batch - 2]:
            self._fold(shard_id, self._maps.pop(shard_id))
        for shard_id in [s for s in self._sparse if self._touched[s] < self._batch - 2]:
            self._fold_sparse(shard_id)

    def _bytemap(self, shard_id: int) -> np.ndarray:
        while len(self._maps) >= self._max_maps:
            self._fold(*self._maps.popitem(last=False))
        bytemap = self._maps[shard_id] = np.zeros(self._size, np.bool_)
        return bytemap

    def _fold(self, shard_id: int, bytemap: np.ndarray) -> None:
        self._packed[shard_id] = _or(self._packed.get(shard_id), np.packbits(bytemap))

    def _fold_sparse(self, shard_id: int) -> None:
        offsets = np.concatenate(self._sparse.pop(shard_id))
        del self._sparse_counts[shard_id]
        if len(offsets):
            self._packed[shard_id] = _or(self._packed.get(shard_id), _packed(offsets, int(offsets.max()) + 1))

    def shards(self) -> Iterator[tuple[int, bytes]]:
        """Every non-empty shard as (shard id, bitmap trimmed after its last set byte), sorted.

        Consumes the builder: byte maps are released as they are packed.
        """
        while self._maps:
            self._fold(*self._maps.popitem(last=False))
        while self._sparse:
            self._fold_sparse(next(iter(self._sparse)))
        for shard_id in sorted(self._packed):
            bitmap = self._packed.pop(shard_id).tobytes().rstrip(b"\0")
            if bitmap:
                yield shard_id, bitmap
