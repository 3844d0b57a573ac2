"""The FastAGI server: Asterisk connects, sends its header, callscreen answers ALLOW or BLOCK.

``AGI(agi://HOST:4573/screen,CAMPAIGN[,NUMBER])`` sets, in this order, ``SCREEN_ID``,
``SCREEN_REASON``, ``SCREEN_BASIS`` and last ``SCREEN_RESULT``: a session cut short leaves
``SCREEN_RESULT`` empty, which the dialplan treats as BLOCK. ``AGI(agi://HOST:4573/outcome,
SCREEN_ID,DIALSTATUS,ANSWEREDTIME,HANGUPCAUSE)`` from the ``h`` extension records how a
dialed call ended. Nothing is ever read back from the channel: the header and the AGI
arguments carry everything, so a screening costs four command round trips.

Invariants: the server never answers ALLOW unless the screener returned ALLOW (which it only
does after logging the decision); every failure answers BLOCK ``screening_unavailable`` or
closes the connection (which the dialplan also reads as BLOCK). Connections are bounded in
number, time and size; peers outside the allowlist are closed without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agi import protocol
from agi.answer import SCREEN_VARIABLES, WITHHELD, Answer, screen_target
from agi.metrics import AGIMetrics
from agi.protocol import AGIProtocolError, Header, HeaderTooLarge, Reply, ReplyReader, UnsafeValue
from callscreen.config import Settings
from callscreen.models import Decision, Reason, Result

log = logging.getLogger("callscreen.agi")

DIAL_STATUSES = frozenset(
    {"ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE", "INVALIDARGS"}
)
MAX_ANSWERED_SECONDS = 7 * 24 * 3600
_DECISION_ID = re.compile(r"^d-[0-9a-z]{1,13}-[0-9a-f]{8}$")  # callscreen.store.new_id("d")
_CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
OK_REPLY = b"200 result=1\n"
LOG_ALLOWANCE = 1.0  # the screener's own bound on a decision log append
_DIGITS = re.compile(r"^[0-9]{1,7}$")
STREAM_LIMIT = protocol.MAX_HEADER_BYTES  # bounds the header (readuntil) and every reply line


class AsyncScreener(Protocol):
    """What the server needs from :class:`callscreen.screening.Screener`."""

    async def screen_async(self, raw_number: str, campaign_id: str, at: Any = None, *,
                           origin: str = "agi", deadline: float | None = None) -> Decision: ...


class OutcomeRecorder(Protocol):
    """What the server needs from :class:`callscreen.decision_log.DecisionLog` (sync or async)."""

    async def record_outcome_async(self, decision_id: str, dialstatus: str, answered_seconds: int,
                                   hangup_cause: str) -> Any: ...


class SessionError(Exception):
    """A session could not run to its end; ``kind`` is the metrics label."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Outcome:
    """A validated ``outcome`` request."""

    decision_id: str
    dialstatus: str  # "" when Dial() never ran: the allowed call was not an attempt
    answered_seconds: int
    hangup_cause: str  # Q.850 cause as digits, or ""


def parse_outcome(args: Sequence[str]) -> Outcome:
    """Validate ``SCREEN_ID,DIALSTATUS,ANSWEREDTIME,HANGUPCAUSE`` strictly (ValueError if not).

    The values come from channel variables, which a misconfigured dialplan (or a dialer that
    sets them itself) can fill with anything: only exact, plausible values pass.
    """
    if len(args) != 4:
        raise ValueError(f"outcome takes 4 arguments, got {len(args)}")
    decision_id, dialstatus, answered, cause = args
    if not _DECISION_ID.fullmatch(decision_id):
        raise ValueError("SCREEN_ID is not a decision id")
    if dialstatus and dialstatus not in DIAL_STATUSES:
        raise ValueError(f"DIALSTATUS {dialstatus[:20]!r} is not a Dial() status")
    if answered == "":
        seconds = 0
    elif _DIGITS.fullmatch(answered) and int(answered) <= MAX_ANSWERED_SECONDS:
        seconds = int(answered)
    else:
        raise ValueError(f"ANSWEREDTIME {answered[:20]!r} is not a number of seconds")
    if cause and not (_DIGITS.fullmatch(cause) and int(cause) <= 127):
        raise ValueError(f"HANGUPCAUSE {cause[:20]!r} is not a Q.850 cause")
    if dialstatus != "ANSWER" and seconds:
        raise ValueError("ANSWEREDTIME set on a call that was not answered")
    return Outcome(decision_id, dialstatus, seconds, str(int(cause)) if cause else "")


class PeerAllowlist:
    """Asterisk hosts allowed to connect: IP addresses, CIDR networks or host names (resolved once)."""

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            try:
                infos = socket.getaddrinfo(entry, None, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise ValueError(f"allowed host {entry!r} does not resolve: {exc}") from exc
            for info in infos:
                networks.append(ipaddress.ip_network(str(info[4][0]).split("%")[0]))
        if not networks:
            raise ValueError("the allowlist of Asterisk hosts is empty")
        self.networks = tuple(networks)

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


class _AGIStream:
    """Command/reply exchange over one connection; strictly one command in flight."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.replies = ReplyReader()

    @property
    def hungup(self) -> bool:
        return self.replies.hungup

    async def command(self, line: bytes) -> Reply:
        try:
            async with asyncio.timeout(self.timeout):
                self.writer.write(line)
                await self.writer.drain()
                while True:
                    raw = await self.reader.readline()
                    if raw == OK_REPLY:  # by far the most common line: skip the parser
                        return protocol.OK
                    if not raw.endswith(b"\n"):
                        raise SessionError("connection_lost", "Asterisk closed the connection")
                    reply = self.replies.feed(raw.decode("utf-8", errors="replace"))
                    if reply is not None:
                        return reply
        except TimeoutError:
            raise SessionError("reply_timeout", f"no reply within {self.timeout}s") from None
        except (ConnectionError, OSError) as exc:
            raise SessionError("connection_lost", str(exc)) from exc
        except ValueError as exc:  # reply line over the stream limit, or not AGI
            raise SessionError("asterisk_error", str(exc)) from exc


class _Connection:
    __slots__ = ("peer", "reading_header", "started", "task", "writer")

    def __init__(self, task: asyncio.Task[Any] | None, writer: asyncio.StreamWriter, peer: str) -> None:
        self.task = task
        self.writer = writer
        self.peer = peer
        self.started = time.monotonic()
        self.reading_header = True


class FastAGIServer:
    """An asyncio FastAGI server around an injected screener; start it, then :meth:`drain` it.

    ``max_connections`` bounds open connections. When the server is full, the connection that
    has waited longest for its header is dropped to make room (a live Asterisk sends its header
    at once, so only idle or slow peers can be waiting); if none is waiting, the newcomer is
    closed unanswered (Asterisk reads that as an empty result, which the dialplan blocks).
    """

    def __init__(
        self,
        settings: Settings,
        screener: AsyncScreener,
        *,
        outcomes: OutcomeRecorder | None = None,
        metrics: AGIMetrics | None = None,
        host: str | None = None,
        port: int | None = None,
        allowed_hosts: Iterable[str] | None = None,
        reuse_port: bool = False,
        on_unavailable: Callable[[str, str, str], Awaitable[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.screener = screener
        self.outcomes = outcomes
        self.metrics = metrics or AGIMetrics()
        self.host = host if host is not None else settings.agi_host
        self.port = settings.agi_port if port is None else port
        self.allowlist = PeerAllowlist(allowed_hosts if allowed_hosts is not None else settings.agi_allowed_hosts)
        self.reuse_port = reuse_port
        self.read_timeout = settings.agi_read_timeout
        self.deadline = settings.agi_decision_deadline_ms / 1000
        self.max_connections = settings.agi_max_connections
        self.on_unavailable = on_unavailable
        self._server: asyncio.Server | None = None
        self._open: dict[int, _Connection] = {}
        self._waiting: OrderedDict[int, _Connection] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._refusals = _RateLimitedLog(log, interval=1.0)
        self._warnings = _RateLimitedLog(log, interval=1.0)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and listen; :attr:`port` holds the real port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._on_connect,
            host=self.host,
            port=self.port,
            backlog=self.settings.agi_backlog,
            reuse_port=self.reuse_port or None,
            limit=STREAM_LIMIT,
        )
        sockets = self._server.sockets
        self.port = int(sockets[0].getsockname()[1])
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def drain(self, grace: float | None = None) -> None:
        """Stop accepting, let every open session and pending log write finish, then return.

        Sessions still running after ``grace`` seconds (default: read timeout + deadline +
        1 s, the longest a healthy session can take) are cut.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        grace = self.read_timeout * 2 + self.deadline + 1.0 if grace is None else grace
        pending = [c.task for c in self._open.values() if c.task is not None] + list(self._background)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=1.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Start (if needed), serve until ``stop`` is set, then drain."""
        if self._server is None:
            await self.start()
        await stop.wait()
        await self.drain()

    # --- connections ------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if peer else ""
        if not self.allowlist.allows(host):
            self.metrics.rejected.labels("peer").inc()
            self._refusals.note("refused AGI connection from %s (not in the allowlist)", host)
            writer.transport.abort()
            return
        if self._closing or not self._make_room():
            self.metrics.rejected.labels("overload").inc()
            self._refusals.note("refused AGI connection from %s: %d connections open", host, len(self._open))
            writer.transport.abort()
            return
        task = asyncio.current_task()
        conn = _Connection(task, writer, host)
        key = id(conn)
        self._open[key] = conn
        self._waiting[key] = conn
        self.metrics.connections.inc()
        try:
            await self._session(conn, reader, writer)
        except asyncio.CancelledError:
            if conn.reading_header:
                self.metrics.error("evicted")
                log.info("dropped idle AGI connection from %s to make room", host)
            else:
                raise
        finally:
            self._open.pop(key, None)
            self._waiting.pop(key, None)
            self.metrics.connections.dec()
            with contextlib.suppress(Exception):
                writer.close()

    def _make_room(self) -> bool:
        if len(self._open) < self.max_connections:
            return True
        while self._waiting:
            _key, oldest = self._waiting.popitem(last=False)
            if oldest.task is not None and not oldest.task.done():
                oldest.task.cancel()
                oldest.writer.transport.abort()
                return True
        return False

    async def _read_header(self, reader: asyncio.StreamReader) -> Header:
        """The whole header, ending with its blank line, within one read timeout (no slowloris)."""
        try:
            async with asyncio.timeout(self.read_timeout):
                block = await reader.readuntil(b"\n\n")
            return protocol.parse_header_bytes(block)
        except TimeoutError:
            raise SessionError("header_timeout", f"no complete header in {self.read_timeout}s") from None
        except asyncio.IncompleteReadError:
            raise SessionError("connection_lost", "closed before the header ended") from None
        except asyncio.LimitOverrunError as exc:
            raise SessionError("header_too_large", f"no header end within {STREAM_LIMIT} bytes") from exc
        except HeaderTooLarge as exc:
            raise SessionError("header_too_large", str(exc)) from exc
        except AGIProtocolError as exc:
            raise SessionError("bad_header", str(exc)) from exc
        except (ConnectionError, OSError) as exc:
            raise SessionError("connection_lost", str(exc)) from exc

    async def _session(self, conn: _Connection, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        stream = _AGIStream(reader, writer, self.read_timeout)
        try:
            try:
                header = await self._read_header(reader)
            except SessionError as exc:
                conn.reading_header = False
                self._waiting.pop(id(conn), None)
                if exc.kind == "bad_header":
                    # complete but malformed (e.g. a caller-ID name carrying a newline): say BLOCK
                    self.metrics.sessions.labels("invalid").inc()
                    await self._answer(stream, Answer.unavailable())
                raise
            conn.reading_header = False
            self._waiting.pop(id(conn), None)
            script = header.script
            if script == "screen":
                self.metrics.sessions.labels("screen").inc()
                await self._screen(stream, header)
            elif script == "outcome":
                self.metrics.sessions.labels("outcome").inc()
                await self._outcome(header)
            else:
                self.metrics.sessions.labels("unknown").inc()
                self.metrics.error("unknown_script")
                log.warning("unknown AGI script %r (uniqueid %s): answering BLOCK",
                            script[:40], header.get("agi_uniqueid")[:40])
                await self._answer(stream, Answer.unavailable())
        except SessionError as exc:
            self.metrics.error(exc.kind)
            if exc.kind == "connection_lost":
                log.info("AGI session from %s ended early (%s): %s", conn.peer, exc.kind, exc)
            else:
                self._warnings.note("AGI session from %s ended early (%s): %s", conn.peer, exc.kind, exc)
        except Exception:
            self.metrics.error("internal")
            log.exception("AGI session from %s failed", conn.peer)

    # --- scripts ---------------------------------------------------------------------

    async def _screen(self, stream: _AGIStream, header: Header) -> None:
        started = time.perf_counter()
        target = screen_target(header.args, header.extension)
        if target is None:
            self.metrics.error("bad_arguments")
            log.warning("screen called with %d arguments (uniqueid %s): answering BLOCK",
                        len(header.args), header.get("agi_uniqueid")[:40])
            answer = Answer.unavailable()
        else:
            answer = await self._decide(*target)
        await self._answer(stream, answer)
        self.metrics.answer_seconds.observe(time.perf_counter() - started)
        self.metrics.answers.labels(answer.result, answer.reason).inc()

    async def _decide(self, number: str, campaign: str) -> Answer:
        """Ask the screener; it answers within its deadline (logging a BLOCK when the store is slow).

        The server adds a hard stop of deadline + log allowance: a screening stuck past that
        is cancelled, the caller gets BLOCK at once and the BLOCK is logged in the background
        (if the cancelled screening had already logged, the later record supersedes it).
        """
        try:
            async with asyncio.timeout(self.deadline + LOG_ALLOWANCE):
                decision = await self.screener.screen_async(number, campaign, origin="agi", deadline=self.deadline)
        except TimeoutError:  # the screening was cancelled where it stood
            self.metrics.error("deadline")
            self._warnings.note("screening exceeded its %d ms deadline: answering BLOCK",
                                self.settings.agi_decision_deadline_ms)
            self._track(self._after_deadline(number, campaign))
            return Answer.unavailable()
        except Exception:
            self.metrics.error("screener")
            log.exception("screener failed: answering BLOCK")
            return Answer.unavailable()
        if decision.result is Result.ALLOW and not decision.id:
            # ALLOW is only valid once logged; an unlogged ALLOW is a bug upstream: refuse it.
            self.metrics.error("screener")
            log.error("screener returned ALLOW without a decision log id: answering BLOCK")
            return Answer.unavailable()
        if decision.reason is Reason.SCREENING_UNAVAILABLE:
            self.metrics.error("deadline" if _timed_out(decision) else "screener")
        return Answer.of(decision)

    async def _after_deadline(self, number: str, campaign: str) -> None:
        """The caller was told BLOCK: log the BLOCK we gave, off the answer's path."""
        writer = self.on_unavailable or self._log_unavailable
        try:
            async with asyncio.timeout(self.read_timeout):
                await writer(number, campaign, "decision deadline exceeded")
        except Exception:
            log.exception("could not log the deadline BLOCK")

    async def _log_unavailable(self, raw_number: str, campaign_id: str, detail: str) -> None:
        log_unavailable = getattr(self.screener, "log_unavailable_async", None)
        if log_unavailable is None:
            return
        campaign = campaign_id if _CAMPAIGN_ID.fullmatch(campaign_id) else ""
        await log_unavailable(raw_number, campaign, detail, origin="agi")

    def _track(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _answer(self, stream: _AGIStream, answer: Answer) -> None:
        for name, value in zip(SCREEN_VARIABLES, answer.values(), strict=True):
            try:
                line = protocol.set_variable(name, value)
            except UnsafeValue:
                self.metrics.error("unsafe_value")
                log.error("refused to send an unsafe %s value", name)
                line = protocol.set_variable(name, WITHHELD)
            reply = await stream.command(line)
            if reply.code != 200:
                raise SessionError("asterisk_error", f"{name}: {reply.code} {reply.text[:80]}")

    async def _outcome(self, header: Header) -> None:
        try:
            outcome = parse_outcome(header.args)
        except ValueError as exc:
            self.metrics.error("outcome_rejected")
            log.warning("outcome rejected (uniqueid %s): %s", header.get("agi_uniqueid")[:40], exc)
            return
        if self.outcomes is None:
            self.metrics.error("outcome_store")
            log.error("no decision log to record outcomes in")
            return
        try:
            async with asyncio.timeout(self.read_timeout):
                await self.outcomes.record_outcome_async(
                    outcome.decision_id, outcome.dialstatus, outcome.answered_seconds, outcome.hangup_cause
                )
        except KeyError:
            self.metrics.error("outcome_rejected")
            log.warning("outcome for unknown decision %s", outcome.decision_id)
            return
        except Exception:
            self.metrics.error("outcome_store")
            log.exception("could not record the outcome of %s", outcome.decision_id)
            return
        self.metrics.outcomes.labels(outcome.dialstatus or "none").inc()


class _RateLimitedLog:
    """At most one warning per ``interval`` seconds, with the count of the ones held back: a
    flood of refused connections must not turn into a flood of log lines (or block on stderr)."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self.logger = logger
        self.interval = interval
        self._next = 0.0
        self._held = 0

    def note(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now < self._next:
            self._held += 1
            return
        if self._held:
            message += f" (and {self._held} more in the last {self.interval:g}s)"
        self.logger.warning(message, *args)
        self._next, self._held = now + self.interval, 0


def _timed_out(decision: Decision) -> bool:
    return any(not c.passed and "budget" in c.detail for c in decision.checks)
