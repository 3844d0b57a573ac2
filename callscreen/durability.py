"""Durability of the decision log: an ALLOW leaves only once its record is on disk.

The store confirms each ALLOW with ``WAITAOF 1 0 <ms>`` (and ``WAIT <replicas> <ms>`` when
``durable_replicas`` is set), sent right behind the append in the same pipeline, so on the same
connection: WAITAOF answers once the store's append-only file has fsynced every write the
connection made, WAIT once that many replicas have received them. A short count, an error
reply or no answer in time makes the answer BLOCK (:class:`DurabilityUnconfirmed`).

Replicas are counted with WAIT (received) rather than ``WAITAOF 1 N`` (fsynced by them):
pipelined behind the write, a Valkey 9.1 replica reports its fsync only in its once-a-second
acknowledgement, so ``WAITAOF 1 1`` takes 0.5 to 1 s, far beyond a decision budget
(docs/benchmarks.md). A record fsynced here and held by N other hosts survives the loss of any
one host and a site-wide power cut.

:class:`DurabilityGate` also reads the store's persistence settings (``CONFIG GET`` and
``INFO``) before the first decision and every minute after. Where they cannot give the
guarantee (no append-only file, ``appendfsync no``, or settings callscreen may not read, as on
some managed services) every ALLOW is refused up front with a clear detail, a loud log line and
the ``callscreen_log_durability{state="refused"}`` gauge, unless the operator set
``allow_without_durability``: then ALLOWs are answered without any confirmation (``waived``).
On a Redis Cluster every master is read and the verdict is the weakest of theirs: a record may be
appended on any of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from callscreen.cluster import is_cluster_client, masters_run, masters_run_async
from callscreen.store import Command, StoreError, run_pipeline, run_pipeline_async

if TYPE_CHECKING:  # prometheus_client is not imported on the classic script's path
    from callscreen.metrics import ScreeningMetrics

log = logging.getLogger("callscreen.durability")

CONFIRMED, REFUSED, UNKNOWN, WAIVED = "confirmed", "refused", "unknown", "waived"
STATES = (CONFIRMED, REFUSED, UNKNOWN, WAIVED)  # = metrics.DURABILITY_STATES
RECHECK_SECONDS = 60.0  # a known verdict is read again this often (the store may be reconfigured)
RETRY_SECONDS = 1.0  # an unreachable store is asked again this often
STORE_TICK = 0.1  # how late a store at the default hz 10 may notice a blocked command's timeout
REPLY_MARGIN = 0.01
OPT_OUT_HINT = "set allow_without_durability = true to answer ALLOW without it (docs/store.md)"


class DurabilityUnconfirmed(StoreError):
    """The record was appended but the store did not confirm it on disk in time: not ALLOW."""


def confirmation(replicas: int, timeout_ms: float) -> tuple[Command, ...]:
    """The commands that confirm every write the connection made so far: fsynced by the store
    (``WAITAOF 1 0``) and received by ``replicas`` replicas (``WAIT``); ``timeout_ms`` is at
    least 1 (0 would wait forever)."""
    timeout = max(1, int(timeout_ms))
    local: Command = ("WAITAOF", 1, 0, timeout)
    return (local, ("WAIT", replicas, timeout)) if replicas else (local,)


def confirm(commands: Sequence[Command], replies: Sequence[Any]) -> None:
    """Raise :class:`DurabilityUnconfirmed` unless ``replies`` confirm what ``commands`` asked."""
    for command, reply in zip(commands, replies, strict=True):
        if isinstance(reply, Exception):
            raise DurabilityUnconfirmed(f"the store cannot confirm the record on disk: {reply}") from reply
        try:
            if command[0] == "WAITAOF":
                wanted, got = int(command[1]), int(reply[0])
            else:
                wanted, got = int(command[1]), int(reply)
        except (TypeError, ValueError, IndexError):
            raise DurabilityUnconfirmed(f"unexpected {command[0]} reply {str(reply)[:60]}") from None
        if got < wanted and command[0] == "WAITAOF":
            raise DurabilityUnconfirmed(f"the store did not fsync the record within {command[-1]} ms")
        if got < wanted:
            raise DurabilityUnconfirmed(f"{got} of {wanted} replicas received the record within {command[-1]} ms")


@dataclass(frozen=True)
class Verdict:
    """What the store's persistence settings allow: ``state`` is one of :data:`STATES`."""

    state: str
    detail: str
    warnings: tuple[str, ...] = ()


CHECK_COMMANDS: tuple[Command, ...] = (
    ("CONFIG", "GET", "appendonly", "appendfsync", "no-appendfsync-on-rewrite"),
    ("INFO", "persistence"),
    ("INFO", "replication"),
)


def judge(config: Any, persistence: Any, replication: Any, replicas: int) -> Verdict:
    """The verdict on the replies to :data:`CHECK_COMMANDS` (an error reply is an exception)."""
    if isinstance(config, Exception):
        aof = persistence.get("aof_enabled") if isinstance(persistence, Mapping) else None
        if aof is not None and int(aof) == 0:
            return Verdict(REFUSED, "the store keeps no append-only file (aof_enabled:0): decision records "
                                    f"live in memory until the next snapshot; {OPT_OUT_HINT}")
        return Verdict(REFUSED, f"cannot read the store's persistence settings (CONFIG GET: {config}), so "
                                f"cannot tell whether it fsyncs decision records; {OPT_OUT_HINT}")
    settings = _pairs(config)
    appendonly, appendfsync = settings.get("appendonly", ""), settings.get("appendfsync", "")
    if appendonly != "yes":
        return Verdict(REFUSED, f"the store keeps no append-only file (appendonly {appendonly or 'unset'}): "
                                f"decision records live in memory until the next snapshot; {OPT_OUT_HINT}")
    if appendfsync not in ("always", "everysec"):
        return Verdict(REFUSED, f"appendfsync {appendfsync or 'unset'}: the store leaves fsync to the "
                                f"operating system, so no record is ever confirmed on disk; set appendfsync "
                                f"always, or {OPT_OUT_HINT}")
    warnings = []
    if appendfsync == "everysec":
        warnings.append("appendfsync everysec: each ALLOW waits for the store's once-a-second fsync (about "
                        "100-200 ms, up to 1 s), so many miss the decision deadline and are answered "
                        "BLOCK; set appendfsync always")
    if settings.get("no-appendfsync-on-rewrite") == "yes":
        warnings.append("no-appendfsync-on-rewrite yes: ALLOWs are answered BLOCK while the store "
                        "rewrites its append-only file")
    connected = int(replication.get("connected_slaves", 0)) if isinstance(replication, Mapping) else 0
    if replicas > connected:
        warnings.append(f"durable_replicas is {replicas} but {connected} replica(s) are connected: "
                        "ALLOWs are answered BLOCK until enough replicas confirm")
    return Verdict(CONFIRMED, f"appendonly yes, appendfsync {appendfsync}, {replicas} replica(s) required",
                   tuple(warnings))


def _pairs(reply: Any) -> dict[str, str]:
    """``CONFIG GET`` as a dict of text, whichever shape the client parsed it into."""
    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    if isinstance(reply, Mapping):
        return {text(k): text(v) for k, v in reply.items()}
    items = list(reply or ())
    return {text(k): text(v) for k, v in zip(items[::2], items[1::2], strict=False)}


class DurabilityGate:
    """Whether an ALLOW may leave now, and the command that confirms its record on disk.

    Thread- and task-safe enough: a verdict is one attribute replaced whole; two callers
    checking at once only ask the store twice.
    """

    def __init__(self, replicas: int = 0, *, waived: bool = False, metrics: ScreeningMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.replicas = replicas
        self.waived = waived
        self.metrics = metrics
        self._clock = clock
        self._checked_at: float | None = None
        self.verdict = Verdict(UNKNOWN, "the store's persistence settings have not been read yet")
        if waived:
            self._set(Verdict(WAIVED, "allow_without_durability is set: ALLOWs are answered without "
                                      "confirming their records on disk"))

    # --- the verdict ------------------------------------------------------------------------

    def due(self) -> bool:
        """Time to (re)read the store's settings: never when waived."""
        if self.waived:
            return False
        if self._checked_at is None:
            return True
        wait = RETRY_SECONDS if self.verdict.state == UNKNOWN else RECHECK_SECONDS
        return self._clock() - self._checked_at >= wait

    def check(self, client: Any) -> Verdict:
        """Read the settings with a sync client (a store that cannot answer leaves ALLOW refused)."""
        if self.waived:
            return self.verdict
        try:
            if is_cluster_client(client):
                return self._settle_masters(masters_run(client, CHECK_COMMANDS))
            replies = run_pipeline(client, CHECK_COMMANDS)
        except StoreError as exc:
            return self._unreachable(exc)
        return self._settle(replies)

    async def check_async(self, client: Any) -> Verdict:
        """:meth:`check` with an asyncio client."""
        if self.waived:
            return self.verdict
        try:
            if is_cluster_client(client):
                return self._settle_masters(await masters_run_async(client, CHECK_COMMANDS))
            replies = await run_pipeline_async(client, CHECK_COMMANDS)
        except StoreError as exc:
            return self._unreachable(exc)
        return self._settle(replies)

    def refusal(self) -> str | None:
        """Why no ALLOW may leave now, or None when one may (after :meth:`confirmation`)."""
        if self.verdict.state in (CONFIRMED, WAIVED):
            return None
        return f"decision log not durable: {self.verdict.detail}"

    def refusal_checked(self, client: Any) -> str | None:
        """:meth:`refusal` after reading the store's settings when they are due (for probes such
        as ``/readyz``, which may run before any decision has read them)."""
        if self.due():
            self.check(client)
        return self.refusal()

    def confirmation(self, remaining: float) -> tuple[Command, ...]:
        """The commands that confirm an ALLOW's record with ``remaining`` seconds of the budget
        left; none when durability is waived.

        The store checks a blocked command's timeout on its clock tick (``hz`` 10: up to 100 ms
        late), so WAITAOF and WAIT are given what is left less :data:`STORE_TICK` and a margin for its
        reply: it then says "not confirmed" itself, inside the budget, rather than being cut
        off by the caller's deadline (which still holds if it does not)."""
        if self.waived:
            return ()
        return confirmation(self.replicas, (remaining - STORE_TICK - REPLY_MARGIN) * 1000)

    # --- keeping the verdict ------------------------------------------------------------------

    def _settle(self, replies: Sequence[Any]) -> Verdict:
        self._checked_at = self._clock()
        config, persistence, replication = replies
        return self._set(judge(config, persistence, replication, self.replicas))

    def _settle_masters(self, replies: Mapping[str, Sequence[Any]]) -> Verdict:
        """A cluster's verdict: the first master that refuses (named), else confirmed with every
        master's warnings."""
        self._checked_at = self._clock()
        verdicts = {node: judge(*node_replies, self.replicas) for node, node_replies in sorted(replies.items())}
        if not verdicts:
            return self._unreachable(StoreError("the cluster named no master"))
        refused = [(node, v) for node, v in verdicts.items() if v.state != CONFIRMED]
        if refused:
            node, verdict = refused[0]
            return self._set(Verdict(verdict.state, f"cluster master {node}: {verdict.detail}"))
        warnings = tuple(dict.fromkeys(w for v in verdicts.values() for w in v.warnings))
        first = next(iter(verdicts.values()))
        return self._set(Verdict(CONFIRMED, f"{len(verdicts)} cluster masters: {first.detail}", warnings))

    def _unreachable(self, exc: Exception) -> Verdict:
        self._checked_at = self._clock()
        if self.verdict.state in (CONFIRMED, REFUSED):
            return self.verdict  # keep what the store last said: per-decision confirmation still applies
        return self._set(Verdict(UNKNOWN, f"cannot read the store's persistence settings: {exc}"))

    def _set(self, verdict: Verdict) -> Verdict:
        previous, self.verdict = self.verdict, verdict
        if (verdict.state, verdict.detail, verdict.warnings) != (previous.state, previous.detail, previous.warnings):
            if verdict.state == REFUSED:
                log.error("decision log NOT durable, every ALLOW is answered BLOCK screening_unavailable: %s",
                          verdict.detail)
            elif verdict.state == WAIVED:
                log.warning("%s; a power loss can lose the records of ALLOWs already answered", verdict.detail)
            elif verdict.state == CONFIRMED:
                log.info("decision log durability confirmed per ALLOW: %s", verdict.detail)
            for warning in verdict.warnings:
                log.warning("decision log durability: %s", warning)
        if self.metrics is not None:
            for state in STATES:
                self.metrics.durability.labels(state).set(1 if state == verdict.state else 0)
        return verdict
