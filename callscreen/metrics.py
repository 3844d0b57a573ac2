"""Prometheus metrics for screening. Every collector takes an injectable registry."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ScreeningMetrics:
    """Decisions by result and reason, decision latency, and log/store failures."""

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
            "callscreen_screening_failures", "Store or log failures that forced a BLOCK",
            ("stage",), registry=registry,
        )
