"""What a scrub does to live screening on the same store (run by hand).

    .venv/bin/python bench/scrub_beside_live.py [--numbers 2e6] [--rows 6e5] [--seconds 4]

Loads a synthetic US registry and a lead list as ``bench/registry_bench.py`` does, then a probe in
its own process sends a fact-sized round trip (8 ``EXISTS`` pipelined, what a dial-time fact query
costs the store) every 2 ms and times it: first with nothing else running, then while a scrub of
the list runs with 1 and with 2 worker processes. Printed: the probe's round trips, p50, p99 and
max in ms. All on one machine, as a call centre runs it: the probe competes for the CPU too.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import registry_bench as bench

from blocklists import scrub
from callscreen.embedded import EmbeddedServer

PROBE = r"""
import json, sys, time
import redis
client, seconds, took = redis.Redis.from_url(sys.argv[1]), float(sys.argv[2]), []
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    pipe = client.pipeline(transaction=False)
    for kind in "abcdefgh":
        pipe.exists(f"cs:n:{{probe}}:{kind}")
    started = time.perf_counter()
    pipe.execute()
    took.append((time.perf_counter() - started) * 1000)
    time.sleep(0.002)
took.sort()
print(json.dumps({"round trips": len(took), "p50 ms": round(took[len(took) // 2], 2),
                  "p99 ms": round(took[int(len(took) * 0.99)], 2), "max ms": round(took[-1], 2)}))
"""


def probe(url: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", PROBE, url, str(seconds)], stdout=subprocess.PIPE, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=float, default=2e6)
    parser.add_argument("--rows", type=float, default=6e5)
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="how long the probe runs (idle, and at most during a scrub)")
    args = parser.parse_args()
    rng = random.Random(3)
    with EmbeddedServer(persist=False) as server, tempfile.TemporaryDirectory() as folder:
        client = redis.Redis.from_url(server.url)
        world = bench.scrub_world(client, args.numbers, bench.AREA_CODES, int(args.rows), Path(folder), rng)
        keys, vault, campaign, pack, at, leads = world
        idle = probe(server.url, args.seconds)
        print(f"nothing else running: {idle.communicate()[0].strip()}", flush=True)
        for workers in (1, 2):
            running = probe(server.url, args.seconds)
            engine = bench.scrub_engine(workers, client, server.url, keys, vault, campaign, pack, at)
            with open(Path(folder) / "out.csv", "w", newline="") as sink:
                summary = scrub.scrub_csv(engine, leads, sink, workers=workers)
            print(f"during a scrub, {workers} process(es), {summary.rate:,.0f} rows/s: "
                  f"{running.communicate()[0].strip()} (load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
