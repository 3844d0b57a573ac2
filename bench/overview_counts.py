"""The dashboard overview's 30 days of counts: summed from the decision log's per-day counters
versus scanned from the log (what the overview did before, and still does for a day the counters
do not cover).

Run by hand (figures go to docs/benchmarks.md):

    .venv/bin/python bench/overview_counts.py --per-day 2000 --days 30 --shards 4

Writes ``--per-day`` decisions on each of the last ``--days`` UTC days (spread over the day, over
``--shards`` writers each in its own shard) to an embedded valkey-server on a free loopback
port, then times both ways of counting every day in Asia/Kolkata (+05:30, so every local day
spans two UTC days) and checks they agree.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

import redis

from callscreen.decision_log import DecisionLog, LogRecord
from callscreen.embedded import EmbeddedServer
from dashboard import stats
from harness.decision_log import writer_on

KEY = bytes(range(64, 96))
REASONS = ("no_basis", "dnc_registry", "opt_out", "outside_hours")


def fill(client: redis.Redis, per_day: int, days: int, shards: int) -> int:
    writers = [writer_on(client, shard, KEY, shards) for shard in range(shards)]
    first = datetime.combine(datetime.now(UTC).date() - timedelta(days=days - 1), day_time(0), UTC)
    step = timedelta(days=1) / per_day
    total = per_day * days
    for n in range(total):
        moment = first + n * step
        log = writers[n % shards]
        log._next_stream_id = lambda moment=moment, n=n: f"{int(moment.timestamp() * 1000)}-{n}"
        blocked = n % 3 != 0
        log.append(LogRecord(id=f"d-{n}", at=moment, campaign_id="bench", result="BLOCK" if blocked else "ALLOW",
                             reason=REASONS[n % len(REASONS)] if blocked else "consent"))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-day", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--shards", type=int, default=4)
    args = parser.parse_args()
    zone = ZoneInfo("Asia/Kolkata")
    with EmbeddedServer(persist=False) as server:
        client = redis.Redis.from_url(server.url)
        began = time.perf_counter()
        total = fill(client, args.per_day, args.days, args.shards)
        print(f"wrote {total:,} decisions over {args.days} days in {args.shards} shards "
              f"({total / (time.perf_counter() - began):,.0f} appends/s)")
        log = DecisionLog(client, KEY)
        today = datetime.now(zone).date()
        days = [today - timedelta(days=n) for n in range(args.days - 1, -1, -1)]
        began = time.perf_counter()
        counted = stats.count_days(log, client, days, zone)
        counters_s = time.perf_counter() - began
        began = time.perf_counter()
        scanned = {day: stats.count_day(log, day, zone) for day in days}
        scan_s = time.perf_counter() - began
        agree = all(counted[d].decisions == scanned[d].decisions and counted[d].reasons == scanned[d].reasons
                    for d in days if d in counted)
        print(f"{len(days)} local days: counters {counters_s * 1000:,.1f} ms ({len(counted)} days covered), "
              f"scan {scan_s * 1000:,.1f} ms; counts agree: {agree}; "
              f"memory used {client.info('memory')['used_memory_human']}, "
              f"counter hashes {sum(1 for _ in client.scan_iter(match='cs:{log*}:day:*'))}")


if __name__ == "__main__":
    main()
