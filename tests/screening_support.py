"""Helpers for screening against private store processes (tests/test_durability.py,
tests/test_deadlines.py): a screener wired to one server, and consented numbers to screen."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio

from callscreen.config import Settings
from callscreen.embedded import EmbeddedServer
from callscreen.metrics import ScreeningMetrics
from callscreen.models import Proof
from callscreen.screening import Screener, build_screener
from harness.screening import seed_consents

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday
CAMPAIGN = "spring"


def own_screener(settings: Settings, server: EmbeddedServer, *, asyncio: bool = False,
                 metrics: ScreeningMetrics | None = None, **overrides: Any) -> Screener:
    """A screener over ``server`` only; with ``asyncio`` call it inside the running loop."""
    tuned = replace(settings, redis_url=server.url, **overrides)
    client = redis.Redis.from_url(server.url, socket_timeout=5)
    aclient = redis.asyncio.Redis.from_url(server.url) if asyncio else None
    return build_screener(tuned, client, aclient, metrics=metrics)


def numbers(count: int) -> list[str]:
    return [f"+7999{1000000 + i:07d}" for i in range(count)]


def seed(screener: Screener, count: int = 1) -> list[str]:
    """A Russian campaign and ``count`` numbers consented to it; returns the numbers."""
    return seed_consents(screener.store, CAMPAIGN, numbers(count), AT, proof=Proof(form_version="v3"))


def waitaof_calls(server: EmbeddedServer) -> int:
    """How many WAITAOF commands ``server`` has run."""
    stats = redis.Redis.from_url(server.url).info("commandstats")
    return int(stats.get("cmdstat_waitaof", {}).get("calls", 0))
