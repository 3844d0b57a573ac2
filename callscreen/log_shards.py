"""Where the decision log lives: N shard streams, each with all its keys in its own slot.

Invariants:
- Shard 0 is ``cs:{log}:*`` (the names the log had before it was sharded, so existing data is
  read as shard 0 without any migration); shard ``k > 0`` is ``cs:{log.k}:*``. Every key of a
  shard shares the shard's hash tag, so the append script stays atomic in a cluster.
- A writer (one chain, one process) appends to one shard only, chosen from its chain id
  (:func:`shard_of`), so the compare-and-set append, chains, epochs and tombstones all work
  within one shard exactly as they did within the single stream.
- Readers read every shard that exists: the ``log_shards`` setting's, and every shard named
  in :data:`REGISTRY` (a set, in a slot of its own), which a writer joins once, before its
  first append, never per decision.
- Per-day counters: each decision record's append also counts it in its shard's hash of the
  stream id's UTC day (:meth:`LogShard.day`), field ``<quarter>|<result>|<reason>`` with the
  quarter-hour of the day (0-95), so a local day of any zone whose offset is a whole number of
  quarter hours (all of today's, +05:30 and +05:45 included) is an exact sum of fields.
  ``counted`` holds the stream id from which on every record of the shard is counted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

REGISTRY = "cs:log:shards"  # set of shard numbers that have (had) a writer
QUARTER = timedelta(minutes=15)
COUNTER_DAYS = 42  # a day's counters expire this long after the day (> the overview's KEEP_DAYS)


@dataclass(frozen=True, slots=True)
class LogShard:
    """The key names of one shard of the decision log."""

    index: int

    @property
    def tag(self) -> str:
        return "{log}" if self.index == 0 else f"{{log.{self.index}}}"

    def key(self, name: str) -> str:
        return f"cs:{self.tag}:{name}"

    @property
    def stream(self) -> str:
        return self.key("stream")

    @property
    def heads(self) -> str:
        return self.key("heads")

    @property
    def ids(self) -> str:
        return self.key("ids")

    @property
    def trimmed(self) -> str:
        return self.key("trimmed")

    @property
    def outcomes(self) -> str:
        return self.key("outcomes")

    @property
    def purged(self) -> str:
        return self.key("purged")

    @property
    def epoch(self) -> str:
        return self.key("epoch")

    @property
    def epochs(self) -> str:
        return self.key("epochs")

    @property
    def counted(self) -> str:
        return self.key("counted")

    def day(self, day: date) -> str:
        """The counter hash of one UTC day."""
        return self.key(f"day:{day.isoformat()}")


def shard_of(chain: str, shards: int) -> int:
    """The shard a chain writes to: stable for the chain, spread evenly over ``shards``."""
    if shards <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(chain.encode()).digest()[:8], "big") % shards


EPOCH_DAY = date(1970, 1, 1)
DAY_MS = 86_400_000
QUARTER_MS = 900_000


def counter_field(at_ms: int, result: str, reason: str) -> tuple[date, str] | None:
    """The UTC day and the counter field of a decision recorded at ``at_ms`` (its stream id's
    time); None for a time no calendar day holds (a stream id far in the future)."""
    days, within = divmod(at_ms, DAY_MS)
    try:
        day = EPOCH_DAY + timedelta(days=days)
    except OverflowError:
        return None
    return day, f"{within // QUARTER_MS}|{result}|{reason}"


def quarter_start(day: date, quarter: int) -> datetime:
    """When quarter ``quarter`` of UTC day ``day`` begins."""
    return datetime.combine(day, datetime.min.time(), UTC) + quarter * QUARTER


# Give a shard that has no records and no epoch yet the epoch in force elsewhere (shard 0's),
# so a shard started after a rotation never accepts the retired key. KEYS: epoch, epochs,
# stream. ARGV: key id. Replies 1 (adopted) or 0 (the shard has an epoch or records already).
ADOPT_EPOCH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('XLEN', KEYS[3]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], '0-0')
return 1
"""
