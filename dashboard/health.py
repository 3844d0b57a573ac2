"""``/healthz``, ``/readyz`` and ``/metrics`` of the dashboard: no login, no personal data.

Readiness is the one of :mod:`callscreen.health` (store reachable, durability confirmed where the
store's settings are known, required registries fresh). ``/metrics`` exports what the dashboard
owns, read from the store at scrape time so every gunicorn worker reports the same figures:
complaints open and in total, and the registries' freshness.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from callscreen.complaints import COMPLAINTS_KEY, OPEN_KEY
from callscreen.health import Readiness, health_app
from dashboard.services import services

bp = Blueprint("health", __name__)
PUBLIC_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "health.metrics"})
EXTENSION = "callscreen.health"


class ComplaintCollector(Collector):
    """``callscreen_complaints_open`` and ``callscreen_complaints``: counts, never contents."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families(0, 0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pipe = self.client.pipeline(transaction=False)
        pipe.scard(OPEN_KEY)
        pipe.zcard(COMPLAINTS_KEY)
        open_count, total = pipe.execute()
        yield from self._families(open_count, total)

    @staticmethod
    def _families(open_count: int, total: int) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("callscreen_complaints_open", "Complaints not yet resolved", value=open_count)
        yield GaugeMetricFamily("callscreen_complaints", "Complaints on file", value=total)


def _state() -> tuple[Readiness, CollectorRegistry]:
    state = current_app.extensions.get(EXTENSION)
    if state is None:
        svc = services()
        from callscreen.cli.serve import _readiness  # the same checks as the FastAGI port

        registry = CollectorRegistry()
        registry.register(ComplaintCollector(svc.client))
        try:
            from blocklists.metrics import RegistryCollector, limits_from_packs
        except ImportError:
            pass
        else:
            book = svc.screener.policies
            packs = [book.get(j) for j in book.jurisdictions()]
            RegistryCollector(svc.client, registry, limits_from_packs(p for p in packs if p is not None))
        state = (_readiness(svc.client, svc.screener.policies, svc.screener), registry)
        current_app.extensions[EXTENSION] = state
    return state


def _wsgi(path: str) -> Response:
    readiness, _registry = _state()
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        captured["status"], captured["headers"] = status, headers

    body = b"".join(health_app(readiness)({"PATH_INFO": path}, start_response))
    return Response(body, status=int(captured["status"].split()[0]), headers=captured["headers"])


@bp.get("/healthz")
def healthz() -> Response:
    return _wsgi("/healthz")


@bp.get("/readyz")
def readyz() -> Response:
    return _wsgi("/readyz")


@bp.get("/metrics")
def metrics() -> Response:
    _readiness, registry = _state()
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                    headers={"Cache-Control": "no-store"})
