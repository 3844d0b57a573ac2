"""Decision-log writers placed on a chosen shard, for tests and benchmarks."""

from __future__ import annotations

from typing import Any

from callscreen.decision_log import DecisionLog
from callscreen.keys import Keyring
from callscreen.log_shards import LogShard, shard_of


def writer_on(client: Any, shard: int, key: bytes | Keyring, shards: int = 4) -> DecisionLog:
    """A decision-log writer whose chain lands in ``shard`` of ``shards`` (a chain picks its
    shard by a hash of its name: names are tried until one lands there)."""
    log = DecisionLog(client, key, shards=shards)
    log._ensure_chain()
    n = 0
    while shard_of(f"writer-{shard}-{n}", shards) != shard:
        n += 1
    log._chain, log._shard = f"writer-{shard}-{n}", LogShard(shard)
    return log
