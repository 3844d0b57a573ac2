"""Vectorized reading of NANP registry lines in the FTC's own spellings (numpy).

A chunk of whole lines is viewed as an array of bytes. A line in one of the canonical
spellings — ``201,2001234`` or ``2012001234``, each optionally ending in ``\\r`` — is
recognised by its byte pattern, checked (area code and exchange start with 2-9) and turned
into its registry key ``1 NPA NXX XXXX`` with integer arithmetic over whole columns.

Every other line (blank, spaced, short, long, letters, another spelling, an invalid area code
or exchange) is handed back with its index in the chunk, for the line-by-line parser to judge.
Invariant: for the ``ftc`` and ``lines`` formats, the keys returned plus what the line parser
makes of the lines handed back are exactly what the line parser makes of the whole chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NEWLINE, COMMA, CR, ZERO = 10, 44, 13, 48
KEY_BASE = 10_000_000_000  # the "1" in front of a 10-digit NANP nsn (see Scheme.key)
_BLOCK_ROWS = 1 << 16  # rows converted at a time: the temporaries stay in the CPU cache


@dataclass(frozen=True, slots=True)
class Shape:
    """A canonical line spelling: its width (without the newline), where its ten digits are
    and which other columns must hold which byte."""

    width: int
    digits: tuple[int, ...]
    marks: tuple[tuple[int, int], ...]


FTC_COLUMNS = (0, 1, 2, 4, 5, 6, 7, 8, 9, 10)
SHAPES = (
    Shape(11, FTC_COLUMNS, ((3, COMMA),)),  # 201,2001234
    Shape(12, FTC_COLUMNS, ((3, COMMA), (11, CR))),  # 201,2001234\r
    Shape(10, tuple(range(10)), ()),  # 2012001234
    Shape(11, tuple(range(10)), ((10, CR),)),  # 2012001234\r
)
_WIDEST = max(s.width for s in SHAPES)
_NO_LINES = np.empty(0, np.intp)
# In a chunk read as rows of one width, each row must also end where the newline is.
_ROWS = {shape: replace(shape, marks=(*shape.marks, (shape.width, NEWLINE))) for shape in SHAPES}


class ChunkKeys(NamedTuple):
    keys: np.ndarray  # int64 keys of the canonical lines, in line order
    others: list[tuple[int, bytes]]  # (index of the line in the chunk, its bytes without the newline)
    lines: int  # lines in the chunk (a last line without its newline included)


def shape_keys(rows: np.ndarray, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """(keys, ok) for 2-D ``rows`` of bytes read as ``shape``; a key is meaningful where ok."""
    keys = np.empty(len(rows), np.int64)
    ok = np.empty(len(rows), np.bool_)
    for start in range(0, len(rows), _BLOCK_ROWS):
        part = rows[start:start + _BLOCK_ROWS]
        digits = part[:, shape.digits] - np.uint8(ZERO)  # a non-digit byte wraps to > 9
        good = (digits <= 9).all(axis=1)
        good &= digits[:, 0] >= 2  # area code 2-9
        good &= digits[:, 3] >= 2  # exchange 2-9
        for column, byte in shape.marks:
            good &= part[:, column] == byte
        area = digits[:, 0].astype(np.int64) * 100 + digits[:, 1] * 10 + digits[:, 2]
        local = digits[:, 3].astype(np.int32)
        for column in range(4, 10):
            local *= 10
            local += digits[:, column]
        keys[start:start + len(part)] = area * 10_000_000 + local + KEY_BASE
        ok[start:start + len(part)] = good
    return keys, ok


def nanp_keys(chunk: bytes) -> ChunkKeys:
    """The keys of the canonical lines of ``chunk`` and the other lines, for the line parser.

    ``chunk`` holds whole lines; the last one may lack its newline.
    """
    data = np.frombuffer(chunk if chunk.endswith(b"\n") else chunk + b"\n", np.uint8)
    width = chunk.find(b"\n")
    if width >= 0 and len(data) % (width + 1) == 0:  # maybe every line has the first one's width
        rows = data.reshape(-1, width + 1)
        for shape in SHAPES:
            if shape.width == width:
                keys, ok = shape_keys(rows, _ROWS[shape])
                if ok.all():
                    return ChunkKeys(keys, [], len(rows))
    return _mixed_lines(chunk, data)


def _mixed_lines(chunk: bytes, data: np.ndarray) -> ChunkKeys:
    ends = np.flatnonzero(data == NEWLINE)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    windows = sliding_window_view(np.concatenate([data, np.zeros(_WIDEST, np.uint8)]), _WIDEST)
    keys = np.zeros(len(ends), np.int64)
    matched = np.zeros(len(ends), np.bool_)
    for shape in SHAPES:
        lines = np.flatnonzero(lengths == shape.width)
        if not len(lines):
            continue
        found, ok = shape_keys(windows[starts[lines]], shape)
        keys[lines[ok]] = found[ok]
        matched[lines[ok]] = True
    others = np.flatnonzero(~matched) if not matched.all() else _NO_LINES
    rest = [(i, chunk[s:e]) for i, s, e in zip(others.tolist(), starts[others].tolist(), ends[others].tolist(),
                                                strict=True)]
    return ChunkKeys(keys[matched], rest, len(ends))
