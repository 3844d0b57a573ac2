"""The FastAGI server: Asterisk connects, sends its header, callscreen answers ALLOW or BLOCK.

``AGI(agi://HOST:4573/screen,CAMPAIGN[,NUMBER])`` sets, in this order, ``SCREEN_ID``,
``SCREEN_REASON``, ``SCREEN_BASIS`` and last ``SCREEN_RESULT``: a session cut short leaves
``SCREEN_RESULT`` empty, which the dialplan treats as BLOCK. ``AGI(agi://HOST:4573/outcome,
SCREEN_ID,DIALSTATUS,ANSWEREDTIME,HANGUPCAUSE)`` from the ``h`` extension records how a
dialed call ended. Nothing is ever read back from the channel: the header and the AGI
arguments carry everything, so a screening costs one command round trip (an ``EXEC MSet`` of
the four; four ``SET VARIABLE`` round trips when a value is not plain, see ``FastAGIServer._answer``).

Invariants: the server never answers ALLOW unless the screener returned ALLOW (which it only
does after logging the decision and the store confirming the record on disk); at most
``agi_max_deciding`` screenings are decided at once and the rest wait for a slot at most
``agi_decision_queue_timeout`` (then BLOCK), so a burst does not push every decision past its
budget; once started, the answer leaves within the decision deadline whatever the store does;
every failure answers BLOCK ``screening_unavailable`` or
closes the connection (which the dialplan also reads as BLOCK). Connections are bounded in
number (in total and per peer), time and size; a session waiting on its peer (for the header
or for a reply) can be evicted to make room, a session being decided cannot (see
:mod:`agi.slots`); peers outside the allowlist are closed without a word. Every answer
written is counted in ``callscreen_agi_answers_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agi import protocol, stream
from agi.answer import SCREEN_VARIABLES, WITHHELD, Answer, screen_target
from agi.metrics import AGIMetrics
from agi.protocol import (
    AGIProtocolError,
    Header,
    HeaderReader,
    HeaderTooLarge,
    Reply,
    ReplyReader,
    UnsafeValue,
    parse_header_block,
)
from agi.slots import REPLY, Slot, SlotTable, peer_of
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
EXECUTED_REPLY = b"200 result=0\n"
HARD_STOP_MARGIN = 0.05  # the screener keeps the deadline itself; the hard stop only backs it up
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
        self._known: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        """Whether ``host`` (a peer address as the socket gives it) is allowed; each address's
        answer is kept, as Asterisk connects from a handful of them (at most 4,096 are kept)."""
        known = self._known.get(host)
        if known is None:
            known = self._check(host)
            if len(self._known) >= 4096:
                self._known.clear()
            self._known[host] = known
        return known

    def _check(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


class _AGIStream:
    """Command/reply exchange over one connection; strictly one command in flight.

    While a command waits for its reply the session is marked waiting on its peer, so a
    peer that never replies can be evicted before its reply timeout ends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float,
                 slots: SlotTable, slot: Slot) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.replies = ReplyReader()
        self.slots = slots
        self.slot = slot

    @property
    def hungup(self) -> bool:
        return self.replies.hungup

    async def command(self, line: bytes) -> Reply:
        self.slots.wait(self.slot, REPLY)
        try:
            async with asyncio.timeout(self.timeout):
                self.writer.write(line)
                await self.writer.drain()
                while True:
                    raw = await self.reader.readline()
                    if raw == OK_REPLY:  # by far the most common lines: skip the parser
                        return protocol.OK
                    if raw == EXECUTED_REPLY:
                        return protocol.EXECUTED
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
        finally:
            self.slots.work(self.slot)


class FastAGIServer:
    """An asyncio FastAGI server around an injected screener; start it, then :meth:`drain` it.

    ``agi_max_connections`` bounds open connections, ``agi_max_connections_per_peer`` is one
    address's share of them once the server is full. A newcomer that finds the server full
    evicts the session that has stalled longest on its peer: waiting for its header, or for a
    reply for at least ``agi_stalled_reply_after`` (a live Asterisk sends its header at once and
    replies at once, so only stalled or slow peers wait long). The candidates are its own peer's
    sessions if it holds its share, else the sessions of peers over their share first, else all
    (see :mod:`agi.slots`). Only when none of them has stalled is the newcomer closed unanswered
    (the dialplan reads the empty result as BLOCK).
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
        self.reply_timeout = settings.agi_reply_timeout
        self.deadline = settings.agi_decision_deadline_ms / 1000
        self.queue_timeout = settings.agi_decision_queue_timeout
        self._slots_free = asyncio.Semaphore(settings.agi_max_deciding)  # decision slots
        self.slots = SlotTable(settings.agi_max_connections, settings.agi_max_connections_per_peer,
                               settings.agi_stalled_reply_after)
        self.on_unavailable = on_unavailable
        self.use_mset = True  # answers in one EXEC MSet; off once Asterisk says it has none
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._refusals = _RateLimitedLog(log, interval=1.0)
        self._evictions = _RateLimitedLog(log, interval=1.0)
        self._warnings = _RateLimitedLog(log, interval=1.0)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and listen; :attr:`port` holds the real port (useful with port 0)."""
        if stream.supported():  # asyncio.start_server, with a reader that takes the header at once
            loop = asyncio.get_running_loop()

            def connection() -> asyncio.StreamReaderProtocol:
                reader = stream.HeaderStreamReader(limit=STREAM_LIMIT, loop=loop)
                return asyncio.StreamReaderProtocol(reader, self._on_connect, loop=loop)

            self._server = await loop.create_server(
                connection, host=self.host, port=self.port, backlog=self.settings.agi_backlog,
                reuse_port=self.reuse_port or None,
            )
        else:
            self._server = await asyncio.start_server(
                self._on_connect, host=self.host, port=self.port, backlog=self.settings.agi_backlog,
                reuse_port=self.reuse_port or None, limit=STREAM_LIMIT,
            )
        sockets = self._server.sockets
        self.port = int(sockets[0].getsockname()[1])
        log.info("FastAGI listening on %s:%d", self.host, self.port)

    @property
    def open_connections(self) -> int:
        return len(self.slots)

    async def drain(self, grace: float | None = None) -> None:
        """Stop accepting, let every open session and pending log write finish, then return.

        Sessions still running after ``grace`` seconds (default: header timeout, decision
        hard stop, five reply timeouts (an MSet refused, then four SET VARIABLEs) and 1 s: the longest
        a session can take) are cut.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        if grace is None:
            grace = (self.read_timeout + self.queue_timeout + self.deadline + HARD_STOP_MARGIN
                     + 5 * self.reply_timeout + 1.0)
        pending = list(self._sessions) + list(self._background)
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
        if self._closing:
            self._refuse(writer, host, "overload")
            return
        task = asyncio.current_task()
        slot, evicted, refusal = self.slots.admit(peer_of(host), task, writer.transport)
        for victim in evicted:
            self.metrics.error("evicted")
            self._evictions.note("evicted an AGI session from %s waiting %.1f s for its %s, to make room",
                                 victim.peer, time.monotonic() - victim.waiting_since, victim.evicted_waiting_for)
        if slot is None:
            self._refuse(writer, host, refusal)
            return
        if task is not None:
            self._sessions.add(task)
        self.metrics.connections.inc()
        try:
            await self._session(slot, reader, writer)
        except asyncio.CancelledError:
            if not slot.evicted:
                raise
        finally:
            self.slots.release(slot)
            self._sessions.discard(task)  # type: ignore[arg-type]
            self.metrics.connections.dec()
            with contextlib.suppress(Exception):
                writer.close()

    def _refuse(self, writer: asyncio.StreamWriter, host: str, why: str) -> None:
        """Close a newcomer unanswered: its peer's share or the server is held by working sessions."""
        self.metrics.rejected.labels(why).inc()
        self._refusals.note("refused AGI connection from %s (%s): %d connections open, %d from this peer",
                            host, why, len(self.slots), self.slots.held_by(peer_of(host)))
        writer.transport.abort()

    async def _read_header(self, reader: asyncio.StreamReader) -> Header:
        """The whole header, ending with its blank line, within one read timeout (no slowloris).

        Lines may end in LF or CRLF (mixed too); the blank line ends the header either way. The
        block is taken in one read where the reader can (:mod:`agi.stream`), else line by line."""
        try:
            async with asyncio.timeout(self.read_timeout):
                if isinstance(reader, stream.HeaderStreamReader):
                    return parse_header_block(await reader.read_header(protocol.MAX_HEADER_BYTES))
                lines = HeaderReader()
                while not lines.done:
                    raw = await reader.readline()
                    if not raw.endswith(b"\n"):
                        raise SessionError("connection_lost", "closed before the header ended")
                    lines.feed(raw)
            return lines.header()
        except asyncio.IncompleteReadError:
            raise SessionError("connection_lost", "closed before the header ended") from None
        except TimeoutError:
            raise SessionError("header_timeout", f"no complete header in {self.read_timeout}s") from None
        except HeaderTooLarge as exc:
            raise SessionError("header_too_large", str(exc)) from exc
        except AGIProtocolError as exc:
            raise SessionError("bad_header", str(exc)) from exc
        except ValueError as exc:  # one line longer than the stream limit
            raise SessionError("header_too_large", f"header line longer than {STREAM_LIMIT} bytes") from exc
        except (ConnectionError, OSError) as exc:
            raise SessionError("connection_lost", str(exc)) from exc

    async def _session(self, slot: Slot, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = _AGIStream(reader, writer, self.reply_timeout, self.slots, slot)
        try:
            try:
                header = await self._read_header(reader)
            except SessionError as exc:
                self.slots.work(slot)
                if exc.kind == "bad_header":
                    # complete but malformed (e.g. a caller-ID name carrying a newline): say BLOCK
                    self.metrics.sessions.labels("invalid").inc()
                    await self._answer(stream, Answer.unavailable())
                raise
            self.slots.work(slot)
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
                log.info("AGI session from %s ended early (%s): %s", slot.peer, exc.kind, exc)
            else:
                self._warnings.note("AGI session from %s ended early (%s): %s", slot.peer, exc.kind, exc)
        except Exception:
            self.metrics.error("internal")
            log.exception("AGI session from %s failed", slot.peer)

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
        seconds = time.perf_counter() - started
        self.metrics.answer_seconds.observe(seconds)
        campaign = self._campaign_label(target[1] if target else "")
        self.metrics.campaign_answers.labels(campaign, answer.result).inc()
        if log.isEnabledFor(logging.INFO):
            log.info("answered %s %s", answer.result, answer.reason, extra={
                "decision_id": answer.decision_id, "result": answer.result, "reason": answer.reason,
                "campaign": campaign, "uniqueid": header.get("agi_uniqueid")[:40], "ms": round(seconds * 1000, 2)})

    def _campaign_label(self, campaign_id: str) -> str:
        """The campaign id when it names a known campaign, else ``_unknown``: a peer cannot grow
        the metric's label set by inventing campaign names."""
        cache = getattr(self.screener, "campaigns", None)
        if cache is None or not campaign_id:
            return "_unknown"
        cached, campaign = cache.lookup(campaign_id)
        return campaign_id if cached and campaign is not None else "_unknown"

    async def _decide(self, number: str, campaign: str) -> Answer:
        """Wait for a decision slot, then decide (see :meth:`_decide_now`).

        At most ``agi_max_deciding`` screenings are decided at once; the rest wait here, before
        their decision deadline starts, so a burst of calls is decided a slot at a time within the
        budget instead of all at once past it (each decision's store round trips would otherwise
        share the event loop with hundreds of others). A call that waits longer than
        ``agi_decision_queue_timeout`` is answered BLOCK ``screening_unavailable``, logged in the
        background: the worker is overloaded, and the dialer should hear so rather than wait on.
        """
        if not self._slots_free.locked():
            await self._slots_free.acquire()  # a slot is free (and nobody waits): no queue, no timer
        else:
            self.metrics.queued.inc()
            try:
                async with asyncio.timeout(self.queue_timeout):
                    await self._slots_free.acquire()
            except TimeoutError:
                self.metrics.error("queued_too_long")
                self._warnings.note("a screening waited %.1f s for a decision slot (%d in progress): answering BLOCK",
                                    self.queue_timeout, self.settings.agi_max_deciding)
                self._track(self._after_deadline(number, campaign, "no decision slot free in time: worker overloaded"))
                return Answer.unavailable()
            finally:
                self.metrics.queued.dec()
        self.metrics.deciding.inc()
        try:
            return await self._decide_now(number, campaign)
        finally:
            self.metrics.deciding.dec()
            self._slots_free.release()

    async def _decide_now(self, number: str, campaign: str) -> Answer:
        """Ask the screener; it answers within the decision deadline (facts, log append and
        durability confirmation included), BLOCK when the store cannot keep it.

        A fail-closed BLOCK the screener could not log in time is logged in the background. The
        server adds a hard stop just past the deadline: a screening stuck past that is cancelled,
        the caller gets BLOCK at once and the BLOCK is logged in the background (if the cancelled
        screening had already logged, the later record supersedes it).
        """
        try:
            async with asyncio.timeout(self.deadline + HARD_STOP_MARGIN):
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
            if not decision.id:  # not logged within the deadline
                detail = decision.checks[0].detail if decision.checks else "screening unavailable"
                self._track(self._after_deadline(number, campaign, detail))
        return Answer.of(decision)

    async def _after_deadline(self, number: str, campaign: str, detail: str = "decision deadline exceeded") -> None:
        """The caller was told BLOCK: log the BLOCK we gave, off the answer's path."""
        writer = self.on_unavailable or self._log_unavailable
        try:
            async with asyncio.timeout(self.read_timeout):
                await writer(number, campaign, detail)
        except Exception as exc:  # the store is down or hung: one line a second, not one per call
            self._warnings.note("could not log a fail-closed BLOCK (%s): %s", detail[:80], exc)

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
        """Write the four variables, SCREEN_RESULT last; counted once acknowledged.

        One ``EXEC MSet`` when every value is plain (the usual case: one round trip instead of
        four), else one ``SET VARIABLE`` each, which quotes anything; also when this Asterisk
        has no MSet (then the server stops trying it)."""
        pairs = list(zip(SCREEN_VARIABLES, answer.values(), strict=True))
        line = protocol.set_variables(pairs) if self.use_mset else None
        if line is not None:
            reply = await stream.command(line)
            if reply.code == 200 and reply.result == protocol.NO_APPLICATION:
                self.use_mset = False
                log.warning("Asterisk has no MSet application: setting the variables one at a time")
            elif not reply.ok:
                raise SessionError("asterisk_error", f"MSet: {reply.code} {reply.text[:80]}")
            else:
                self.metrics.answers.labels(answer.result, answer.reason).inc()
                return
        for name, value in pairs:
            try:
                command = protocol.set_variable(name, value)
            except UnsafeValue:
                self.metrics.error("unsafe_value")
                log.error("refused to send an unsafe %s value", name)
                command = protocol.set_variable(name, WITHHELD)
            reply = await stream.command(command)
            if reply.code != 200:
                raise SessionError("asterisk_error", f"{name}: {reply.code} {reply.text[:80]}")
        self.metrics.answers.labels(answer.result, answer.reason).inc()

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
