"""Decision log appends from several processes at once: throughput, and how often a writer's
chosen stream id lost the race (the stream already held a later one) and it had to append again.

Run by hand (figures go to docs/benchmarks.md):

    .venv/bin/python bench/log_append.py --writers 4 --records 2000 [--shards 4]

Each writer is its own process with its own chain, appending as fast as it can to one embedded
valkey-server on a free loopback port. Retries are counted by the server: append-script calls
(``EVALSHA``) minus records in the streams. With ``--shards`` the writers spread over that many
shard streams (the ``log_shards`` setting): writers in different shards never race each other.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

import redis

from callscreen.decision_log import DecisionLog, LogRecord
from callscreen.embedded import EmbeddedServer

KEY = bytes(range(64, 96))


def write(url: str, count: int, shards: int, start: multiprocessing.synchronize.Event) -> None:
    log = DecisionLog(redis.Redis.from_url(url), KEY, shards=shards)
    at = datetime.now(UTC)
    start.wait()
    for n in range(count):
        log.append(LogRecord(id=f"d-{n}", at=at, campaign_id="bench", number_digest="ab" * 16, result="BLOCK",
                             reason="no_basis", checks=[["basis", False, "none"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--records", type=int, default=2000, help="records per writer")
    parser.add_argument("--shards", type=int, default=1, help="log_shards")
    args = parser.parse_args()
    with EmbeddedServer(persist=False) as server:
        client = redis.Redis.from_url(server.url)
        client.config_resetstat()
        start = multiprocessing.Event()
        writers = [multiprocessing.Process(target=write, args=(server.url, args.records, args.shards, start))
                   for _ in range(args.writers)]
        for process in writers:
            process.start()
        time.sleep(1.0)
        began = time.perf_counter()
        start.set()
        for process in writers:
            process.join()
        elapsed = time.perf_counter() - began
        reader = DecisionLog(client, KEY)
        records = sum(client.xlen(shard.stream) for shard in reader.shards())
        calls = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        report = reader.verify()
        used = sum(1 for shard in reader.shards() if client.xlen(shard.stream))
        print(f"{args.writers} writers x {args.records} records, {used} of {args.shards} shards written: "
              f"{records / elapsed:,.0f} appends/s, "
              f"{calls - records} retries ({(calls - records) / records:.2%} of appends), "
              f"verify {'intact' if report.ok else report.problems[:3]}")


if __name__ == "__main__":
    main()
