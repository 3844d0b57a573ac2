"""Constants and store faults shared by tests (importable because tests/ is on sys.path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from callscreen.decision_log import HEADS

TEST_HASH_KEY = bytes(range(32))
TEST_ENCRYPTION_KEY = bytes(range(32, 64))
TEST_LOG_KEY = bytes(range(64, 96))

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
