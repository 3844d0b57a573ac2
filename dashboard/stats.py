"""Counts for the overview: decisions and blocks per day, and today's blocks by reason.

Days are calendar days in the call centre's zone. They are summed from the decision log's
per-day counters (:mod:`callscreen.log_shards`: every shard's hash of each UTC day the local
day overlaps, fields at quarter-hour resolution, so the sum is exact for any zone whose offset
is a whole number of quarter hours, +05:30 and +05:45 included), without reading the log. A
day the counters do not cover (before they existed, or a zone whose day does not start on a
quarter hour) falls back to scanning the log, and says so (``source == "scan"``); a scan reads
up to :data:`MAX_SCAN_PER_DAY` records, beyond that the counts are marked as partial rather
than stalling the page. A finished day never changes, so its counts are kept in
``cs:dashboard:day:<zone>:<date>`` (expiring after :data:`KEEP_DAYS`); today's are recomputed at
most every :data:`TODAY_TTL` seconds.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

from callscreen.log_shards import COUNTER_DAYS, QUARTER, quarter_start

KEEP_DAYS = 40
TODAY_TTL = 60
MAX_SCAN_PER_DAY = 200_000
SETTLE = timedelta(minutes=5)  # a day is final this long after it ends (late appends)
assert KEEP_DAYS < COUNTER_DAYS  # the overview's window never reaches past the counters' expiry
COUNTERS, SCAN = "counters", "scan"


@dataclass
class DayCounts:
    day: date
    decisions: int = 0
    blocks: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    partial: bool = False
    source: str = SCAN  # COUNTERS, or SCAN: read from the log (a day the counters do not cover)

    @property
    def allowed(self) -> int:
        return self.decisions - self.blocks

    @property
    def block_rate(self) -> float:
        return self.blocks / self.decisions if self.decisions else 0.0

    def by_reason(self) -> list[tuple[str, int, float]]:
        """Blocked reasons, most frequent first, with their share of all blocks."""
        return [(reason, n, n / self.blocks if self.blocks else 0.0) for reason, n in self.reasons.most_common()]

    def to_json(self) -> str:
        return json.dumps({"decisions": self.decisions, "blocks": self.blocks,
                           "reasons": dict(self.reasons), "partial": self.partial, "source": self.source})

    @classmethod
    def from_json(cls, day: date, raw: bytes | str) -> DayCounts:
        data = json.loads(raw)
        return cls(day=day, decisions=data["decisions"], blocks=data["blocks"],
                   reasons=Counter(data["reasons"]), partial=data.get("partial", False),
                   source=data.get("source", SCAN))

    def add(self, result: str, reason: str, n: int = 1) -> None:
        self.decisions += n
        if result == "BLOCK":
            self.blocks += n
            self.reasons[reason] += n


def _key(zone: str, day: date) -> str:
    return f"cs:dashboard:day:{zone}:{day.isoformat()}"


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end - timedelta(milliseconds=1)


def count_day(log: Any, day: date, zone: ZoneInfo) -> DayCounts:
    """Scan one day of the decision log (decision records only): the fallback for a day the
    counters do not cover."""
    start, end = day_bounds(day, zone)
    counts = DayCounts(day=day, source=SCAN)
    for scanned, record in enumerate(log.scan(start, end, newest_first=False, batch=2000), 1):
        if scanned > MAX_SCAN_PER_DAY:
            counts.partial = True
            break
        if record.kind == "decision":
            counts.add(record.result, record.reason)
    return counts


def _utc_days(start: datetime, end: datetime) -> list[date]:
    """The UTC days that [start, end) overlaps."""
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _since_ms(raw: Any) -> int | None:
    """A shard's ``counted`` mark as milliseconds (None if unreadable)."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    millis = text.partition("-")[0]
    return int(millis) if millis.isdigit() else None


def count_days(log: Any, client: redis.Redis, days: list[date], zone: ZoneInfo) -> dict[date, DayCounts]:
    """The days the per-day counters cover, summed over every shard and every UTC day each
    local day overlaps (one pipeline); a day missing from the answer needs :func:`count_day`.

    A day is covered when it starts on a quarter hour and, in every shard, counting had begun
    by then (a shard's ``counted`` mark; a shard without one holds no records, or only records
    written before counters existed)."""
    if not days:
        return {}
    shards = log.shards()
    bounds = {day: (datetime.combine(day, time(0), zone).astimezone(UTC),
                    datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)) for day in days}
    utc_days = sorted({d for start, end in bounds.values() for d in _utc_days(start, end)})
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        pipe.get(shard.counted)
        pipe.xlen(shard.stream)
    for shard in shards:
        for utc_day in utc_days:
            pipe.hgetall(shard.day(utc_day))
    replies = pipe.execute()
    marks, hashes = replies[:2 * len(shards)], iter(replies[2 * len(shards):])
    since: int | None = 0
    for mark, length in zip(marks[::2], marks[1::2], strict=True):
        if mark is None and length:  # records from before counters: only a scan sees them
            since = None
        elif mark is not None and since is not None:
            found = _since_ms(mark)
            since = None if found is None else max(since, found)
    quarters: Counter[tuple[datetime, str, str]] = Counter()
    for _shard in shards:
        for utc_day in utc_days:
            for name, value in next(hashes).items():
                quarter, result, reason = (name.decode() if isinstance(name, bytes) else name).split("|", 2)
                quarters[(quarter_start(utc_day, int(quarter)), result, reason)] += int(value)
    out: dict[date, DayCounts] = {}
    for day, (start, end) in bounds.items():
        aligned = (start - datetime.combine(start.date(), time(0), UTC)) % QUARTER == timedelta(0)
        if since is None or not aligned or since > start.timestamp() * 1000:
            continue
        counts = DayCounts(day=day, source=COUNTERS)
        for (at, result, reason), n in quarters.items():
            if start <= at < end:
                counts.add(result, reason, n)
        out[day] = counts
    return out


def daily(log: Any, client: redis.Redis, zone_name: str, days: int = 30,
          now: datetime | None = None) -> list[DayCounts]:
    """Counts for the last ``days`` days, oldest first, today last."""
    zone = ZoneInfo(zone_name)
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    wanted = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    pipe = client.pipeline(transaction=False)  # not MGET: in a cluster the days' keys are in many slots
    for day in wanted:
        pipe.get(_key(zone_name, day))
    cached = dict(zip(wanted, pipe.execute(), strict=True))
    counted = count_days(log, client, [day for day, raw in cached.items() if raw is None], zone)
    out = []
    for day, raw in cached.items():
        if raw is not None:
            out.append(DayCounts.from_json(day, raw))
            continue
        counts = counted.get(day) or count_day(log, day, zone)
        final = day_bounds(day, zone)[1] + SETTLE < now
        ttl = KEEP_DAYS * 86400 if final else TODAY_TTL
        client.set(_key(zone_name, day), counts.to_json(), ex=ttl)
        out.append(counts)
    return out
