"""Constants, store faults and process helpers shared by tests (importable because tests/ is on sys.path)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

from callscreen.decision_log import HEADS, DecisionLog
from callscreen.keys import Keyring
from callscreen.log_shards import LogShard, shard_of

TEST_HASH_KEY = bytes(range(32))
TEST_ENCRYPTION_KEY = bytes(range(32, 64))
TEST_LOG_KEY = bytes(range(64, 96))
CALLSCREEN = str(Path(sys.executable).with_name("callscreen"))

def store_client(url: str, *, asyncio: bool = False) -> Any:
    """A plain client of a test store (no timeouts, like redis-py's defaults) for one server;
    for a ``redis+cluster://`` URL a cluster client, built as callscreen builds it."""
    from callscreen.cluster import is_cluster_url
    from callscreen.store import connect

    if is_cluster_url(url):
        return connect(url, asyncio=asyncio, timeout=30)
    return redis.asyncio.Redis.from_url(url) if asyncio else redis.Redis.from_url(url)


# Ways a real store refuses decision-log writes while still answering the reads a decision needs:
# "oom" — the server is out of memory (maxmemory reached, noeviction): every write is refused;
# "lua_error" — the log's chain-head key holds the wrong type, so the append script fails inside
#   Lua with an error reply (only the log is affected: tokens, consents, facts all work).
LOG_FAULTS = ("oom", "lua_error")
KEPT_HEADS = HEADS + ":kept-by-test"  # same hash tag, so RENAME stays in the slot


@contextmanager
def refusing_log_writes(client: redis.Redis, fault: str) -> Iterator[None]:
    """Make the store refuse decision-log appends for the duration of the block."""
    if fault == "oom":
        client.config_set("maxmemory", "1")
    elif fault == "lua_error":
        if client.exists(HEADS):
            client.rename(HEADS, KEPT_HEADS)
        client.set(HEADS, "not a hash")
    else:
        raise ValueError(fault)
    try:
        yield
    finally:
        if fault == "oom":
            client.config_set("maxmemory", "0")
        else:
            client.delete(HEADS)
            if client.exists(KEPT_HEADS):
                client.rename(KEPT_HEADS, HEADS)


def writer_on(client: redis.Redis, shard: int, key: bytes | Keyring = TEST_LOG_KEY, shards: int = 4) -> DecisionLog:
    """A decision-log writer whose chain lands in ``shard`` of ``shards`` (a chain picks its
    shard by a hash of its name: names are tried until one lands there)."""
    log = DecisionLog(client, key, shards=shards)
    log._ensure_chain()
    n = 0
    while shard_of(f"writer-{shard}-{n}", shards) != shard:
        n += 1
    log._chain, log._shard = f"writer-{shard}-{n}", LogShard(shard)
    return log


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def callscreen_env(redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a callscreen process on ``redis_url`` with the test keys; the caller's
    own ``CALLSCREEN_*`` variables are dropped so nothing outside the test leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env.update(
        CALLSCREEN_REDIS_URL=redis_url, CALLSCREEN_HASH_KEY=TEST_HASH_KEY.hex(),
        CALLSCREEN_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY.hex(), CALLSCREEN_LOG_KEY=TEST_LOG_KEY.hex(),
        CALLSCREEN_DATA_DIR=str(data_dir), **extra,
    )
    return env


def start_serve(env: Mapping[str, str], *extra: str, port: int | None = None,
                timeout: float = 20.0) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``callscreen serve`` on a free loopback port; returns once it accepts connections."""
    port = port or free_port()
    process = subprocess.Popen([CALLSCREEN, "serve", "--port", str(port), *extra], env=dict(env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"callscreen serve exited: {process.communicate()[1].decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError("callscreen serve did not listen")
