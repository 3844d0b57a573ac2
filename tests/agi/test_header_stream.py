"""The FastAGI header taken in one read: the same lines as line by line, whatever the line ends
and however the bytes arrive, nothing consumed past the blank line, the same bounds."""

from __future__ import annotations

import asyncio
import re

import pytest
from asterisk_client import header_bytes
from hypothesis import given
from hypothesis import strategies as st

from agi import protocol
from agi.protocol import AGIProtocolError, HeaderReader, HeaderTooLarge, parse_header_block
from agi.stream import HeaderStreamReader, supported

HEADER = header_bytes(args=["spring", "+79991234567"])
LINE_ENDS = {
    "lf": lambda h: h,
    "crlf": lambda h: h.replace(b"\n", b"\r\n"),
    "lf-lines-crlf-blank-line": lambda h: h[:-1] + b"\r\n",
    "crlf-lines-lf-blank-line": lambda h: h[:-2].replace(b"\n", b"\r\n") + b"\n\n",
    "alternating": lambda h: b"".join(line + (b"\r\n" if i % 2 else b"\n")
                                      for i, line in enumerate(h.split(b"\n")[:-1])),
    "stray-blank-lines-first": lambda h: b"\n\r\n" + h,
    "cr-runs": lambda h: h[:-1].replace(b"\n", b"\r\r\n") + b"\r\r\n",
}


def _line_by_line(data: bytes) -> protocol.Header:
    reader = HeaderReader()
    for line in re.findall(rb"[^\n]*\n", data):  # as readline splits: at LF only
        if reader.feed(line):
            return reader.header()
    raise AssertionError("no blank line")


async def _read(chunks: list[bytes], eof: bool = False) -> tuple[bytes, bytes]:
    """Feed ``chunks`` one per loop turn; return the block and the line ``readline`` gets next."""
    reader = HeaderStreamReader(limit=protocol.MAX_HEADER_BYTES)

    async def feed() -> None:
        for chunk in chunks:
            reader.feed_data(chunk)
            await asyncio.sleep(0)
        if eof:
            reader.feed_eof()

    feeder = asyncio.ensure_future(feed())
    try:
        block = await asyncio.wait_for(reader.read_header(protocol.MAX_HEADER_BYTES), 2)
    finally:
        await feeder
    rest = await asyncio.wait_for(reader.readline(), 2) if not eof else b""  # what a reply read sees next
    return block, rest


def test_this_python_supports_the_one_read_header() -> None:
    assert supported()


@pytest.mark.parametrize("ends", list(LINE_ENDS.values()), ids=list(LINE_ENDS))
def test_one_read_gives_the_header_line_by_line_reading_gives(ends) -> None:
    data = ends(HEADER)
    block, rest = asyncio.run(_read([data + b"HANGUP\n"]))
    assert rest == b"HANGUP\n"  # a hangup line Asterisk sends after the header stays for the replies
    assert parse_header_block(block) == _line_by_line(data)


@pytest.mark.parametrize("ends", list(LINE_ENDS.values()), ids=list(LINE_ENDS))
def test_a_header_arriving_a_byte_at_a_time_reads_the_same(ends) -> None:
    data = ends(HEADER)
    block, rest = asyncio.run(_read([data[i:i + 1] for i in range(len(data))] + [b"200 result=1\n"]))
    assert parse_header_block(block) == _line_by_line(data) and rest == b"200 result=1\n"


def test_a_header_without_its_blank_line_past_the_bound_is_too_large() -> None:
    lines = b"".join(f"agi_x{i}: {'v' * 60}\n".encode() for i in range(200))
    with pytest.raises(HeaderTooLarge):
        asyncio.run(_read([b"agi_request: agi://h/screen\n" + lines]))


def test_blank_lines_before_the_header_count_towards_the_bound() -> None:
    with pytest.raises(HeaderTooLarge):
        asyncio.run(_read([b"\n" * (protocol.MAX_HEADER_BYTES - 10) + HEADER]))


def test_a_header_cut_short_by_the_peer_closing_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(_read([HEADER[:200]], eof=True))


def test_a_block_without_its_blank_line_or_with_a_smuggled_argument_is_refused() -> None:
    with pytest.raises(AGIProtocolError, match="blank line"):
        parse_header_block(HEADER[:-1])
    with pytest.raises(AGIProtocolError):
        parse_header_block(header_bytes(calleridname="x\nagi_arg_2: +15550000000", args=["campaign-1"]))


def _parsed_or_error(parse, *args):
    try:
        return parse(*args)
    except AGIProtocolError as exc:
        return type(exc), str(exc)


_ENV_KEYS = ["agi_request", "agi_channel", "agi_callerid", "agi_language", "agi_uniqueid"]
_ODD_KEYS = ["agi_request", "agi_arg_1", "agi_arg_01", "agi_arg_x", "agi_arg_17", "agi_Upper", "agi_", "bad key",
             "agi_a:b"]
_VALUES = st.text(alphabet="a1/: é\t", max_size=6)
_CONTROLS = st.sampled_from(["\r", "\x01", "\x7f", "\x1f"])


@st.composite
def _header_lines(draw) -> list[tuple[str, str, str]]:
    """A header in Asterisk's form (some env keys, then agi_arg_1..N), often with a few faults:
    an odd key inserted, a line repeated, another separator, a control character."""
    keys = draw(st.lists(st.sampled_from(_ENV_KEYS), unique=True, max_size=5))
    keys += [f"agi_arg_{n}" for n in range(1, draw(st.integers(0, 18)) + 1)]
    lines = [(key, ": ", draw(_VALUES)) for key in keys]
    for _fault in range(draw(st.integers(0, 2))):
        where = draw(st.integers(0, len(lines)))
        kind = draw(st.sampled_from(["insert", "repeat", "separator", "control"]))
        if kind == "insert":
            lines.insert(where, (draw(st.sampled_from(_ODD_KEYS)), ": ", draw(_VALUES)))
        elif lines and kind == "repeat":
            lines.insert(where, lines[draw(st.integers(0, len(lines) - 1))])
        elif lines and kind == "separator":
            key, _sep, value = lines[where - 1]
            lines[where - 1] = (key, draw(st.sampled_from([":", " : ", ":  "])), value)
        elif lines:
            key, sep, value = lines[where - 1]
            lines[where - 1] = (key, sep, value + draw(_CONTROLS))
    return lines


_LINES = _header_lines()


@given(_LINES, st.sampled_from(["\n", "\r\n"]))
def test_a_block_parses_exactly_as_its_lines_do(lines, blank_line_end: str) -> None:
    """The one-pass parse of a header in Asterisk's form gives what the line-by-line parse gives,
    header or error, for any mix of keys, separators, values, repeats and argument orders."""
    text = "".join(f"{key}{sep}{value}\n" for key, sep, value in lines) + blank_line_end
    block = text.encode()
    expected = _parsed_or_error(protocol.parse_block_lines, text)
    assert _parsed_or_error(parse_header_block, block) == expected


def test_a_block_of_many_arguments_or_lines_is_refused_as_line_by_line() -> None:
    args = "".join(f"agi_arg_{n}: v\n" for n in range(1, protocol.MAX_ARGS + 2))
    too_many_args = f"agi_request: agi://h/screen\n{args}\n".encode()
    lines = "".join(f"agi_k{n}: v\n" for n in range(protocol.MAX_HEADER_LINES))
    too_many_lines = f"agi_request: agi://h/screen\n{lines}\n".encode()
    with pytest.raises(AGIProtocolError, match="too many AGI arguments"):
        parse_header_block(too_many_args)
    with pytest.raises(HeaderTooLarge, match="more than"):
        parse_header_block(too_many_lines)


def test_asterisks_own_header_takes_the_one_pass_parse() -> None:
    """The fixture header (LF ends, as Asterisk sends it) is parsed in one pass, not line by line."""
    fast = protocol._parse_plain_block(HEADER.decode())
    assert fast is not None and fast == _line_by_line(HEADER)
    assert fast.args == ("spring", "+79991234567")
