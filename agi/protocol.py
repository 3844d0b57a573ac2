"""The AGI wire protocol as pure functions: header parsing, value quoting, commands, replies.

Shared by the FastAGI server (:mod:`agi.server`) and the classic script (:mod:`agi.script`).
Nothing here does I/O, so every rule is tested directly against Asterisk 22's transcripts.

Invariants:

* a header is bounded (:data:`MAX_HEADER_BYTES`, :data:`MAX_HEADER_LINES`), every line is
  ``agi_<name>: <value>``, no key repeats, and the ``agi_arg_N`` lines come last, numbered
  1..N in order. A caller-ID name carrying a newline therefore cannot smuggle in an argument;
* every value we send is quoted by :func:`quote`: CR, LF, NUL and other control characters
  are refused, ``\\`` and ``"`` are escaped, the length is bounded, so no input can end a
  command line or start another one (Asterisk reads at most 2047 bytes per command);
* variable names are constants matching :data:`VARIABLE_NAME`; there is no builder for
  ``GET FULL VARIABLE`` at all, and the only ``EXEC`` built is ``EXEC MSet`` of constant names
  and plain values (:data:`PLAIN_VALUE`: letters, digits, ``_ . : -``), which leaves nothing for
  Asterisk's argument parser, MSet's splitting on ``,`` and ``=`` (with quotes and escapes) or
  ``AGIEXECFULL``'s ``${...}`` substitution to act on. Any other value goes by ``SET VARIABLE``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 8192
MAX_HEADER_LINES = 96
MAX_LINE_BYTES = 2048  # Asterisk's AGI_BUF_LEN: a longer command line is cut in two
MAX_VALUE_CHARS = 512
MAX_ARGS = 16

HANGUP_LINE = "HANGUP"
VARIABLE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
_HEADER_KEY = re.compile(r"^agi_[a-z0-9_]{1,40}$")
_ARG_KEY = re.compile(r"^agi_arg_([1-9][0-9]?)$")
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_REPLY = re.compile(r"^(\d{3})([ -])(.*)$")
_RESULT = re.compile(r"^result=(-?\d+)(?: \((.*)\))?(?: (.*))?$")
PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.:-]{0,128}")


class AGIProtocolError(ValueError):
    """The peer sent something that is not AGI as Asterisk speaks it."""


class HeaderTooLarge(AGIProtocolError):
    """The header exceeded :data:`MAX_HEADER_BYTES` or :data:`MAX_HEADER_LINES`."""


class UnsafeValue(ValueError):
    """A value could end or extend a command line, or is longer than allowed."""


# --- header -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    """The ``agi_*`` environment Asterisk sends first, and the arguments of ``AGI()``."""

    env: Mapping[str, str]
    args: tuple[str, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        return self.env.get(key, default)

    @property
    def script(self) -> str:
        """FastAGI script name (``screen`` for ``agi://host:4573/screen``), without a query."""
        name = self.env.get("agi_network_script", "")
        if not name:
            request = self.env.get("agi_request", "")
            name = request.split("://", 1)[1].partition("/")[2] if "://" in request else ""
        return name.partition("?")[0].strip("/")

    @property
    def extension(self) -> str:
        return self.env.get("agi_extension", "")


def split_header_line(line: str) -> tuple[str, str]:
    """``"agi_key: value"`` → ``("agi_key", "value")``; the value is kept verbatim."""
    key, sep, value = line.partition(":")
    if not sep or not _HEADER_KEY.fullmatch(key):
        raise AGIProtocolError(f"malformed header line {line[:60]!r}")
    if value.startswith(" "):
        value = value[1:]
    return key, value


def parse_header(lines: Iterable[str]) -> Header:
    """Validate the header lines (without the terminating blank line) and build a :class:`Header`."""
    env: dict[str, str] = {}
    args: list[str] = []
    for count, raw in enumerate(lines, 1):
        if count > MAX_HEADER_LINES:
            raise HeaderTooLarge(f"header has more than {MAX_HEADER_LINES} lines")
        line = raw.rstrip("\r\n")
        if _FORBIDDEN.search(line):
            raise AGIProtocolError("control character in header line")
        key, value = split_header_line(line)
        if key in env:
            raise AGIProtocolError(f"header repeats {key}")
        arg = _ARG_KEY.fullmatch(key) if key.startswith("agi_arg_") else None
        if arg:
            if int(arg.group(1)) != len(args) + 1:
                raise AGIProtocolError(f"{key} out of order")
            if len(args) >= MAX_ARGS:
                raise AGIProtocolError("too many AGI arguments")
            args.append(value)
        elif args:
            raise AGIProtocolError(f"{key} after the AGI arguments")
        env[key] = value
    if "agi_request" not in env:
        raise AGIProtocolError("header lacks agi_request")
    return Header(env=env, args=tuple(args))


def parse_header_bytes(data: bytes) -> Header:
    """Parse a complete header block (ending with the blank line) received as bytes."""
    if len(data) > MAX_HEADER_BYTES:
        raise HeaderTooLarge(f"header larger than {MAX_HEADER_BYTES} bytes")
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n")
    block, blank, _rest = text.partition("\n\n")
    if not blank:
        raise AGIProtocolError("header not terminated by a blank line")
    return parse_header(block.split("\n"))


def parse_header_block(block: bytes) -> Header:
    """Parse the block :meth:`agi.stream.HeaderStreamReader.read_header` returns: header lines
    (LF or CRLF ends, mixed too) and the blank line that ends them, nothing before or after."""
    if len(block) > MAX_HEADER_BYTES:
        raise HeaderTooLarge(f"header larger than {MAX_HEADER_BYTES} bytes")
    text = block.decode("utf-8", errors="replace")
    plain = _parse_plain_block(text)
    return plain if plain is not None else parse_block_lines(text)


def parse_block_lines(text: str) -> Header:
    """:func:`parse_header_block` of decoded text, line by line: the reference the one-pass parse
    must always agree with, and the parse (with its precise error) of anything else."""
    lines = text.split("\n")
    if len(lines) < 3 or lines[-1] != "" or lines[-2].strip("\r") != "":
        raise AGIProtocolError("header not terminated by a blank line")
    return parse_header(lines[:-2])


# A whole header as Asterisk sends it: LF-ended lines of a valid key and a value free of control
# characters, then the blank line. Checked in one pass; its pairs are then read in one more.
_PLAIN_BLOCK = re.compile(r"(?:agi_[a-z0-9_]{1,40}:[^\x00-\x08\x0a-\x1f\x7f]*\n)+\n")
_PLAIN_PAIR = re.compile(r"^(agi_[a-z0-9_]{1,40}): ?(.*)$", re.MULTILINE)


def _parse_plain_block(text: str) -> Header | None:
    """:func:`parse_header` of a block in Asterisk's own form, in a few C-level passes instead of
    a loop over its ≈25 lines; None for anything else (CR line ends, a malformed or repeated
    line, arguments out of order, too many lines or arguments, no ``agi_request``), which
    :func:`parse_header` then parses or rejects with its precise message. Same result, always."""
    if not _PLAIN_BLOCK.fullmatch(text):
        return None
    pairs = _PLAIN_PAIR.findall(text)
    env = dict(pairs)
    if len(env) != len(pairs) or len(pairs) > MAX_HEADER_LINES or "agi_request" not in env:
        return None
    first_arg = len(pairs)
    while first_arg and pairs[first_arg - 1][0].startswith("agi_arg_"):
        first_arg -= 1
    args = pairs[first_arg:]
    if len(args) > MAX_ARGS or text.count("\nagi_arg_") + text.startswith("agi_arg_") != len(args):
        return None  # too many, or an argument-like key before other keys
    for number, (key, _value) in enumerate(args, 1):
        if key != f"agi_arg_{number}":
            return None
    return Header(env=env, args=tuple(value for _key, value in args))


class HeaderReader:
    """Incremental, bounded header assembly: feed lines until :attr:`done`."""

    __slots__ = ("_lines", "_size", "done")

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._size = 0
        self.done = False

    def feed(self, raw: bytes) -> bool:
        """Add one received line (with its newline); True once the blank line arrived."""
        self._size += len(raw)
        if self._size > MAX_HEADER_BYTES:
            raise HeaderTooLarge(f"header larger than {MAX_HEADER_BYTES} bytes")
        if not raw.endswith(b"\n"):
            raise AGIProtocolError("connection closed inside the header")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line == "":
            if not self._lines:  # tolerate a stray newline before the header
                return False
            self.done = True
            return True
        if len(self._lines) >= MAX_HEADER_LINES:
            raise HeaderTooLarge(f"header has more than {MAX_HEADER_LINES} lines")
        self._lines.append(line)
        return False

    def header(self) -> Header:
        if not self.done:
            raise AGIProtocolError("header incomplete")
        return parse_header(self._lines)


# --- quoting and commands -------------------------------------------------------------------


def quote(value: str, max_chars: int = MAX_VALUE_CHARS) -> str:
    """Quote ``value`` as one AGI argument: ``"..."`` with ``\\`` and ``"`` escaped.

    Refuses (raises :class:`UnsafeValue`) control characters (CR, LF, NUL and the rest of
    C0 except TAB, and DEL) and values longer than ``max_chars``: such values are never
    shortened or cleaned silently, the caller decides what to send instead.
    """
    if not isinstance(value, str):
        raise UnsafeValue(f"value must be text, not {type(value).__name__}")
    if len(value) > max_chars:
        raise UnsafeValue(f"value longer than {max_chars} characters")
    if _FORBIDDEN.search(value):
        raise UnsafeValue("value contains a control character (CR, LF, NUL, ...)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_variable_name(name: str) -> str:
    if not VARIABLE_NAME.fullmatch(name):
        raise UnsafeValue(f"not a constant variable name: {name[:40]!r}")
    return name


def set_variable(name: str, value: str) -> bytes:
    """``SET VARIABLE NAME "value"\\n`` — the only way callscreen writes to a channel."""
    line = f"SET VARIABLE {check_variable_name(name)} {quote(value)}\n".encode()
    if b"\n" in line[:-1] or b"\r" in line:  # quote() refuses these; kept as a second guard
        raise UnsafeValue("value would not stay on one command line")
    if len(line) >= MAX_LINE_BYTES:
        raise UnsafeValue("command line too long for Asterisk")
    return line


def set_variables(pairs: Iterable[tuple[str, str]]) -> bytes | None:
    """``EXEC MSet NAME=value,...\\n``: several variables in one command, set left to right.

    One round trip instead of one per variable, for Asterisk and for us. Only for constant
    names and :data:`PLAIN_VALUE` values (an empty value clears the variable); returns None
    when any value is not plain, and the caller sends :func:`set_variable` lines instead.
    """
    items = []
    for name, value in pairs:
        if not isinstance(value, str) or not PLAIN_VALUE.fullmatch(value):
            return None
        items.append(f"{check_variable_name(name)}={value}")
    if not items:
        raise UnsafeValue("no variables to set")
    line = f"EXEC MSet {','.join(items)}\n".encode()
    if len(line) >= MAX_LINE_BYTES:
        return None
    return line


def get_variable(name: str) -> bytes:
    """``GET VARIABLE NAME\\n`` for a constant name (never ``GET FULL VARIABLE``)."""
    return f"GET VARIABLE {check_variable_name(name)}\n".encode()


def verbose(message: str, level: int = 1) -> bytes:
    if level not in (1, 2, 3, 4):
        raise UnsafeValue("verbose level must be 1..4")
    return f"VERBOSE {quote(message)} {level}\n".encode()


# --- replies ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer from Asterisk: ``200 result=1 (value)``, ``510 ...``, ``520 ...`` (usage)."""

    code: int
    text: str
    result: int | None = None
    data: str | None = None
    extra: str = ""
    usage: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.code == 200 and self.result is not None and self.result >= 0


OK = Reply(code=200, text="result=1", result=1)
EXECUTED = Reply(code=200, text="result=0", result=0)  # EXEC of an application that returned 0
NO_APPLICATION = -2  # EXEC's result when Asterisk has no such application


def parse_reply_line(line: str) -> Reply:
    """Parse a single-line reply (``200``, ``510``, ``511``, the final ``520 ``)."""
    line = line.rstrip("\r\n")
    match = _REPLY.fullmatch(line)
    if not match or match.group(2) != " ":
        raise AGIProtocolError(f"not an AGI reply: {line[:60]!r}")
    code, text = int(match.group(1)), match.group(3)
    if code != 200:
        return Reply(code=code, text=text)
    result = _RESULT.fullmatch(text)
    if not result:
        raise AGIProtocolError(f"200 reply without result=: {line[:60]!r}")
    return Reply(
        code=200, text=text, result=int(result.group(1)), data=result.group(2), extra=result.group(3) or ""
    )


class ReplyReader:
    """Assembles one reply from lines, as Asterisk writes them.

    A bare ``HANGUP`` line is Asterisk telling us the channel hung up; it may come before
    any reply (and after the last one), so it is noted in :attr:`hungup` and skipped.
    ``520-`` starts a usage text that runs until a line starting ``520 ``.
    """

    __slots__ = ("_usage", "hungup")

    def __init__(self) -> None:
        self._usage: list[str] | None = None
        self.hungup = False

    def feed(self, raw: str) -> Reply | None:
        line = raw.rstrip("\r\n")
        if self._usage is not None:
            if line.startswith("520 "):
                usage, self._usage = tuple(self._usage), None
                return Reply(code=520, text=line[4:], usage=usage)
            if len(self._usage) >= 200:
                raise AGIProtocolError("usage text too long")
            self._usage.append(line)
            return None
        if line == HANGUP_LINE:
            self.hungup = True
            return None
        if line.startswith("520-"):
            self._usage = [line[4:]]
            return None
        return parse_reply_line(line)


def parse_reply(lines: Iterable[str]) -> tuple[Reply, bool]:
    """Parse a complete reply from ``lines``; returns it and whether HANGUP was seen."""
    reader = ReplyReader()
    for line in lines:
        reply = reader.feed(line)
        if reply is not None:
            return reply, reader.hungup
    raise AGIProtocolError("reply incomplete")
