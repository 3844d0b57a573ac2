"""Streaming readers for registry files: plain, gzip or zip; never the whole file in memory.

Formats (see ``docs/registries.md`` for the exact assumptions):

- ``lines``: one number per line, in any spelling (``(212) 555-0100``, ``+44 20 7946 0958``).
- ``csv``: a CSV file; the number is in a chosen column (1-based index or header name).
- ``ftc``: the US FTC full list: ``area code,number`` per line (``201,2001234``) or 10 digits.
- ``ftc-changes``: the FTC change list: comma-separated records holding the area code and
  number (or 10 digits) and an action flag ``A``/``D`` (also ``ADD``/``DELETE``…) in any field.
- ``tps``: the UK TPS/CTPS fixed-width file: a 5-character dialling code then a
  7-character remainder (space padded), or the whole number in 12 characters.

A reader yields :class:`Batch` objects: keys to add (and, for change lists, to delete) in the
registry's :class:`~blocklists.numbering.Scheme`, and the bad lines with their line numbers.
A bad line is reported and skipped; it never stops the read.

Speed: for NANP lists in ``lines``/``ftc`` format the lines of a ~8 MB chunk in the FTC's own
spellings are read with numpy (:mod:`blocklists.nanp_bulk`); the other lines of the chunk go to
the line-by-line parser, which is slower but reports each bad line precisely (for ``lines``,
a clean rest in other spellings — ``(212) 555-0100`` — is first tried with C-level bytes
operations). Either way the result is the line parser's.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import queue
import re
import threading
import zipfile
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add
from pathlib import Path
from typing import BinaryIO

import numpy as np

from blocklists.nanp_bulk import nanp_keys
from blocklists.numbering import BadNumber, Scheme

FORMATS = ("lines", "csv", "ftc", "ftc-changes", "tps")
CHUNK_BYTES = 8 << 20
MAX_LINE_BYTES = 4096
_PUNCT = b" \t\r-.()/,"  # deleted in the bytes fast path ("+" and others go to the line parser)
_BLANKS = b" \t\r"  # what bytes.strip() removes of a line made of _PUNCT and digits
_DIGITS_NL = b"0123456789\n"
_SEPARATORS = re.compile(r"[\s\-.()/,\u00a0\u2010-\u2015]+")
_ADD_FLAGS = {"A", "ADD", "ADDED", "ADDITION", "I", "INSERT"}
_DELETE_FLAGS = {"D", "DEL", "DELETE", "DELETED", "DELETION", "R", "REMOVE", "REMOVED"}


class FormatError(ValueError):
    """The file cannot be read as asked (unknown format, missing column, not a zip…)."""


@dataclass(frozen=True, slots=True)
class BadLine:
    where: str  # zip member name, or "" for a plain/gzip file
    line: int
    reason: str
    text: str

    def __str__(self) -> str:
        place = f"{self.where}:{self.line}" if self.where else f"line {self.line}"
        return f"{place}: {self.reason}: {self.text!r}"


def _no_keys() -> np.ndarray:
    return np.empty(0, np.int64)


@dataclass(slots=True)
class Batch:
    keys: np.ndarray = field(default_factory=_no_keys)  # int64 keys of numbers to add / that are listed
    deletions: list[int] = field(default_factory=list)  # change lists only
    lines: int = 0
    bad: list[BadLine] = field(default_factory=list)  # the first ``bad_limit`` bad lines
    bad_count: int = 0  # every bad line
    position: int = 0  # bytes of the source file consumed so far (for progress)


# --- the source file -----------------------------------------------------------------------

class _HashingReader(io.RawIOBase):
    """Reads a file while hashing every byte and counting the position."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.sha = hashlib.sha256()
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._handle.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.sha.update(data)
        self.position += size
        return size

    def drain(self) -> None:
        while self.readinto(bytearray(1 << 20)):
            pass


class _Gunzip(io.RawIOBase):
    """The content of a gzip file (every member, as ``gzip`` reads it), inflated from 1 MB reads.

    Unlike ``gzip.GzipFile`` (8 kB at a time), each zlib call works long without Python's lock,
    so the reading thread runs beside the parser. zlib checks each member's CRC and length; a
    file cut short raises EOFError and anything but gzip data after a member BadGzipFile. At
    most ``MAX_PIECE`` bytes are inflated at once (a small file of zeros cannot fill memory).
    """

    MAX_PIECE = 16 << 20

    def __init__(self, raw: io.RawIOBase, block: int = 1 << 20) -> None:
        self._raw = raw
        self._block = block
        self._inflate = zlib.decompressobj(wbits=31)
        self._in_member = False
        self._input = b""  # read but not yet inflated
        self._piece = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._offset >= len(self._piece):
            if not self._next_piece():
                return 0
        size = min(len(buffer), len(self._piece) - self._offset)
        buffer[:size] = memoryview(self._piece)[self._offset:self._offset + size]
        self._offset += size
        return size

    def _next_piece(self) -> bool:
        while True:
            if not self._input:
                self._input = self._raw.read(self._block) or b""
                if not self._input:
                    if self._in_member:
                        raise EOFError("compressed file ended before the end-of-stream marker was reached")
                    return False
            if not self._in_member:
                self._input = self._input.lstrip(b"\0")  # zero padding after a member, as gzip allows
                if not self._input:
                    continue
                self._in_member = True
            try:
                piece = self._inflate.decompress(self._input, self.MAX_PIECE)
            except zlib.error as exc:
                raise gzip.BadGzipFile(f"not gzip data: {exc}") from exc
            if self._inflate.eof:
                self._input = self._inflate.unused_data
                self._inflate = zlib.decompressobj(wbits=31)
                self._in_member = False
            else:
                self._input = self._inflate.unconsumed_tail
            if piece:
                self._piece, self._offset = piece, 0
                return True


class Source:
    """A registry file on disk; plain, gzip or zip is recognised by its first bytes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FormatError(f"{self.path}: no such file")
        self.size = self.path.stat().st_size
        with open(self.path, "rb") as handle:
            magic = handle.read(4)
        self.kind = "gzip" if magic[:2] == b"\x1f\x8b" else "zip" if magic == b"PK\x03\x04" else "plain"
        self._position: Callable[[], int] = lambda: 0
        self._checksum = ""

    def position(self) -> int:
        return self._position()

    @property
    def checksum(self) -> str:
        """``sha256:<hex>`` of the file as given; complete once :meth:`members` is exhausted."""
        return self._checksum

    def members(self) -> Iterator[tuple[str, BinaryIO]]:
        """Yield (member name, binary stream) for each part holding data."""
        if self.kind == "zip":
            yield from self._zip_members()
            return
        with open(self.path, "rb") as handle:
            raw = _HashingReader(handle)
            self._position = lambda: raw.position
            stream: BinaryIO
            if self.kind == "gzip":
                stream = io.BufferedReader(_Gunzip(raw), 1 << 20)  # type: ignore[assignment]
            else:
                stream = io.BufferedReader(raw, 1 << 20)  # type: ignore[assignment]
            yield "", stream
            raw.drain()  # hash any trailing bytes the decompressor did not need
            self._checksum = "sha256:" + raw.sha.hexdigest()

    def _zip_members(self) -> Iterator[tuple[str, BinaryIO]]:
        sha = hashlib.sha256()
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        self._checksum = "sha256:" + sha.hexdigest()
        handle = open(self.path, "rb")  # noqa: SIM115 - closed below, shared with ZipFile
        try:
            try:
                archive = zipfile.ZipFile(handle)
            except zipfile.BadZipFile as exc:
                raise FormatError(f"{self.path}: not a readable zip file: {exc}") from exc
            self._position = handle.tell
            with archive:
                for info in archive.infolist():
                    if info.is_dir():
                        continue
                    with archive.open(info) as member:
                        yield info.filename, member  # type: ignore[misc]
        finally:
            handle.close()


# --- line parsing ----------------------------------------------------------------------------

def _spelled_nsn(text: str, scheme: Scheme) -> str:
    """A number in any spelling -> nsn of the scheme (raises BadNumber)."""
    cleaned = _SEPARATORS.sub("", text)
    if not cleaned:
        raise BadNumber("empty")
    international = cleaned.startswith("+")
    digits = cleaned[1:] if international else cleaned
    if not digits.isdigit() or not digits.isascii():
        raise BadNumber("not a phone number")
    return scheme.nsn_from_digits(digits, international)


def _ftc_nsn(fields: list[str], scheme: Scheme) -> str:
    """Area code + number in two fields, or 10 digits in one field."""
    values = [f.strip() for f in fields if f.strip()]
    if len(values) >= 2 and len(values[0]) == 3 and len(values[1]) == 7:
        return scheme.check_nsn(values[0] + values[1])
    if values and values[0].isdigit() and len(values[0]) in (10, 11):
        return scheme.nsn_from_digits(values[0])
    raise BadNumber("expected 'area code,number'")


class LineParser:
    """Parses one line of a format; returns ``(action, nsn)`` or None for a blank line."""

    def __init__(self, fmt: str, scheme: Scheme) -> None:
        if fmt not in FORMATS or fmt == "csv":
            raise FormatError(f"unknown line format {fmt!r}")
        self.fmt = fmt
        self.scheme = scheme

    def __call__(self, text: str) -> tuple[str, str] | None:
        if self.fmt == "tps":
            body = text.rstrip("\r\n")
            if not body.strip():
                return None
            if len(body) > 12 and body[12:].strip():
                raise BadNumber("record longer than 12 characters")
            digits = body[:12].replace(" ", "")
            if not digits.isdigit() or not digits.isascii():
                raise BadNumber("not a TPS record (digits expected)")
            return "add", self.scheme.nsn_from_digits(digits)
        text = text.strip()
        if not text:
            return None
        if self.fmt == "lines":
            return "add", _spelled_nsn(text, self.scheme)
        fields = text.split(",")
        if self.fmt == "ftc":
            return "add", _ftc_nsn(fields, self.scheme)
        flags = [f.strip().upper() for f in fields]
        action = next(("add" for f in flags if f in _ADD_FLAGS), None) or next(
            ("delete" for f in flags if f in _DELETE_FLAGS), None)
        if action is None:
            raise BadNumber("no addition/deletion flag (A or D)")
        rest = [f for f, flag in zip(fields, flags, strict=True) if flag not in _ADD_FLAGS | _DELETE_FLAGS]
        return action, _ftc_nsn(rest, self.scheme)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8")


def _slow_lines(lines: Iterable[tuple[int, bytes]], where: str, parse: LineParser, batch: Batch,
                bad_limit: int) -> None:
    """Parse ``(line number, raw line)`` pairs one by one into ``batch``."""
    key = parse.scheme.key
    keys: list[int] = []
    for number, raw in lines:
        if not raw.strip():
            continue
        try:
            if len(raw) > MAX_LINE_BYTES:
                raise BadNumber(f"line longer than {MAX_LINE_BYTES} bytes")
            try:
                text = _decode(raw)
            except UnicodeDecodeError as exc:
                raise BadNumber("not UTF-8 text") from exc
            parsed = parse(text)
        except BadNumber as exc:
            batch.bad_count += 1
            if len(batch.bad) < bad_limit:
                batch.bad.append(BadLine(where, number, str(exc), raw[:80].decode("utf-8", "replace")))
            continue
        if parsed is None:
            continue
        action, nsn = parsed
        (keys if action == "add" else batch.deletions).append(key(nsn))
    _add_keys(batch, keys)


def _add_keys(batch: Batch, keys: Sequence[int] | np.ndarray) -> None:
    if len(keys):
        batch.keys = np.concatenate([batch.keys, np.asarray(keys, np.int64)]) if len(batch.keys) else \
            np.asarray(keys, np.int64)


def _nanp_chunk(chunk: bytes, first_line: int, where: str, parse: LineParser, bad_limit: int) -> Batch:
    """The numpy reader for the canonical lines; the rest as the line parser says (see module doc)."""
    keys, others, lines = nanp_keys(chunk)
    batch = Batch(keys=keys, lines=lines)
    if not others:
        return batch
    if parse.fmt == "lines":
        rest = _fast_nanp_chunk(b"\n".join(raw for _index, raw in others))
        if rest is not None:
            _add_keys(batch, rest)
            return batch
    _slow_lines(((first_line + index, raw) for index, raw in others), where, parse, batch, bad_limit)
    return batch


def _fast_nanp_chunk(chunk: bytes) -> list[int] | None:
    """Keys of a chunk of clean NANP lines in any ``lines`` spelling, or None if anything needs
    the careful parser (which then decides every line as it always would)."""
    digits = chunk.translate(None, _PUNCT)
    if digits.translate(None, _DIGITS_NL):
        return None  # letters, "+" or other symbols: let the line parser judge each line
    lines = digits.split(b"\n")
    if lines.count(b"") != chunk.translate(None, _BLANKS).split(b"\n").count(b""):
        return None  # a line of separators only: the line parser reports it as empty
    if len(chunk) > MAX_LINE_BYTES and max(map(len, chunk.split(b"\n"))) > MAX_LINE_BYTES:
        return None
    numbers = list(map(int, filter(None, lines)))
    if not numbers:
        return []
    numbers.sort()
    if numbers[0] < 2_000_000_000 or numbers[-1] >= 10_000_000_000:
        return None  # 11-digit spellings ("1 212 …"), short or long lines
    index, size = 0, len(numbers)
    while index < size:  # every exchange must start with 2-9: check the smallest per area code
        area = numbers[index] // 10_000_000
        if numbers[index] - area * 10_000_000 < 2_000_000:
            return None
        index = bisect_left(numbers, (area + 1) * 10_000_000, index)
    return list(map(add, numbers, repeat(10_000_000_000)))


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    """Chunks of whole lines (the last one may lack its newline)."""
    carry = b""
    while True:
        block = stream.read(size)
        if not block:
            if carry:
                yield carry
            return
        block = carry + block
        cut = block.rfind(b"\n")
        if cut < 0:
            carry = block
            if len(carry) > 64 * size:
                raise FormatError("no line breaks in the file: not a line-oriented registry file")
            continue
        carry = block[cut + 1:]
        yield block[:cut + 1]


def _read_ahead(chunks: Iterator[bytes], depth: int = 2) -> Iterator[bytes]:
    """``chunks`` produced by a background thread, at most ``depth`` ahead of the consumer.

    Reading, decompressing and hashing the file release the GIL, and so does most of numpy's
    work on a chunk: on two cores the file is read while the previous chunk is parsed. An
    error of the reader is raised here; closing this generator stops the thread.
    """
    ready: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def hand_over(item: tuple[bytes | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand_over((chunk, None)):
                    return
            hand_over((None, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            hand_over((None, exc))

    thread = threading.Thread(target=produce, name="registry-reader", daemon=True)
    thread.start()
    try:
        while True:
            chunk, error = ready.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        thread.join()


def read_batches(source: Source, fmt: str, scheme: Scheme, *, column: str | None = None,
                 chunk_bytes: int = CHUNK_BYTES, bad_limit: int = 1000) -> Iterator[Batch]:
    """Stream ``source`` in ``fmt``; yields one Batch per chunk of lines.

    Every bad line is counted; at most ``bad_limit`` per batch are kept with their text, so
    a file of garbage cannot exhaust memory. A file that cannot be decompressed raises
    :class:`FormatError` (nothing of it should be trusted).
    """
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        if fmt == "csv":
            yield from _csv_batches(source, scheme, column, bad_limit)
            return
        yield from _line_batches(source, fmt, scheme, chunk_bytes, bad_limit)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise FormatError(f"{source.path}: cannot read: {exc}") from exc


def _line_batches(source: Source, fmt: str, scheme: Scheme, chunk_bytes: int, bad_limit: int) -> Iterator[Batch]:
    parse = LineParser(fmt, scheme)
    fast = scheme.cc == "1" and fmt in ("lines", "ftc")
    for where, stream in source.members():
        line = 1
        for chunk in _read_ahead(_chunks(stream, chunk_bytes)):
            if fast:
                batch = _nanp_chunk(chunk, line, where, parse, bad_limit)
            else:
                batch = Batch(lines=chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1))
                _slow_lines(enumerate(chunk.split(b"\n"), start=line), where, parse, batch, bad_limit)
            line += batch.lines
            batch.position = source.position()
            yield batch


def _csv_batches(source: Source, scheme: Scheme, column: str | None, bad_limit: int,
                 rows_per_batch: int = 200_000) -> Iterator[Batch]:
    key = scheme.key
    for where, stream in source.members():
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text)
        index = _csv_column(reader, column)
        batch, keys = Batch(lines=1 if index[1] else 0), []
        for row in reader:
            batch.lines += 1
            if not any(cell.strip() for cell in row):
                continue
            try:
                if index[0] >= len(row):
                    raise BadNumber(f"row has {len(row)} columns; the number is in column {index[0] + 1}")
                keys.append(key(_spelled_nsn(row[index[0]], scheme)))
            except BadNumber as exc:
                batch.bad_count += 1
                if len(batch.bad) < bad_limit:
                    batch.bad.append(BadLine(where, reader.line_num, str(exc), ",".join(row)[:80]))
            if batch.lines >= rows_per_batch:
                _add_keys(batch, keys)
                batch.position = source.position()
                yield batch
                batch, keys = Batch(), []
        _add_keys(batch, keys)
        batch.position = source.position()
        yield batch
        text.detach()


def _csv_column(reader: Iterator[list[str]], column: str | None) -> tuple[int, bool]:
    """(0-based column index, whether a header row was consumed)."""
    if column is None or column.isdigit():
        index = int(column) - 1 if column else 0
        if index < 0:
            raise FormatError("--column counts from 1")
        return index, False
    header = next(reader, None)
    if header is None:
        return 0, False
    names = [h.strip().lower() for h in header]
    if column.strip().lower() not in names:
        raise FormatError(f"no column named {column!r} in the header {header!r}")
    return names.index(column.strip().lower()), True

