"""Prometheus metrics of the FastAGI server, on an injectable registry.

Names are stable (dashboards and alerts use them); every label has a small fixed value set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

ERROR_KINDS = (
    "bad_header", "header_too_large", "header_timeout", "reply_timeout", "asterisk_error",
    "connection_lost", "unknown_script", "bad_arguments", "deadline", "screener", "unsafe_value",
    "evicted", "outcome_rejected", "outcome_store", "queued_too_long", "internal",
)


class AGIMetrics:
    """Counters and histograms for sessions, decisions, errors and refused connections."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sessions = Counter(
            "callscreen_agi_sessions", "FastAGI sessions by script name", ["script"], registry=r
        )
        self.answers = Counter(
            "callscreen_agi_answers", "Screening answers written to channels", ["result", "reason"], registry=r
        )
        self.errors = Counter(
            "callscreen_agi_session_errors", "AGI sessions that went wrong, by kind", ["kind"], registry=r
        )
        self.rejected = Counter(
            "callscreen_agi_rejected_connections",
            "Connections closed without an answer: peer not allowed, its share full, or server full",
            ["why"],
            registry=r,
        )
        self.campaign_answers = Counter(
            "callscreen_agi_campaign_answers",
            "Screening answers by campaign (known campaigns only; others count as _unknown) and result",
            ["campaign", "result"], registry=r,
        )
        self.outcomes = Counter(
            "callscreen_agi_outcomes", "Call outcomes recorded, by dial status", ["dialstatus"], registry=r
        )
        self.answer_seconds = Histogram(
            "callscreen_agi_answer_seconds",
            "Time from a complete AGI header to the committed answer",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.connections = Gauge(
            "callscreen_agi_connections", "Open AGI connections", registry=r, multiprocess_mode="livesum"
        )
        self.deciding = Gauge(
            "callscreen_agi_decisions_in_progress", "Screenings being decided (at most agi_max_deciding a worker)",
            registry=r, multiprocess_mode="livesum",
        )
        self.queued = Gauge(
            "callscreen_agi_decisions_queued", "Screenings waiting for a decision slot (their deadline not started)",
            registry=r, multiprocess_mode="livesum",
        )
        # Present from the start at 0, so the first fail-closed answer after a restart is an
        # increase an alert can see (a counter born at 1 shows none).
        self.answers.labels("BLOCK", "screening_unavailable")
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        for why in ("peer", "peer_limit", "overload"):
            self.rejected.labels(why)

    def error(self, kind: str) -> None:
        self.errors.labels(kind if kind in ERROR_KINDS else "internal").inc()
