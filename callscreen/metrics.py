"""Prometheus metrics for screening. Every collector takes an injectable registry."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

# Where a fail-closed BLOCK came from, and how the store let the decision down.
FAILURE_STAGES = ("facts", "log")
FAILURE_KINDS = (
    "timeout",       # no answer within the decision deadline: hung, paused or slow store
    "connection",    # refused, reset or unreachable
    "loading",       # the store is loading its data after a restart
    "error_reply",   # the store answered with an error: OOM, READONLY after a failover, …
    "durability",    # appended, but not confirmed on disk (and replicas) in time
    "not_durable",   # ALLOW refused up front: the store's persistence settings cannot give the guarantee
    "bad_data",      # a stored value callscreen cannot read
    "unlogged",      # an ALLOW reached the answer without its record (a bug upstream): refused
)
DURABILITY_STATES = ("confirmed", "refused", "unknown", "waived")


class ScreeningMetrics:
    """Decisions by result and reason, decision latency, failures by kind, log durability."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.decisions = Counter(
            "callscreen_decisions", "Screening decisions by result, reason and origin",
            ("result", "reason", "origin"), registry=registry,
        )
        self.latency = Histogram(
            "callscreen_decision_seconds", "Time to decide and log one screening request",
            ("origin",), buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.failures = Counter(
            "callscreen_screening_failures", "Store or log failures that forced a BLOCK, by stage and kind",
            ("stage", "kind"), registry=registry,
        )
        self.durability = Gauge(
            "callscreen_log_durability",
            "1 for the current state of the decision log's durability: confirmed (every ALLOW waits for "
            "its record on disk), refused (the store cannot give it: ALLOW is refused), unknown (not read "
            "yet: ALLOW is refused), waived (allow_without_durability)",
            ("state",), registry=registry, multiprocess_mode="livemax",
        )
        for stage in FAILURE_STAGES:
            for kind in FAILURE_KINDS:
                self.failures.labels(stage, kind)
        for state in DURABILITY_STATES:
            self.durability.labels(state)


class RetentionCollector(Collector):
    """``callscreen_retention_*`` gauges, read from the store at scrape time so every process
    (and host) shows the last run, whichever ran it."""

    def __init__(self, client: Any, registry: CollectorRegistry | None = REGISTRY) -> None:
        self.client = client
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("callscreen_retention_last_run_timestamp_seconds",
                              "When the last complete retention run finished (Unix time)"),
            GaugeMetricFamily("callscreen_retention_last_run_duration_seconds", "How long the last run took"),
            GaugeMetricFamily("callscreen_retention_last_run_deleted", "Records the last run deleted, by kind",
                              labels=["kind"]),
            GaugeMetricFamily("callscreen_retention_store_up", "1 when the last run could be read"),
        )

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from callscreen import codec
        from callscreen.retention import KINDS, last_run
        from callscreen.store import STORE_ERRORS

        finished, duration, deleted, up = self._families()
        try:
            last = last_run(self.client)
        except STORE_ERRORS:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        if last is not None:
            finished.add_metric([], codec.parse_time(last["finished_at"]).timestamp())
            duration.add_metric([], float(last["duration_seconds"]))
            for kind in KINDS:
                deleted.add_metric([kind], float(last["deleted"].get(kind, 0)))
        yield from (finished, duration, deleted, up)
