"""Counts for the overview: decisions and blocks per day, and today's blocks by reason.

Days are calendar days in the call centre's zone. A finished day never changes, so its
counts are computed once from the decision log and kept in ``cs:dashboard:day:<zone>:<date>``
(expiring after :data:`KEEP_DAYS`); today's counts are recomputed at most every
:data:`TODAY_TTL` seconds. A day is read up to :data:`MAX_SCAN_PER_DAY` records; beyond that
the counts are marked as partial rather than stalling the page.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis

KEEP_DAYS = 40
TODAY_TTL = 60
MAX_SCAN_PER_DAY = 200_000
SETTLE = timedelta(minutes=5)  # a day is final this long after it ends (late appends)


@dataclass
class DayCounts:
    day: date
    decisions: int = 0
    blocks: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    partial: bool = False

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
                           "reasons": dict(self.reasons), "partial": self.partial})

    @classmethod
    def from_json(cls, day: date, raw: bytes | str) -> DayCounts:
        data = json.loads(raw)
        return cls(day=day, decisions=data["decisions"], blocks=data["blocks"],
                   reasons=Counter(data["reasons"]), partial=data.get("partial", False))


def _key(zone: str, day: date) -> str:
    return f"cs:dashboard:day:{zone}:{day.isoformat()}"


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    return start, end - timedelta(milliseconds=1)


def count_day(log: Any, day: date, zone: ZoneInfo) -> DayCounts:
    """Scan one day of the decision log (decision records only)."""
    start, end = day_bounds(day, zone)
    counts = DayCounts(day=day)
    for scanned, record in enumerate(log.scan(start, end, newest_first=False, batch=2000), 1):
        if scanned > MAX_SCAN_PER_DAY:
            counts.partial = True
            break
        if record.kind != "decision":
            continue
        counts.decisions += 1
        if record.result == "BLOCK":
            counts.blocks += 1
            counts.reasons[record.reason] += 1
    return counts


def daily(log: Any, client: redis.Redis, zone_name: str, days: int = 30,
          now: datetime | None = None) -> list[DayCounts]:
    """Counts for the last ``days`` days, oldest first, today last."""
    zone = ZoneInfo(zone_name)
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).date()
    wanted = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    cached = client.mget([_key(zone_name, d) for d in wanted])
    out = []
    for day, raw in zip(wanted, cached, strict=True):
        if raw is not None:
            out.append(DayCounts.from_json(day, raw))
            continue
        counts = count_day(log, day, zone)
        final = day_bounds(day, zone)[1] + SETTLE < now
        ttl = KEEP_DAYS * 86400 if final else TODAY_TTL
        client.set(_key(zone_name, day), counts.to_json(), ex=ttl)
        out.append(counts)
    return out
