"""/healthz and /readyz: readiness says whether the service can answer ALLOW with a proven record."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime

import redis
from prometheus_client import CollectorRegistry

from blocklists.registry import RegistryManager
from callscreen.health import Readiness, start_metrics_server
from callscreen.models import Campaign
from callscreen.policy import PolicyBook
from tests_support import free_port

BOOK = PolicyBook.load()


def readiness(client, **options) -> Readiness:
    return Readiness(client, BOOK, registry_status=lambda packs: RegistryManager(client).status(packs),
                     cache_seconds=0, **options)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ready_when_the_store_answers_and_no_jurisdiction_in_use_needs_a_registry(store) -> None:
    store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    ready, checks = readiness(store.client).report()
    assert ready and [c.name for c in checks] == ["store", "registries"]


def test_not_ready_while_a_registry_a_campaign_needs_is_missing_then_ready_once_loaded(store, tmp_path) -> None:
    store.put_campaign(Campaign("us-promo", "promotions", "US", "US", "America/New_York"))
    probe = readiness(store.client)
    ready, checks = probe.report()
    assert not ready and "us-dnc missing" in checks[1].detail
    (tmp_path / "dnc.txt").write_text("212,5550101\n")
    RegistryManager(store.client, clock=lambda: datetime.now(UTC)).import_file(
        "us-dnc", tmp_path / "dnc.txt", fmt="ftc", country="US")
    assert probe.report()[0]


def test_not_ready_when_durability_is_refused(store) -> None:
    ready, checks = readiness(store.client, durability=lambda: "appendfsync is everysec").report()
    assert not ready and checks[1].name == "durability" and "everysec" in checks[1].detail


def test_not_ready_when_the_store_does_not_answer() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    ready, checks = readiness(client).report()
    assert not ready and checks[0].name == "store" and not checks[0].ok
    assert checks[1].detail == "store unreachable"


def test_the_metrics_port_serves_health_readiness_and_metrics(store) -> None:
    port = free_port()
    server = start_metrics_server(port, "127.0.0.1", CollectorRegistry(), readiness(store.client))
    try:
        assert get(f"http://127.0.0.1:{port}/healthz") == (200, {"status": "ok"})
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and body["ready"] is True
        store.put_campaign(Campaign("uk", "promotions", "GB", "GB", "Europe/London"))
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and body["ready"] is False
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
    finally:
        server.shutdown()
