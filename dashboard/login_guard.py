"""Throttling password guesses without letting anyone lock someone else out.

Invariants: only failed logins count (an attempt is recorded when admitted and removed again
if the password was right); failures are counted in three places over a sliding day — per
client address, per account, and per (account, address) — and each allows a few failures, then
demands an exponentially growing wait since the last failure. The address and (account,
address) waits grow up to 15 minutes: that is what stops one guesser. The per-account wait,
the only one that failures from other addresses can impose on the account's owner, is capped
short (30 s by default), so someone who knows a user name can slow its owner down but not
lock them out. Check and record are one Lua script, so parallel requests cannot slip through
together. Counters live in the shared store (every worker counts together) and expire on
their own.

Keys: ``cs:{login}:addr:<h>``, ``cs:{login}:acct:<h>``, ``cs:{login}:pair:<h>`` (sorted sets of
attempt ids scored by epoch ms; ``<h>`` is a SHA-256 of the address and/or account name).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass

import redis

from callscreen.store import run_pipeline, script

WINDOW_SECONDS = 24 * 60 * 60  # a failure counts for a day
LONG_WAIT = 15 * 60


@dataclass(frozen=True, slots=True)
class Backoff:
    """``free`` failures pass at once; after ``n >= free`` failures the next attempt must wait
    ``min(base * 2 ** (n - free), cap)`` seconds after the last one."""

    free: int
    base: float
    cap: float

    def wait(self, failures: int) -> float:
        return 0.0 if failures < self.free else min(self.base * 2 ** (failures - self.free), self.cap)


PER_ADDRESS = Backoff(free=10, base=1, cap=LONG_WAIT)
PER_ACCOUNT_AND_ADDRESS = Backoff(free=3, base=1, cap=LONG_WAIT)
PER_ACCOUNT = Backoff(free=5, base=1, cap=30)

# KEYS: address, account, pair. ARGV: now ms, window ms, attempt id, then free, base ms, cap ms
# for each key in order. Returns the wait in ms (nothing recorded) or 0 (attempt recorded).
ADMIT_SHA = script("""
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = 0
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local failures = redis.call('ZCARD', KEYS[i])
  local free, base, cap = tonumber(ARGV[1 + 3 * i]), tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  if failures >= free then
    local last = tonumber(redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')[2])
    local delay = math.min(base * 2 ^ (failures - free), cap)
    wait = math.max(wait, last + delay - now)
  end
end
if wait > 0 then return math.ceil(wait) end
for i = 1, 3 do
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
""")


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of asking to try a password: admitted (``retry_after`` 0) or told to wait."""

    keys: tuple[str, str, str]
    attempt: str
    retry_after: int  # whole seconds; 0 when admitted

    @property
    def admitted(self) -> bool:
        return self.retry_after == 0


class LoginGuard:
    def __init__(self, client: redis.Redis, *, per_address: Backoff = PER_ADDRESS,
                 per_account: Backoff = PER_ACCOUNT, per_pair: Backoff = PER_ACCOUNT_AND_ADDRESS,
                 window: float = WINDOW_SECONDS) -> None:
        self.client = client
        self.limits = (per_address, per_account, per_pair)
        self.window = window

    def admit(self, address: str, account: str, now: float | None = None) -> Admission:
        """May ``address`` try a password for ``account`` now? If so the attempt is recorded as
        a failure until :meth:`succeeded` says otherwise."""
        keys = (_key("addr", address), _key("acct", account), _key("pair", account, address))
        attempt = secrets.token_hex(8)
        moment = time.time() if now is None else now
        args: list[object] = [int(moment * 1000), int(self.window * 1000), attempt]
        for limit in self.limits:
            args += [limit.free, int(limit.base * 1000), int(limit.cap * 1000)]
        [wait_ms] = run_pipeline(self.client, [("EVALSHA", ADMIT_SHA, 3, *keys, *args)])
        if isinstance(wait_ms, Exception):
            raise wait_ms
        return Admission(keys, attempt, math.ceil(int(wait_ms) / 1000))

    def succeeded(self, admission: Admission) -> None:
        """The password was right: this attempt was no failure, and the earlier failures of
        this account from this address were the owner's typos, not guesses."""
        address, account, pair = admission.keys
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(address, admission.attempt)
        pipe.zrem(account, admission.attempt)
        pipe.delete(pair)
        pipe.execute()


def _key(kind: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"cs:{{login}}:{kind}:{digest}"
