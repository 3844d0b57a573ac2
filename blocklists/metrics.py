"""Prometheus view of the registries: age, size and staleness against the policy limits.

Read at scrape time from ``cs:reg:*:current`` (two short commands), so the figures are those
of the store, whichever process imported the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from blocklists.registry import RegistryManager
from callscreen.store import STORE_ERRORS


class RegistryCollector(Collector):
    """Collector of ``callscreen_registry_*`` gauges; registers itself on ``registry``.

    ``max_age_days`` maps registry id -> the strictest policy limit (see
    :func:`limits_from_packs`); required registries that are not loaded export
    ``callscreen_registry_stale 1`` so an alert fires before calls start being blocked.
    """

    def __init__(self, client: redis.Redis, registry: CollectorRegistry | None = REGISTRY,
                 max_age_days: Mapping[str, int] | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.manager = RegistryManager(client)
        self.max_age_days = dict(max_age_days or {})
        self.clock = clock
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without reading the store (prometheus calls this on registration)."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        age = GaugeMetricFamily("callscreen_registry_age_seconds",
                                "Seconds since the registry was last loaded or updated", labels=["registry"])
        records = GaugeMetricFamily("callscreen_registry_records", "Numbers on the registry", labels=["registry"])
        bad = GaugeMetricFamily("callscreen_registry_bad_lines",
                                "Bad lines skipped by the last full import", labels=["registry"])
        stale = GaugeMetricFamily("callscreen_registry_stale",
                                  "1 when a required registry is missing or older than its policy limit",
                                  labels=["registry"])
        up = GaugeMetricFamily("callscreen_registry_store_up", "1 when the registry metadata could be read")
        return age, records, bad, stale, up

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age, records, bad, stale, up = self._families()
        try:
            infos = self.manager.loaded()
        except STORE_ERRORS:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        now = self.clock()
        seen = set()
        for info in infos:
            seen.add(info.id)
            seconds = info.age_seconds(now)
            age.add_metric([info.id], seconds)
            records.add_metric([info.id], info.records)
            bad.add_metric([info.id], info.bad_lines)
            limit = self.max_age_days.get(info.id)
            if limit:
                stale.add_metric([info.id], 1.0 if seconds > limit * 86400 else 0.0)
        for registry_id in sorted(set(self.max_age_days) - seen):
            stale.add_metric([registry_id], 1.0)
        yield from (age, records, bad, stale, up)


def limits_from_packs(packs: Iterable[Any]) -> dict[str, int]:
    """Registry id -> the strictest ``registry_max_age_days`` among the packs that require it."""
    limits: dict[str, int] = {}
    for pack in packs:
        for registry_id in pack.all_registries():
            days = pack.registry_max_age_days
            if days > 0:
                limits[registry_id] = min(days, limits.get(registry_id, days))
    return limits
