"""Sizing a store: keys and memory per million consents and per million decisions, and screening
decisions/s as shards (cluster masters) are added (run by hand).

    .venv/bin/python bench/cluster_sizing.py [--consents 200000] [--decisions 50000]
        [--masters 1 2 3] [--workers 4] [--seconds 10]

Memory: a fresh single valkey-server, ``used_memory`` and ``DBSIZE`` before and after loading
``--consents`` consented numbers through ``Store.add_consents`` (one consent, its contact fields
and its wrapped data key each), then after ``--decisions`` full ALLOW decisions over them (log
record in a shard stream, per-number decision and attempt indexes, the per-day counters),
scaled to a million. One copy: a replica holds the same again.

Throughput: for each ``--masters`` count a fresh local cluster (those masters, no replicas,
``appendfsync always``) and ``--workers`` screening processes, each a closed loop of ``--in-flight`` decisions
(8) on one event loop (what one ``callscreen serve`` worker does), for ``--seconds``.
Every process and every shard share this machine's cores, so on a small machine the figure shows
where the client side saturates rather than what a shard on its own host carries; the report
prints the load average and the CPU used by the store processes per decision beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

from callscreen.config import Settings  # noqa: E402
from callscreen.embedded import EmbeddedCluster, EmbeddedServer  # noqa: E402
from callscreen.models import Proof  # noqa: E402
from callscreen.screening import build_screener  # noqa: E402
from callscreen.store import connect  # noqa: E402
from harness.processes import process_cpu  # noqa: E402
from harness.screening import seed_consents  # noqa: E402

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday
KEYS = dict(hash_key=b"h" * 32, encryption_key=b"e" * 32, log_key=b"l" * 32)
IN_FLIGHT = 8
BATCH = 1000
PROOF = Proof(form_version="v1", form_text="Я согласен на звонки о скидках.")


def numbers(count: int) -> list[str]:
    return [f"+7999{i:07d}" for i in range(count)]


def settings_for(url: str, shards: int) -> Settings:
    return Settings(redis_url=url, log_shards=shards, **KEYS)


def seed(screener: Any, raws: list[str]) -> None:
    """The campaign and ``raws`` consented, each consent with a proof text as real ones carry."""
    seed_consents(screener.store, "bench", raws, AT, proof=PROOF, batch=BATCH)


def masters_of(client: Any) -> list[Any]:
    """One plain client per primary (the single server itself when not a cluster)."""
    if hasattr(client, "get_primaries"):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]


def usage(client: Any) -> tuple[int, int]:
    """(used_memory, keys) summed over the primaries."""
    memory = keys = 0
    for node in masters_of(client):
        memory += int(node.info("memory")["used_memory"])
        keys += int(node.dbsize())
    return memory, keys


async def closed_loop(screener: Any, raws: list[str], seconds: float, offset: int = 0,
                      in_flight: int = IN_FLIGHT) -> Counter[str]:
    """Answers by reason, ``in_flight`` decisions at a time for ``seconds`` (every number is
    consented: anything but ``consent`` is a decision the store could not take in the budget)."""
    reasons: Counter[str] = Counter()
    stop = time.monotonic() + seconds

    async def worker(k: int) -> None:
        i = offset + k
        while time.monotonic() < stop:
            decision = await screener.screen_async(raws[i % len(raws)], "bench", AT, deadline=0.25)
            reasons[decision.reason.value] += 1
            i += in_flight

    await asyncio.gather(*(worker(k) for k in range(in_flight)))
    return reasons


async def decide_all(screener: Any, raws: list[str], count: int) -> int:
    """Make ``count`` decisions over ``raws``; returns how many were ALLOW."""
    queue = iter(range(count))
    allowed = 0

    async def worker() -> None:
        nonlocal allowed
        for i in queue:
            decision = await screener.screen_async(raws[i % len(raws)], "bench", AT, deadline=1.0)
            allowed += decision.allowed

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))
    return allowed


def memory_figures(consents: int, decisions: int, folder: Path) -> None:
    raws = numbers(consents)
    with EmbeddedServer(folder / "memory") as server:
        client = connect(server.url)
        screener = build_screener(settings_for(server.url, 1), client, connect(server.url, asyncio=True))
        before = usage(client)
        seed(screener, raws)
        seeded = usage(client)
        allowed = asyncio.run(decide_all(screener, raws, decisions))
        decided = usage(client)
    per_consent = (seeded[0] - before[0]) / consents
    per_decision = (decided[0] - seeded[0]) / decisions
    print(f"consents: {consents:,} loaded; {(seeded[1] - before[1]) / consents:.2f} keys and "
          f"{per_consent:,.0f} bytes each = {per_consent * 1e6 / 2**30:.2f} GiB and "
          f"{(seeded[1] - before[1]) / consents:.2f} M keys per million consents")
    called = min(decisions, consents)
    print(f"decisions: {decisions:,} made ({allowed:,} ALLOW) over {called:,} numbers; "
          f"{(decided[1] - seeded[1]) / called:.2f} new keys per number called (its decision and attempt indexes) "
          f"and {per_decision:,.0f} bytes per decision = {per_decision * 1e6 / 2**30:.2f} GiB per million decisions")


def _worker(url: str, shards: int, population: int, seconds: float, in_flight: int, index: int, out: Any) -> None:
    async def main() -> Counter[str]:
        client = connect(url)
        screener = build_screener(settings_for(url, shards), client, connect(url, asyncio=True))
        raws = numbers(population)
        await closed_loop(screener, raws, 0.5, index * 7919, in_flight)  # warm up: scripts, connections, zones
        return await closed_loop(screener, raws, seconds, index * 7919, in_flight)

    out.put(asyncio.run(main()))


def store_cpu(pids: list[int]) -> float:
    return sum(process_cpu(pid) for pid in pids)


def throughput(masters: int, workers: int, seconds: float, population: int, in_flight: int, folder: Path) -> None:
    shards = 4 * max(1, masters)
    store = (EmbeddedCluster(folder / f"cluster-{masters}", masters=masters, replicas=0) if masters
             else EmbeddedServer(folder / "single"))
    with store as cluster:
        client = connect(cluster.url)
        seed(build_screener(settings_for(cluster.url, shards), client), numbers(population))
        nodes = cluster.nodes if masters else [cluster]
        pids = [node.process.pid for node in nodes if node.process is not None]
        out: Any = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_worker,
                                         args=(cluster.url, shards, population, seconds, in_flight, i, out))
                 for i in range(workers)]
        load_before = os.getloadavg()[0]
        cpu_before = store_cpu(pids)
        for proc in procs:
            proc.start()
        results = [out.get() for _ in procs]
        for proc in procs:
            proc.join()
        cpu = store_cpu(pids) - cpu_before
    reasons = sum(results, Counter())
    done = sum(reasons.values())
    label = f"{masters} master(s)" if masters else "single server"
    print(f"{label}, {shards} log shards, {workers} workers x {in_flight} in flight: "
          f"{reasons['consent'] / seconds:7,.0f} ALLOW/s of {done / seconds:7,.0f} decisions/s "
          f"(others: {dict(reasons - Counter(consent=reasons['consent']))}), store CPU "
          f"{cpu / max(1, done) * 1e6:.0f} µs per decision (warm-up included), load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--consents", type=int, default=200_000)
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--masters", type=int, nargs="*", default=[0, 1, 2, 3],
                        help="cluster sizes to measure; 0 is a single server (no cluster) for comparison")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--population", type=int, default=20_000, help="consented numbers in the throughput runs")
    parser.add_argument("--in-flight", type=int, default=IN_FLIGHT, help="decisions in flight per worker")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="callscreen-sizing-") as folder:
        if not args.skip_memory:
            memory_figures(args.consents, args.decisions, Path(folder))
        for masters in args.masters:
            throughput(masters, args.workers, args.seconds, args.population, args.in_flight, Path(folder))


if __name__ == "__main__":
    main()
