"""Fixtures for the Asterisk side (helpers live in ``agi_env.py`` and ``tests/asterisk_client.py``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent))

from agi_env import WEDNESDAY_MORNING, AGIEnv, ServerThread, _start

from callscreen.config import Settings


@pytest.fixture
def agi_factory(settings: Settings, redis_client: redis.Redis) -> Iterator[Callable[..., AGIEnv]]:
    """Start servers with adjusted settings: ``agi_factory(agi_read_timeout=0.5, host=...)``."""
    started: list[AGIEnv] = []

    def make(*, host: str = "127.0.0.1", allowed_hosts: Sequence[str] | None = None,
             aclient_url: str | None = None, **overrides: Any) -> AGIEnv:
        tuned = replace(settings, agi_port=0, agi_read_timeout=overrides.pop("agi_read_timeout", 2.0),
                        **overrides)
        registry = CollectorRegistry()
        clock = [WEDNESDAY_MORNING]
        runner = ServerThread()
        server, screener = _start(tuned, redis_client, registry, clock, runner, aclient_url, host=host,
                                  allowed_hosts=allowed_hosts)
        env = AGIEnv(server, screener, screener.store, redis_client, tuned, registry, clock, runner)
        started.append(env)
        return env

    yield make
    for env in started:
        try:
            env.runner.call(env.server.drain(grace=5.0))
            env.runner.call(env.screener.aclient.aclose())
        finally:
            env.runner.stop()


@pytest.fixture
def agi(agi_factory: Callable[..., AGIEnv]) -> AGIEnv:
    return agi_factory()
