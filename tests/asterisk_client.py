"""A test client that plays Asterisk 22 on an AGI connection, as the captured transcripts show.

It sends the header (ending with a blank line), parses each command exactly as ``res_agi``
does (``parse_args``: quotes group, backslash escapes the next character), keeps the channel's
variables, answers ``200 result=1``, ``200 result=0``, ``510`` or the multi-line ``520``, and
writes the bare ``HANGUP`` line when the script ends. Misbehaviour it can play: dropping the
connection after the header, sending ``HANGUP`` before a reply, replying slowly or never.

It also records what a real Asterisk would have suffered: a command line longer than
Asterisk's 2047-byte buffer, control characters, a second command sent before the reply to
the first (Asterisk's poll-then-fgets loop would stall on it), ``EXEC`` or ``GET FULL VARIABLE``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "agi" / "fixtures"
FASTAGI_TRANSCRIPT = FIXTURES / "asterisk-22.10-fastagi-transcript.txt"
SCRIPT_TRANSCRIPT = FIXTURES / "asterisk-22.10-agi-script-transcript.txt"
AGI_BUF_LEN = 2048
USAGE_SET_VARIABLE = (
    "520-Invalid command syntax.  Proper usage follows:\n"
    "Sets a variable to the current channel.\n"
    "520 End of proper usage.\n"
)


# --- the transcripts ------------------------------------------------------------------------


@dataclass
class Transcript:
    """A captured session: header lines, then (command, reply lines) pairs, then a trailer."""

    header: list[str]
    exchanges: list[tuple[str, list[str]]]
    trailer: bytes = b""


def load_transcript(path: Path) -> Transcript:
    header: list[str] = []
    exchanges: list[tuple[str, list[str]]] = []
    trailer = b""
    section = "preamble"
    for line in path.read_text().split("\n"):
        if line.startswith("### header"):
            section = "header"
            continue
        if line.startswith("### after"):
            literal = line.split("sent: ", 1)[1]
            trailer = eval(literal, {"__builtins__": {}})  # a bytes literal copied from the capture
            continue
        if section == "header":
            if line == "":
                section = "exchanges"
            else:
                header.append(line)
        elif section == "exchanges":
            if line.startswith(">>> "):
                exchanges.append((line[4:], []))
            elif line.startswith("<<< "):
                exchanges[-1][1].append(line[4:])
    return Transcript(header, exchanges, trailer)


def header_bytes(
    transcript: Path = FASTAGI_TRANSCRIPT,
    *,
    args: Sequence[str] | None = None,
    script: str | None = None,
    **overrides: str,
) -> bytes:
    """The captured header with fields replaced (``extension="..."``) and new AGI arguments.

    Values are written verbatim, so a test can put anything (quotes, backslashes, a newline
    that splits the line) where Asterisk would put a caller-controlled string.
    """
    lines: list[tuple[str, str]] = []
    for line in load_transcript(transcript).header:
        key, _, value = line.partition(": ")
        if key.endswith(":"):  # "agi_accountcode: " keeps its trailing space in the capture
            key, value = key[:-1], ""
        lines.append((key, value))
    values = dict(lines)
    if script is not None:
        values["agi_network_script"] = script
        values["agi_request"] = f"agi://127.0.0.1:4573/{script}"
    for name, value in overrides.items():
        values[f"agi_{name}"] = value
    keys = [k for k, _ in lines if not k.startswith("agi_arg_")]
    keys += [k for k in values if k not in keys and not k.startswith("agi_arg_")]
    out = [f"{k}: {values[k]}" for k in keys]
    if args is None:
        args = [v for k, v in lines if k.startswith("agi_arg_")]
    out += [f"agi_arg_{i}: {value}" for i, value in enumerate(args, 1)]
    return ("\n".join(out) + "\n\n").encode()


# --- Asterisk's argument parser --------------------------------------------------------------


def asterisk_parse_args(line: str) -> list[str]:
    """A port of ``parse_args()`` from Asterisk 22's ``res/res_agi.c``."""
    argv: list[str] = []
    current: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                current = []
                argv.append("")
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            if current is not None:
                argv[-1] = "".join(current)
            whitespace = True
            current = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            current = []
            argv.append("")
            whitespace = False
        assert current is not None
        current.append(ch)
        argv[-1] = "".join(current)
        escaped = False
    return argv


# --- playing Asterisk ---------------------------------------------------------------------


@dataclass
class Session:
    """What happened on one connection, as Asterisk would see it."""

    variables: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    has_mset: bool = True  # Asterisk 22 has MSet; False plays one without it
    violations: list[str] = field(default_factory=list)
    closed_by_server: bool = False
    reset: bool = False
    seconds: float = 0.0
    returncode: int | None = None
    stderr: str = ""

    @property
    def result(self) -> str:
        return self.variables.get("SCREEN_RESULT", "")

    @property
    def reason(self) -> str:
        return self.variables.get("SCREEN_REASON", "")

    @property
    def dialplan_dials(self) -> bool:
        """What the sample dialplan does with this session: dial only on an explicit ALLOW."""
        return self.result == "ALLOW"


class AsteriskClient:
    """Plays Asterisk against an AGI server on ``host:port``."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0,
                 initial: Mapping[str, str] | None = None, has_mset: bool = True) -> None:
        self.has_mset = has_mset
        self.host = host
        self.port = port
        self.timeout = timeout
        self.initial = dict(initial or {})

    def connect(self, source: str | None = None) -> socket.socket:
        sock = socket.create_connection(
            (self.host, self.port), timeout=self.timeout, source_address=(source, 0) if source else None
        )
        return sock

    def run(
        self,
        header: bytes,
        *,
        source: str | None = None,
        drop_after_header: bool = False,
        hangup_before_reply: bool = False,
        reply_delay: float = 0.0,
        silent: bool = False,
        on_command: Callable[[str], None] | None = None,
    ) -> Session:
        """One FastAGI session over TCP."""
        session = Session(variables=dict(self.initial), has_mset=self.has_mset)
        started = time.monotonic()
        sock = self.connect(source)
        try:
            sock.sendall(header)
            if drop_after_header:
                return session
            self.converse(session, sock.recv, sock.sendall, hangup_before_reply=hangup_before_reply,
                          reply_delay=reply_delay, silent=silent, on_command=on_command)
        finally:
            sock.close()
            session.seconds = time.monotonic() - started
        return session

    def converse(
        self,
        session: Session,
        recv: Callable[[int], bytes],
        send: Callable[[bytes], Any],
        *,
        hangup_before_reply: bool = False,
        reply_delay: float = 0.0,
        silent: bool = False,
        on_command: Callable[[str], None] | None = None,
    ) -> None:
        """Read commands and answer them until the script closes its side."""
        buffer = b""
        sent_hangup = False
        while True:
            try:
                while b"\n" not in buffer:
                    data = recv(65536)
                    if not data:
                        session.closed_by_server = True
                        break
                    buffer += data
            except ConnectionResetError:
                session.reset = session.closed_by_server = True
            if session.closed_by_server:
                if buffer:
                    session.violations.append(f"unterminated command {buffer[:60]!r}")
                break
            raw, buffer = buffer.split(b"\n", 1)
            if buffer:
                session.violations.append("pipelined: next command sent before the reply")
            line = raw.decode("utf-8", errors="replace")
            session.commands.append(line)
            if on_command is not None:
                on_command(line)
            if len(raw) + 1 >= AGI_BUF_LEN:
                session.violations.append("command line longer than Asterisk's buffer")
            if re.search(r"[\x00\r]", line):
                session.violations.append("control character in command line")
            if silent:
                continue
            if hangup_before_reply and not sent_hangup:
                send(b"HANGUP\n")
                sent_hangup = True
            if reply_delay:
                time.sleep(reply_delay)
            send(self.reply(session, line).encode())
        with contextlib.suppress(OSError, ValueError):  # as captured: Asterisk then says "HANGUP"
            send(b"HANGUP\n")

    @staticmethod
    def reply(session: Session, line: str) -> str:
        argv = asterisk_parse_args(line)
        words = [a.upper() for a in argv[:3]]
        if words[:2] == ["SET", "VARIABLE"]:
            if len(argv) < 4:
                return USAGE_SET_VARIABLE
            session.variables[argv[2]] = argv[3]
            return "200 result=1\n"
        if words[:3] == ["GET", "FULL", "VARIABLE"]:
            session.violations.append("GET FULL VARIABLE used")
            return "200 result=0\n"
        if words[:2] == ["GET", "VARIABLE"]:
            name = argv[2] if len(argv) > 2 else ""
            if name in session.variables:
                return f"200 result=1 ({session.variables[name]})\n"
            return "200 result=0\n"
        if words[:2] == ["EXEC", "MSET"] and session.has_mset:
            return AsteriskClient.mset(session, argv[2] if len(argv) > 2 else "")
        if words[:1] == ["EXEC"]:
            if words[:2] == ["EXEC", "MSET"]:
                return "200 result=-2\n"  # as Asterisk answers for an application it lacks
            session.violations.append("EXEC used")
            return "200 result=0\n"
        if words[:1] == ["VERBOSE"]:
            return "200 result=1\n"
        return "510 Invalid or unknown command\n"


    @staticmethod
    def mset(session: Session, data: str) -> str:
        """``MSet(NAME=value,...)`` as Asterisk runs it, left to right; anything but a constant
        name and a plain value (nothing for MSet's quote, escape or ``${}`` handling to act on)
        is a violation."""
        for pair in data.split(","):
            if not re.fullmatch(r"[A-Z][A-Z0-9_]*=[A-Za-z0-9_.:-]*", pair):
                session.violations.append(f"MSet pair that is not plain: {pair[:60]!r}")
            name, _, value = pair.partition("=")
            session.variables[name] = value
        return "200 result=0\n"


def open_idle(host: str, port: int, count: int, payload: bytes = b"") -> list[socket.socket]:
    """``count`` connections that send ``payload`` (maybe nothing) and then go quiet."""
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=5)
        if payload:
            sock.sendall(payload)
        socks.append(sock)
    return socks


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the peer closed (or reset) ``sock`` within ``seconds``."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def run_script(command: Sequence[str], header: bytes, env: Mapping[str, str], *, timeout: float = 30.0,
               hangup_before_reply: bool = False, initial: Mapping[str, str] | None = None,
               close_after_header: bool = False) -> Session:
    """Run a classic AGI script as Asterisk does: header on stdin, commands on stdout, over pipes."""
    import subprocess

    session = Session(variables=dict(initial or {}))
    started = time.monotonic()
    process = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=dict(env))
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    stdin, stdout = process.stdin, process.stdout

    def send(data: bytes) -> None:
        stdin.write(data)
        stdin.flush()

    try:
        with contextlib.suppress(BrokenPipeError):
            send(header)
            if close_after_header:
                stdin.close()
        AsteriskClient("", 0).converse(session, lambda n: os.read(stdout.fileno(), n), send,
                                       hangup_before_reply=hangup_before_reply)
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
        session.returncode = process.wait(timeout)
        session.stderr = process.stderr.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        session.seconds = time.monotonic() - started
    return session
