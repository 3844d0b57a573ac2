"""Helpers for the Asterisk-side tests: a real FastAGI server on an ephemeral port, in its own
event-loop thread, around a real Screener over the real valkey server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio
from asterisk_client import AsteriskClient
from prometheus_client import CollectorRegistry

from agi.metrics import AGIMetrics
from agi.server import FastAGIServer
from callscreen.config import Settings
from callscreen.metrics import ScreeningMetrics
from callscreen.models import RegistryStatus
from callscreen.numbers import PhoneNumber
from callscreen.screening import Screener, build_screener
from callscreen.store import Command, Store

# A Wednesday morning in UTC: 10:00 in Kaliningrad to 20:00 in Kamchatka (a Russian mobile may be
# in any of Russia's zones), 09:00 in London. US tests move the clock to WEDNESDAY_US_NOON.
WEDNESDAY_MORNING = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)
WEDNESDAY_US_NOON = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)


class TestRegistries:
    """A do-not-call registry lookup over plain Redis keys (the RegistryLookup protocol).

    ``test:reg:<id>:numbers`` is a set of E.164 numbers, ``test:reg:<id>:loaded`` an ISO time.
    """

    @staticmethod
    def load(client: redis.Redis, registry_id: str, numbers: Sequence[str], loaded_at: datetime) -> None:
        client.set(f"test:reg:{registry_id}:loaded", loaded_at.isoformat())
        if numbers:
            client.sadd(f"test:reg:{registry_id}:numbers", *numbers)

    def commands(self, number: PhoneNumber, registry_ids: Sequence[str]) -> list[Command]:
        out: list[Command] = []
        for rid in registry_ids:
            out += [("SISMEMBER", f"test:reg:{rid}:numbers", number.e164), ("GET", f"test:reg:{rid}:loaded")]
        return out

    def parse(self, number: PhoneNumber, registry_ids: Sequence[str],
              replies: Sequence[Any]) -> tuple[RegistryStatus, ...]:
        out = []
        for i, rid in enumerate(registry_ids):
            listed, loaded = replies[2 * i], replies[2 * i + 1]
            at = datetime.fromisoformat(loaded.decode()) if loaded else None
            out.append(RegistryStatus(rid, listed=bool(listed), loaded_at=at))
        return tuple(out)


class ServerThread:
    """Runs an asyncio event loop in a thread; the server and its asyncio client live there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class AGIEnv:
    """One running server and what a test needs around it."""

    server: FastAGIServer
    screener: Screener
    store: Store
    client: redis.Redis
    settings: Settings
    registry: CollectorRegistry
    clock: list[datetime]
    runner: ServerThread

    @property
    def port(self) -> int:
        return self.server.port

    def asterisk(self, **kwargs: Any) -> AsteriskClient:
        return AsteriskClient(self.server.host, self.port, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def _start(settings: Settings, client: redis.Redis, registry: CollectorRegistry, clock: list[datetime],
           runner: ServerThread, aclient_url: str | None = None,
           **server_kwargs: Any) -> tuple[FastAGIServer, Screener]:
    async def build() -> tuple[FastAGIServer, Screener]:
        aclient = redis.asyncio.Redis.from_url(aclient_url or settings.redis_url)
        screener = build_screener(settings, client, aclient, registries=TestRegistries(),
                                  metrics=ScreeningMetrics(registry))
        screener.clock = lambda: clock[0]
        server = FastAGIServer(settings, screener, outcomes=screener.log, metrics=AGIMetrics(registry),
                               **server_kwargs)
        await server.start()
        return server, screener

    return runner.call(build())
