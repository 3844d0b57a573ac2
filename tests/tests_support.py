"""Constants, store faults and process helpers shared by tests (importable because tests/ is on sys.path).

The process helpers live in :mod:`harness.processes` (the benchmarks use them too) and are
re-exported here; this module puts the repository root on ``sys.path`` for that.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for harness

import redis
import redis.asyncio

from callscreen.decision_log import HEADS, DecisionLog
from callscreen.keys import Keyring
from harness.decision_log import writer_on as harness_writer_on
from harness.processes import (
    CALLSCREEN,
    TEST_ENCRYPTION_KEY,
    TEST_HASH_KEY,
    TEST_LOG_KEY,
    callscreen_env,
    free_port,
    start_serve,
)

__all__ = ["CALLSCREEN", "KEPT_HEADS", "LOG_FAULTS", "TEST_ENCRYPTION_KEY", "TEST_HASH_KEY", "TEST_LOG_KEY",
           "callscreen_env", "free_port", "refusing_log_writes", "start_serve", "store_client", "writer_on"]


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


def all_keys(client: Any, pattern: str = "*") -> list[bytes]:
    """Every key matching ``pattern``, on every master of a cluster (KEYS asks one node only)."""
    from callscreen.cluster import scan_keys

    return sorted(set(scan_keys(client, pattern)))


def on_every_primary(client: Any, *command: Any) -> None:
    """Run ``command`` on the one server, or on every primary of a cluster."""
    from callscreen.cluster import is_cluster_client

    if is_cluster_client(client):
        client.execute_command(*command, target_nodes=client.PRIMARIES)
    else:
        client.execute_command(*command)


@contextmanager
def refusing_log_writes(client: redis.Redis, fault: str) -> Iterator[None]:
    """Make the store (every primary of a cluster) refuse decision-log appends for the duration of the block."""
    if fault == "oom":
        on_every_primary(client, "CONFIG", "SET", "maxmemory", "1")
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
            on_every_primary(client, "CONFIG", "SET", "maxmemory", "0")
        else:
            client.delete(HEADS)
            if client.exists(KEPT_HEADS):
                client.rename(KEPT_HEADS, HEADS)


def writer_on(client: redis.Redis, shard: int, key: bytes | Keyring = TEST_LOG_KEY, shards: int = 4) -> DecisionLog:
    """:func:`harness.decision_log.writer_on` with the tests' log key by default."""
    return harness_writer_on(client, shard, key, shards)


def monitored(client: Any, action: Callable[[], object]) -> list[dict[str, Any]]:
    """What the server ``client`` talks to ran while ``action`` ran, as MONITOR entries
    (``command``, ``client_type``...), the commands scripts run inside it included."""
    import secrets

    marker = f"end-of-action-{secrets.token_hex(4)}"
    with client.monitor() as monitor:
        action()
        client.echo(marker)
        seen = []
        for entry in monitor.listen():
            if marker in entry["command"]:
                return seen
            seen.append(entry)
    raise AssertionError("MONITOR ended early")


def in_fresh_python(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a new interpreter (nothing loaded or cached yet) and return what it printed;
    fails the test with its stderr if it raised."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout
