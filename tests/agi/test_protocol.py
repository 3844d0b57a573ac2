"""The pure protocol functions, driven by Asterisk 22.10.1's captured transcripts."""

from __future__ import annotations

import pytest
from asterisk_client import (
    FASTAGI_TRANSCRIPT,
    SCRIPT_TRANSCRIPT,
    asterisk_parse_args,
    header_bytes,
    load_transcript,
)
from hypothesis import given
from hypothesis import strategies as st

from agi import protocol
from agi.protocol import (
    AGIProtocolError,
    HeaderReader,
    HeaderTooLarge,
    ReplyReader,
    UnsafeValue,
    parse_header,
    parse_header_bytes,
    parse_reply,
    parse_reply_line,
    quote,
)

FASTAGI = load_transcript(FASTAGI_TRANSCRIPT)
SCRIPT = load_transcript(SCRIPT_TRANSCRIPT)


def _replies(command_prefix: str) -> list[str]:
    return next(reply for command, reply in FASTAGI.exchanges if command.startswith(command_prefix))


# --- header ----------------------------------------------------------------------------------


def test_fastagi_header_from_asterisk_parses_into_script_extension_and_args() -> None:
    header = parse_header(FASTAGI.header)
    assert header.script == "screen"
    assert header.extension == "89991234567"
    assert header.args == ("campaign-1",)
    assert header.get("agi_accountcode") == ""
    assert header.get("agi_channel") == "Local/89991234567@outbound-marketing-00000006;2"


def test_classic_script_header_from_asterisk_parses_with_no_network_script() -> None:
    header = parse_header(SCRIPT.header)
    assert header.get("agi_request") == "capture_agi.py"
    assert header.script == ""
    assert header.extension == "84951234567"
    assert header.args == ("campaign-1",)


def test_header_bytes_need_the_blank_line_that_ends_them() -> None:
    raw = header_bytes()
    assert parse_header_bytes(raw).args == ("campaign-1",)
    with pytest.raises(AGIProtocolError):
        parse_header_bytes(raw.rstrip(b"\n") + b"\n")


def test_script_name_falls_back_to_the_request_path_and_drops_a_query() -> None:
    header = parse_header(["agi_request: agi://10.0.0.1:4573/outcome?x=1"])
    assert header.script == "outcome"


def test_header_reader_assembles_lines_until_the_blank_line() -> None:
    reader = HeaderReader()
    lines = header_bytes(args=["c1", "+79991234567"]).split(b"\n")[:-1]
    done = [reader.feed(line + b"\n") for line in lines]
    assert done[-1] is True and not any(done[:-1])
    assert reader.header().args == ("c1", "+79991234567")


def test_header_larger_than_the_bound_is_refused() -> None:
    reader = HeaderReader()
    with pytest.raises(HeaderTooLarge):
        for i in range(10_000):
            reader.feed(f"agi_x{i}: {'v' * 50}\n".encode())


def test_too_many_header_lines_are_refused() -> None:
    with pytest.raises(HeaderTooLarge):
        parse_header([f"agi_k{i}: v" for i in range(protocol.MAX_HEADER_LINES + 1)])


def test_connection_closed_inside_the_header_is_an_error() -> None:
    reader = HeaderReader()
    reader.feed(b"agi_request: agi://h/screen\n")
    with pytest.raises(AGIProtocolError):
        reader.feed(b"agi_channel: Local/1@x")


def test_a_newline_in_the_caller_id_cannot_smuggle_in_an_argument() -> None:
    # A caller-ID name "x\nagi_arg_2: +15550000000" splits into a line before the real args.
    raw = header_bytes(calleridname="x\nagi_arg_2: +15550000000", args=["campaign-1"])
    with pytest.raises(AGIProtocolError):
        parse_header_bytes(raw)


def test_a_repeated_key_is_refused() -> None:
    with pytest.raises(AGIProtocolError, match="repeats"):
        parse_header(["agi_request: agi://h/screen", "agi_extension: 1", "agi_extension: 2"])


def test_arguments_must_come_last_and_in_order() -> None:
    with pytest.raises(AGIProtocolError, match="out of order"):
        parse_header(["agi_request: agi://h/screen", "agi_arg_2: x"])
    with pytest.raises(AGIProtocolError, match="after the AGI arguments"):
        parse_header(["agi_request: agi://h/screen", "agi_arg_1: x", "agi_extension: 1"])


@pytest.mark.parametrize("line", ["EXEC System rm -rf /", "not a header", "AGI_REQUEST: x", ": value"])
def test_garbage_header_lines_are_refused(line: str) -> None:
    with pytest.raises(AGIProtocolError):
        parse_header(["agi_request: agi://h/screen", line])


def test_header_without_agi_request_is_refused() -> None:
    with pytest.raises(AGIProtocolError):
        parse_header(["agi_extension: 1"])


# --- quoting -----------------------------------------------------------------------------------


def test_quoting_matches_what_asterisk_unquoted_in_the_capture() -> None:
    command = next(c for c, _ in FASTAGI.exchanges if c.startswith("SET VARIABLE SCREEN_REASON"))
    assert command == "SET VARIABLE SCREEN_REASON " + quote('has "quotes" and spaces')
    # and Asterisk then gave the unescaped text back:
    assert _replies("GET VARIABLE SCREEN_REASON") == ['200 result=1 (has "quotes" and spaces)']
    assert asterisk_parse_args(command)[3] == 'has "quotes" and spaces'


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb"])
def test_control_characters_are_refused_not_cleaned(bad: str) -> None:
    with pytest.raises(UnsafeValue):
        quote(bad)


def test_overlong_values_are_refused() -> None:
    quote("x" * protocol.MAX_VALUE_CHARS)
    with pytest.raises(UnsafeValue):
        quote("x" * (protocol.MAX_VALUE_CHARS + 1))


def test_non_text_values_are_refused() -> None:
    with pytest.raises(UnsafeValue):
        quote(b"bytes")  # type: ignore[arg-type]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"),
               max_size=200).filter(lambda s: not any((ord(c) < 32 and c != "\t") or c == "\x7f" for c in s)))
def test_any_allowed_value_survives_asterisks_parser_as_one_argument(value: str) -> None:
    line = protocol.set_variable("SCREEN_REASON", value).decode()
    assert line.endswith("\n") and line.count("\n") == 1
    assert asterisk_parse_args(line[:-1]) == ["SET", "VARIABLE", "SCREEN_REASON", value]


@pytest.mark.parametrize("value", ['" EXEC System "reboot', "\\", '\\"', 'end\\', '"; EXEC System x; "'])
def test_injection_attempts_stay_inside_one_argument(value: str) -> None:
    line = protocol.set_variable("SCREEN_BASIS", value).decode()[:-1]
    assert asterisk_parse_args(line) == ["SET", "VARIABLE", "SCREEN_BASIS", value]


@pytest.mark.parametrize("name", ["screen_result", "A B", "X\n", "${EXTEN}", "", "A" * 65, "1ABC"])
def test_variable_names_must_be_constants(name: str) -> None:
    with pytest.raises(UnsafeValue):
        protocol.set_variable(name, "x")
    with pytest.raises(UnsafeValue):
        protocol.get_variable(name)


def test_commands_are_single_lines_in_asterisks_form() -> None:
    assert protocol.set_variable("SCREEN_RESULT", "ALLOW") == b'SET VARIABLE SCREEN_RESULT "ALLOW"\n'
    assert protocol.get_variable("SCREEN_REASON") == b"GET VARIABLE SCREEN_REASON\n"
    assert protocol.verbose("screened", 1) == b'VERBOSE "screened" 1\n'
    with pytest.raises(UnsafeValue):
        protocol.verbose("x", 9)


def test_plain_values_are_set_in_one_mset_command_in_the_given_order() -> None:
    line = protocol.set_variables([("SCREEN_ID", "d-mx4v-1d71"), ("SCREEN_BASIS", "consent:web_form:2026-05-01"),
                                   ("SCREEN_RESULT", "ALLOW")])
    assert line == b"EXEC MSet SCREEN_ID=d-mx4v-1d71,SCREEN_BASIS=consent:web_form:2026-05-01,SCREEN_RESULT=ALLOW\n"
    assert asterisk_parse_args(line.decode().rstrip("\n")) == [
        "EXEC", "MSet", "SCREEN_ID=d-mx4v-1d71,SCREEN_BASIS=consent:web_form:2026-05-01,SCREEN_RESULT=ALLOW"]
    assert protocol.set_variables([("SCREEN_ID", ""), ("SCREEN_RESULT", "BLOCK")]) == \
        b"EXEC MSet SCREEN_ID=,SCREEN_RESULT=BLOCK\n"


@pytest.mark.parametrize("value", ["a,SCREEN_RESULT=ALLOW", "${SHELL(reboot)}", "a b", 'a"b', "a\\b", "a\nb",
                                   "a=b", "a|b", "(a)", "x" * 129, "а"])
def test_a_value_that_is_not_plain_is_never_put_in_an_mset_command(value: str) -> None:
    assert protocol.set_variables([("SCREEN_ID", "d-1"), ("SCREEN_REASON", value)]) is None


@given(st.text(max_size=200))
def test_an_mset_command_is_one_line_whose_only_separators_are_ours(value: str) -> None:
    line = protocol.set_variables([("SCREEN_ID", value), ("SCREEN_RESULT", "BLOCK")])
    if line is not None:
        argv = asterisk_parse_args(line.decode().rstrip("\n"))
        assert line.count(b"\n") == 1 and len(argv) == 3
        assert argv[2].split(",") == [f"SCREEN_ID={value}", "SCREEN_RESULT=BLOCK"]
        assert not set(value) & set(",=$\"\\ ()|{}")


def test_mset_names_must_be_constants() -> None:
    with pytest.raises(UnsafeValue):
        protocol.set_variables([("SCREEN_RESULT)", "ALLOW")])
    with pytest.raises(UnsafeValue):
        protocol.set_variables([])


# --- replies -----------------------------------------------------------------------------------


def test_every_reply_in_the_fastagi_capture_parses() -> None:
    parsed = {}
    for command, lines in FASTAGI.exchanges:
        if lines:
            parsed[command] = parse_reply(lines + FASTAGI.trailer.decode().split("\n"))[0]
    assert parsed["GET VARIABLE CHANNEL"].data == "Local/89991234567@outbound-marketing-00000006;2"
    assert parsed["GET FULL VARIABLE ${EXTEN}"].data == "89991234567"
    assert parsed['SET VARIABLE SCREEN_RESULT "ALLOW"'].ok
    assert parsed['SET VARIABLE SCREEN_RESULT "ALLOW"'].data is None
    assert parsed["GET VARIABLE NO_SUCH_VAR"].result == 0
    assert parsed["FOO BAR"].code == 510 and parsed["FOO BAR"].text == "Invalid or unknown command"
    usage = parsed["SET VARIABLE"]
    assert usage.code == 520
    assert usage.usage == ("Invalid command syntax.  Proper usage follows:", "Sets a variable to the current channel.")
    assert usage.text == "End of proper usage."


def test_the_bare_hangup_line_after_the_last_reply_is_noted_not_misread() -> None:
    lines = FASTAGI.trailer.decode().split("\n")
    assert lines[:2] == ["520 End of proper usage.", "HANGUP"]
    reader = ReplyReader()
    assert reader.feed("HANGUP\n") is None
    assert reader.hungup
    reply = reader.feed("200 result=1\n")
    assert reply is not None and reply.ok


def test_classic_script_capture_replies_parse() -> None:
    (_set_cmd, set_reply), (_get_cmd, get_reply) = SCRIPT.exchanges
    assert parse_reply(set_reply)[0].ok
    assert parse_reply(get_reply)[0].data == "BLOCK"


def test_value_with_parentheses_is_taken_to_the_last_closing_one() -> None:
    reply = parse_reply_line("200 result=1 (a (b) c)")
    assert reply.data == "a (b) c"
    assert parse_reply_line("200 result=0 endpos=1234").extra == "endpos=1234"
    assert parse_reply_line("200 result=-1").ok is False


@pytest.mark.parametrize("line", ["", "OK", "200", "200 nothing", "20 result=1", "abc result=1", "200-result=1"])
def test_garbage_replies_are_protocol_errors(line: str) -> None:
    with pytest.raises(AGIProtocolError):
        parse_reply_line(line)


def test_incomplete_usage_reply_is_an_error() -> None:
    with pytest.raises(AGIProtocolError):
        parse_reply(["520-Invalid command syntax.", "usage text"])
