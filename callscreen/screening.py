"""Screening: normalize, gather facts, decide, log — then answer. Fails closed.

The thin adapter around :func:`callscreen.decision.decide`: everything here is I/O and
bookkeeping; the policy lives in the decision. Invariants: no ALLOW leaves this module unless
its log record was written and (unless durability is waived) confirmed on disk by the store,
see :mod:`callscreen.durability`; any failure becomes BLOCK ``screening_unavailable``; the
asyncio path answers within its decision budget whatever the store does.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis

from callscreen import codec
from callscreen.config import Settings
from callscreen.crypto import NumberVault, SealError
from callscreen.decision import ScreeningRequest, decide
from callscreen.decision_log import DecisionLog, LogRecord
from callscreen.durability import DurabilityGate, DurabilityUnconfirmed
from callscreen.models import Campaign, Check, Decision, Facts, Reason, Result
from callscreen.numbers import InvalidNumber, PhoneNumber, normalize
from callscreen.policy import PolicyBook, PolicyPack
from callscreen.rotation import build_vault, refresh_async
from callscreen.store import (
    STORE_ERRORS,
    FactQuery,
    RegistryLookup,
    Store,
    StoreError,
    campaign_key,
    new_id,
    run_pipeline,
    run_pipeline_async,
)

if TYPE_CHECKING:  # prometheus_client is not imported on the classic script's path
    from callscreen.metrics import ScreeningMetrics


# Whatever the store or the log raises, the answer is BLOCK: store errors, error replies
# (LogWriteError), socket trouble and timeouts (asyncio's and the socket's), a reply of the wrong
# shape, an unconfirmed record (DurabilityUnconfirmed).
STORE_FAILURES = (StoreError, *STORE_ERRORS, OSError, TimeoutError, ValueError, KeyError)


def failure_kind(exc: BaseException) -> str:
    """The ``kind`` label of a failure (see :data:`callscreen.metrics.FAILURE_KINDS`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DurabilityUnconfirmed):
            return "durability"
        if isinstance(seen, TimeoutError | redis.TimeoutError):
            return "timeout"
        if isinstance(seen, redis.BusyLoadingError):
            return "loading"
        if isinstance(seen, redis.ConnectionError | ConnectionError | OSError):
            return "connection"
        if isinstance(seen, redis.ResponseError):
            return "error_reply"
        seen = seen.__cause__
    if isinstance(exc, StoreError):  # an error reply inside a pipeline's replies
        return "error_reply"
    return "bad_data"


def unavailable(detail: str, at: datetime) -> Decision:
    """The fail-closed answer."""
    return Decision(Result.BLOCK, Reason.SCREENING_UNAVAILABLE, None,
                    (Check("screening", False, detail),), decided_at=at)


class CampaignCache:
    """Campaigns by id, kept for ``ttl`` seconds; a miss is fetched at once."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, Campaign | None]] = {}

    def lookup(self, campaign_id: str) -> tuple[bool, Campaign | None]:
        entry = self._entries.get(campaign_id)
        if entry is None or self._clock() - entry[0] > self.ttl:
            return False, None
        return True, entry[1]

    def keep(self, campaign_id: str, campaign: Campaign | None) -> Campaign | None:
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[campaign_id] = (self._clock(), campaign)
        return campaign


class Screener:
    """Answers "may this number be called for this campaign now?" and proves the answer."""

    def __init__(self, store: Store, log: DecisionLog, policies: PolicyBook, *, default_region: str = "RU",
                 registries: RegistryLookup | None = None, aclient: Any = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 metrics: ScreeningMetrics | None = None, campaign_cache_seconds: float = 2.0,
                 deadline_seconds: float = 0.25, durability: DurabilityGate | None = None) -> None:
        self.store = store
        self.vault: NumberVault = store.vault
        self.log = log
        self.policies = policies
        self.default_region = default_region
        self.registries = registries
        self.aclient = aclient
        self.clock = clock
        self.metrics = metrics
        self.campaigns = CampaignCache(campaign_cache_seconds)
        self.deadline = deadline_seconds
        self.durability = durability or DurabilityGate(metrics=metrics)

    # --- the steps ----------------------------------------------------------------------------

    def campaign(self, campaign_id: str) -> Campaign | None:
        cached, campaign = self.campaigns.lookup(campaign_id)
        if cached:
            return campaign
        try:
            return self.campaigns.keep(campaign_id, self.store.get_campaign(campaign_id))
        except STORE_ERRORS as exc:
            raise StoreError(f"campaign lookup failed: {exc}") from exc

    async def campaign_async(self, campaign_id: str) -> Campaign | None:
        cached, campaign = self.campaigns.lookup(campaign_id)
        if cached:
            return campaign
        raw = await self.aclient.get(campaign_key(campaign_id))
        found = None if raw is None else codec.campaign_from(json.loads(raw))
        return self.campaigns.keep(campaign_id, found)

    def _request(self, raw_number: str, campaign: Campaign | None, at: datetime) -> ScreeningRequest:
        region = campaign.default_region if campaign else self.default_region
        number: PhoneNumber | None
        try:
            number = normalize(raw_number, region)
        except InvalidNumber:
            number = None
        return ScreeningRequest(raw_number, number, campaign, at)

    def _query(self, request: ScreeningRequest, logged: bool = True) -> tuple[PolicyPack | None, FactQuery | None]:
        if request.number is None or request.campaign is None:
            return None, None
        pack = self.policies.for_campaign(request.campaign)
        if pack is None:
            return None, None
        registry_ids = pack.all_registries() if request.campaign.advertising else ()
        digest = self._digest(request)
        e164 = request.number.e164
        previous = self.vault.previous_digest(e164)
        # A logged decision seals the number under the subject's data key: the fact query
        # creates that key on first sight (a dry run stores nothing; nor does a decision while
        # the hash key is rotated: the subject's key may still be under its previous digest).
        candidate = self.vault.wrap_key(digest, self.vault.new_data_key()) if logged and not previous else ""
        query = FactQuery(request.number, digest, request.at, registry_ids, self.registries, candidate,
                          previous=previous, erasure=self.vault.erasure_digests(e164),
                          attempt_limit=pack.attempt_read_limit)
        return pack, query

    def _digest(self, request: ScreeningRequest) -> str:
        return self.vault.digest(request.number.e164) if request.number is not None else ""

    def _record(self, request: ScreeningRequest, decision: Decision, origin: str,
                query: FactQuery | None = None) -> tuple[LogRecord, list]:
        digest = query.digest if query is not None else self._digest(request)
        sealed = self._sealed_number(request, query)
        campaign_id = request.campaign.id if request.campaign else ""
        record = LogRecord.from_decision(decision, decision_id=new_id("d"), campaign_id=campaign_id,
                                         digest=digest, sealed=sealed, origin=origin)
        return record, self.log.decision_index_commands(record, attempt=decision.allowed)

    def _sealed_number(self, request: ScreeningRequest, query: FactQuery | None) -> str:
        """The number sealed under its subject's data key for the log record; '' (the keyed
        digest alone) when no key came with the facts: an erased subject, or no facts read."""
        if request.number is None or query is None or not (query.wrapped_key or query.previous_wrapped_key):
            return ""
        try:  # a key still under the previous digest seals for the digest in force, where it moves
            key = (self.vault.unwrap_key(query.digest, query.wrapped_key) if query.wrapped_key
                   else self.vault.unwrap_key(str(query.previous), str(query.previous_wrapped_key)))
        except SealError:
            return ""
        return self.vault.seal_with(key, query.digest, "number", request.number.e164)

    def _answer(self, decision: Decision, origin: str, started: float, record: LogRecord | None = None) -> Decision:
        """Every logged screening leaves through here. ``record`` is given only once the log
        accepted it, and lends the decision its id; an ALLOW without an id becomes BLOCK."""
        if record is not None:
            decision = replace(decision, id=record.id)
        if decision.allowed and not decision.id:
            decision = self._fail("log", "unlogged", "ALLOW without its decision log record",
                                  decision.decided_at or self.clock())
        if self.metrics is not None:
            self.metrics.decisions.labels(decision.result.value, decision.reason.value, origin).inc()
            self.metrics.latency.labels(origin).observe(time.perf_counter() - started)
        return decision

    def _fail(self, stage: str, kind: str, detail: str, at: datetime) -> Decision:
        if self.metrics is not None:
            self.metrics.failures.labels(stage, kind).inc()
        return unavailable(detail, at)

    def _failed(self, stage: str, exc: BaseException, budget: float, at: datetime) -> Decision:
        kind = failure_kind(exc)
        what = "facts unavailable" if stage == "facts" else "decision log unavailable"
        if kind == "timeout" and isinstance(exc, TimeoutError):
            detail = f"{what}: store slower than the {budget * 1000:.0f} ms budget"
        else:
            detail = f"{what}: {exc}"
        return self._fail(stage, kind, detail, at)

    def _vetted(self, decision: Decision) -> Decision:
        """An ALLOW the store cannot keep durably is refused before it is logged."""
        refusal = self.durability.refusal() if decision.allowed else None
        if refusal is None:
            return decision
        return self._fail("log", "not_durable", refusal, decision.decided_at or self.clock())

    # --- sync -------------------------------------------------------------------------------

    def screen(self, raw_number: str, campaign_id: str, at: datetime | None = None, *, origin: str = "cli",
               dry_run: bool = False) -> Decision:
        """Decide and (unless ``dry_run``) log; never raises for store trouble. An ALLOW waits up to
        the decision budget for the store to confirm its record on disk."""
        started = time.perf_counter()
        at = at or self.clock()
        request, query = None, None
        try:
            if not dry_run and self.durability.due():
                self.durability.check(self.store.client)
            request = self._request(raw_number, self.campaign(campaign_id), at)
            pack, query = self._query(request, logged=not dry_run)
            facts = query.parse(run_pipeline(self.store.client, query.commands())) if query else Facts()
            decision = decide(request, facts, pack)
        except STORE_FAILURES as exc:
            decision = self._failed("facts", exc, self.deadline, at)
        if dry_run:
            return decision
        try:
            decision = self._vetted(decision)
            record, extra = self._record(request or self._request(raw_number, None, at), decision, origin, query)
            durable = self.durability.confirmation(self.deadline) if decision.allowed else ()
            self.log.append(record, extra, durable)
        except STORE_FAILURES as exc:
            return self._answer(self._failed("log", exc, self.deadline, at), origin, started)
        return self._answer(decision, origin, started, record)

    # --- asyncio ------------------------------------------------------------------------------

    async def screen_async(self, raw_number: str, campaign_id: str, at: datetime | None = None, *,
                           origin: str = "agi", deadline: float | None = None) -> Decision:
        """The FastAGI path: the answer is back within ``deadline`` seconds of the call, whatever
        the store does (hung, slow, refusing, failing over).

        The one budget covers the facts, the log append and, for an ALLOW, the store's
        confirmation that the record is on disk (``WAITAOF``). Past it, or on any store failure,
        the answer is BLOCK ``screening_unavailable``: logged with an id when the log still took
        it within the budget, returned without an id otherwise (the caller logs that BLOCK off
        the answer's path, with :meth:`log_unavailable_async`).
        """
        started = time.perf_counter()
        at = at or self.clock()
        budget = self.deadline if deadline is None else deadline
        loop = asyncio.get_running_loop()
        ends = loop.time() + budget
        request, query, stage = None, None, "facts"
        try:
            async with asyncio.timeout_at(ends):
                try:
                    await refresh_async(self.vault, self.aclient)  # rotation state, without blocking the loop
                    if self.durability.due():
                        await self.durability.check_async(self.aclient)
                    request = self._request(raw_number, await self.campaign_async(campaign_id), at)
                    pack, query = self._query(request)
                    facts = query.parse(await run_pipeline_async(self.aclient, query.commands())) if query else Facts()
                    decision = decide(request, facts, pack)
                except STORE_FAILURES as exc:  # not the deadline: that cancels the whole block
                    decision = self._failed("facts", exc, budget, at)
                stage = "log"
                decision = self._vetted(decision)
                record, extra = self._record(request or self._request(raw_number, None, at), decision, origin, query)
                durable = self.durability.confirmation(ends - loop.time()) if decision.allowed else ()
                await self.log.append_async(record, extra, durable)
        except STORE_FAILURES as exc:  # TimeoutError: the deadline
            return self._answer(self._failed(stage, exc, budget, at), origin, started)
        return self._answer(decision, origin, started, record)

    async def log_unavailable_async(self, raw_number: str, campaign_id: str, detail: str,
                                    origin: str = "agi") -> Decision:
        """Log a BLOCK ``screening_unavailable`` that was already answered (e.g. a session's hard
        stop); raises StoreError if even that cannot be written."""
        at = self.clock()
        request = self._request(raw_number, None, at)
        decision = unavailable(detail, at)
        record, extra = self._record(request, decision, origin)
        record = replace(record, campaign_id=campaign_id)
        await self.log.append_async(record, extra)
        return replace(decision, id=record.id)


def build_screener(settings: Settings, client: redis.Redis, aclient: Any = None,
                   registries: RegistryLookup | None = None, metrics: ScreeningMetrics | None = None,
                   policies: PolicyBook | None = None) -> Screener:
    """Wire a Screener from settings (keys must be present: fails loudly otherwise)."""
    settings.require_secrets()
    vault = build_vault(settings, client)
    log = DecisionLog(client, settings.keyring("log_key"), settings.retention_days, aclient=aclient,
                      shards=settings.log_shards)
    return Screener(
        Store(client, vault), log, policies or PolicyBook.load(settings.policy_dir),
        default_region=settings.default_region, registries=registries, aclient=aclient, metrics=metrics,
        campaign_cache_seconds=settings.campaign_cache_seconds,
        deadline_seconds=settings.agi_decision_deadline_ms / 1000,
        durability=DurabilityGate(settings.durable_replicas, waived=settings.allow_without_durability,
                                  metrics=metrics),
    )
