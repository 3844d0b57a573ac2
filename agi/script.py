"""``callscreen-agi``: the classic (process-per-call) AGI script, for sites without the daemon.

Dialplan: ``AGI(callscreen-agi,CAMPAIGN[,NUMBER])`` — the same contract as the FastAGI
``screen`` script: ``SCREEN_ID``, ``SCREEN_REASON``, ``SCREEN_BASIS``, then ``SCREEN_RESULT``.
Installed (or linked) under the name ``outcome`` it is the FastAGI ``outcome`` script instead:
``AGI(.../outcome,SCREEN_ID,DIALSTATUS,ANSWEREDTIME,HANGUPCAUSE)`` records how an allowed call
ended and says nothing to the channel; so the sample dialplan runs unchanged with
``agi-bin/callscreen/{screen,outcome}`` linked to this script and ``CALLSCREEN_AGI=callscreen``.
Settings come from ``CALLSCREEN_*`` environment variables and the TOML file they name.

The channel is driven through pyst2's :class:`asterisk.agi.AGI`, wrapped so that it never
sends an unquoted value (our :func:`agi.protocol.quote` replaces its bare double-quoting),
never writes the call's environment or arguments (phone numbers) to stderr, reads a bounded
header, and understands Asterisk's bare ``HANGUP`` line. Fails closed: any error answers
BLOCK ``screening_unavailable`` while the channel is still there.

Start-up time is this script's main cost, so modules are imported only on the path that
needs them, only the campaign's policy pack is built, the packs' parsed TOML is read from
``<data_dir>/cache/policies`` while the files are unchanged, and public-holiday calendars are read
from ``<data_dir>/cache/calendars`` once a first call has computed them (the ``holidays``
library imports every country's table to compute one).
"""

from __future__ import annotations

import io
import os
import sys
from typing import IO, TYPE_CHECKING, Any

from agi import protocol
from agi.answer import SCREEN_VARIABLES, WITHHELD, Answer, screen_target

if TYPE_CHECKING:
    from asterisk.agi import AGI

ORIGIN = "agi-script"
TIME_LIMIT_SECONDS = 10  # a script stuck on a pipe or the store gives up and fails closed
EXIT_OK = 0
EXIT_FAILED = 1  # Asterisk ignores the code; it shows in `agi set debug on` and in tests


def _quoted_agi_class() -> type[AGI]:
    """pyst2's AGI with our header reading, quoting and reply parsing in place of its own."""
    from asterisk.agi import AGI, AGIAppError, AGIInvalidCommand, AGIUnknownError, AGIUsageError

    class QuotedAGI(AGI):  # type: ignore[misc]
        def __init__(self, stdin: IO[bytes], stdout: IO[str]) -> None:
            self._raw_in = stdin
            self._replies = protocol.ReplyReader()
            self.header: protocol.Header | None = None
            self.header_error: protocol.AGIProtocolError | None = None
            self.header_consumed = False
            # pyst2 logs sys.argv and every header line (numbers, caller ID) to stderr: discard it.
            super().__init__(stdin=stdin, stdout=stdout, stderr=_Discard())

        def _get_agi_env(self) -> None:
            """Read the bounded header; a malformed one is kept in :attr:`header_error`."""
            reader = protocol.HeaderReader()
            try:
                while True:
                    raw = self._raw_in.readline(protocol.MAX_LINE_BYTES)
                    if len(raw) >= protocol.MAX_LINE_BYTES and not raw.endswith(b"\n"):
                        raise protocol.HeaderTooLarge("header line too long")
                    if reader.feed(raw):
                        break
                self.header_consumed = True
                self.header = reader.header()
                self.env = dict(self.header.env)
            except protocol.AGIProtocolError as exc:
                self.header_error = exc

        def _quote(self, string: Any) -> str:
            return protocol.quote(string if isinstance(string, str) else str(string))

        def set_variable(self, name: str, value: str) -> None:
            self.execute("SET VARIABLE", protocol.check_variable_name(name), self._quote(value))

        def send_command(self, command: str, *args: Any) -> None:
            line = " ".join([command.strip(), *map(str, args)]).strip() + "\n"
            if "\n" in line[:-1] or "\r" in line or "\x00" in line or len(line.encode()) >= protocol.MAX_LINE_BYTES:
                raise protocol.UnsafeValue("command would not be one Asterisk command line")
            self.stdout.write(line)
            self.stdout.flush()

        def get_result(self, stdin: Any = None) -> dict[str, tuple[str, str]]:
            while True:
                raw = self._raw_in.readline(protocol.MAX_LINE_BYTES)
                if not raw.endswith(b"\n"):
                    raise AGIAppError("Asterisk closed the AGI pipe")
                reply = self._replies.feed(raw.decode("utf-8", errors="replace"))
                if reply is not None:
                    break
            if reply.code == 510:
                raise AGIInvalidCommand(reply.text)
            if reply.code == 520:
                raise AGIUsageError("\n".join((*reply.usage, reply.text)))
            if reply.code != 200 or reply.result is None:
                raise AGIUnknownError(reply.code, "Unhandled code or undefined response")
            if reply.result < 0:
                raise AGIAppError("Error executing application, or hangup")
            return {"result": (str(reply.result), reply.data or "")}

    return QuotedAGI


class _Discard(io.StringIO):
    def write(self, text: str) -> int:
        return len(text)


class _LazyRegistries:
    """The do-not-call registry lookup, imported only when a campaign's law requires a registry
    (a Russian campaign, for one, never pays for it)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lookup: Any = None

    def _real(self) -> Any:
        if self._lookup is None:
            from callscreen.store import NoRegistries

            try:
                from blocklists.lookup import registry_lookup_for
            except ImportError:
                self._lookup = NoRegistries()
            else:
                self._lookup = registry_lookup_for(self.client)
        return self._lookup

    def commands(self, number: Any, registry_ids: Any) -> list[Any]:
        return self._real().commands(number, registry_ids) if registry_ids else []

    def parse(self, number: Any, registry_ids: Any, replies: Any) -> tuple[Any, ...]:
        return self._real().parse(number, registry_ids, replies) if registry_ids else ()


def _answer(agi: Any, answer: Answer) -> None:
    for name, value in zip(SCREEN_VARIABLES, answer.values(), strict=True):
        try:
            agi.set_variable(name, value)
        except protocol.UnsafeValue:
            agi.set_variable(name, WITHHELD)


def decide(header: protocol.Header, environ: dict[str, str] | os._Environ[str]) -> Answer:
    """Screen the call the header describes; raises on any trouble (the caller fails closed)."""
    target = screen_target(header.args, header.extension)
    if target is None:
        print("callscreen-agi: usage: AGI(callscreen-agi,CAMPAIGN[,NUMBER])", file=sys.stderr)
        return Answer.unavailable()
    from callscreen import calendars
    from callscreen.config import load_settings
    from callscreen.policy import PolicyBook
    from callscreen.screening import build_screener

    settings = load_settings(environ=environ)
    cache = settings.data_dir / "cache" if settings.data_dir.is_absolute() else None  # a relative
    if cache is not None:  # one would land wherever Asterisk runs us from
        calendars.use_cache(cache / "calendars")
    client = _store_client(settings)
    try:
        # One call needs one pack: the others are read but neither built nor validated here
        # (`callscreen serve` validates them all when it starts), and their TOML is parsed only
        # when a file changed.
        policies = PolicyBook.load_lazily(settings.policy_dir, cache / "policies" if cache else None)
        screener = build_screener(settings, client, registries=_LazyRegistries(client), policies=policies)
        decision = screener.screen(*target, origin=ORIGIN)
        if decision.allowed and not decision.id:
            raise RuntimeError("ALLOW without a decision log id")
        return Answer.of(decision)
    finally:
        client.close()


def _store_client(settings: Any) -> Any:
    url = settings.redis_url
    if not url:
        from callscreen.cli.context import running_embedded_url

        url = running_embedded_url(settings)
        if not url:
            raise RuntimeError("no store: set CALLSCREEN_REDIS_URL")
    import redis

    budget = settings.agi_decision_deadline_ms / 1000
    return redis.Redis.from_url(url, socket_connect_timeout=budget, socket_timeout=budget + 1.0,
                                **_client_name(redis.__version__))


def _client_name(version: str) -> dict[str, Any]:
    """What redis-py names itself with (``CLIENT SETINFO``), its version given: left to itself it
    reads its version from its package metadata on every first connection, through the ``email``
    parser (≈ 10 ms of a call; a long-running process pays it once)."""
    try:
        from redis.driver_info import DriverInfo
    except ImportError:  # an older redis-py, without DriverInfo: its own defaults
        return {}
    return {"driver_info": DriverInfo(lib_version=version)}


def is_outcome_request(header: protocol.Header) -> bool:
    """True when Asterisk started this script as ``.../outcome`` (``agi_request`` is the path
    given to ``AGI()``)."""
    return os.path.basename(header.get("agi_request")) == "outcome"


def record_outcome(header: protocol.Header, environ: dict[str, str] | os._Environ[str]) -> int:
    """Record ``SCREEN_ID,DIALSTATUS,ANSWEREDTIME,HANGUPCAUSE`` (checked strictly, as the FastAGI
    server does) against the decision; sends nothing to the channel, which has hung up."""
    from agi.server import parse_outcome
    from callscreen.config import load_settings
    from callscreen.decision_log import DecisionLog

    try:
        outcome = parse_outcome(header.args)
    except ValueError as exc:
        print(f"callscreen-agi: outcome rejected: {exc}", file=sys.stderr)
        return EXIT_FAILED
    settings = load_settings(environ=environ).require_secrets()
    client = _store_client(settings)
    try:
        log = DecisionLog(client, settings.keyring("log_key"), settings.retention_days, shards=settings.log_shards)
        log.record_outcome(outcome.decision_id, outcome.dialstatus, outcome.answered_seconds, outcome.hangup_cause)
    except KeyError:
        print("callscreen-agi: outcome for an unknown decision", file=sys.stderr)
        return EXIT_FAILED
    finally:
        client.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``callscreen-agi``; Asterisk talks to it over stdin/stdout."""
    import gc
    import signal

    # One call, then the process exits: nothing lives long enough for the cycle collector to pay
    # off, and its passes over every object the imports create (phonenumbers' metadata above all)
    # are a measurable part of the start-up this script is made of.
    gc.disable()

    signal.signal(signal.SIGALRM, _out_of_time)
    signal.alarm(TIME_LIMIT_SECONDS)
    stdin = sys.stdin.buffer
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", write_through=True)
    try:
        agi = _quoted_agi_class()(stdin, stdout)
    except Exception as exc:
        print(f"callscreen-agi: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if agi.header is None:
        print(f"callscreen-agi: bad AGI header: {agi.header_error}", file=sys.stderr)
        if not agi.header_consumed:
            return EXIT_FAILED  # replies would be mixed with the rest of the header: say nothing
        answer, code = Answer.unavailable(), EXIT_FAILED
    elif is_outcome_request(agi.header):
        try:
            return record_outcome(agi.header, os.environ)
        except Exception as exc:
            print(f"callscreen-agi: outcome not recorded: {type(exc).__name__}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    else:
        try:
            answer, code = decide(agi.header, os.environ), EXIT_OK
        except Exception as exc:
            print(f"callscreen-agi: screening failed, answering BLOCK: {type(exc).__name__}: {exc}",
                  file=sys.stderr)
            answer, code = Answer.unavailable(), EXIT_FAILED
    signal.alarm(2)  # answering takes four round trips on a local pipe
    try:
        _answer(agi, answer)
    except Exception as exc:  # the channel is gone (SIGHUP, closed pipe) or Asterisk refused
        print(f"callscreen-agi: could not answer: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


def _out_of_time(signum: int, frame: Any) -> None:
    raise TimeoutError(f"callscreen-agi ran out of its {TIME_LIMIT_SECONDS} s")


if __name__ == "__main__":
    sys.exit(main())
