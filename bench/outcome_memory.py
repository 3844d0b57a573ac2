"""What an allowed call's outcome costs with and without the memory of recent ALLOWs, and what
that memory takes at its bound (run by hand; figures go to docs/benchmarks.md).

    .venv/bin/python bench/outcome_memory.py [--calls 300] [--rounds 8] [--entries 100000]

One process, one embedded valkey-server on a free loopback port, the event loop ``callscreen
serve`` uses (uvloop when installed), a real Screener over 1,000 consented numbers. Each round
screens ``calls`` numbers (all ALLOW, logged by this process), then records their outcomes one
after the other with ``DecisionLog.record_outcome_async`` and times only the outcomes: CPU of
this process (``time.process_time``) and wall time, per outcome. ``memory`` takes each decision
from the memory of the ALLOWs this process appended; ``read-back`` (the memory turned off, as
for an outcome that reaches another worker) reads it back from the store, one lookup round trip
and a verified decode. Rounds alternate (ABBA), so the shared machine's noise spreads over both.

The memory's size: ``--entries`` remembered decisions as a screening leaves them (an id from
``new_id``, a digest of its own, the campaign id shared), measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import redis

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

from callscreen.cli.serve import event_loop_factory
from callscreen.config import Settings
from callscreen.crypto import DIGEST_HEX_CHARS
from callscreen.embedded import EmbeddedServer
from callscreen.models import Proof
from callscreen.recent_allows import REMEMBERED_ALLOWS, DecisionRef, RecentAllows
from callscreen.screening import build_screener
from callscreen.store import connect, new_id
from harness.screening import seed_consents

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday
NUMBERS = [f"+7999{i:07d}" for i in range(1000)]
KEYS = dict(hash_key=b"h" * 32, encryption_key=b"e" * 32, log_key=b"l" * 32)
MODES = ("memory", "read-back")


async def outcomes_round(screener, mode: str, calls: int, offset: int) -> tuple[float, float]:
    """Screen ``calls`` numbers, then time their outcomes: (CPU ms, wall ms) per outcome."""
    log = screener.log
    log.recent_allows = RecentAllows(REMEMBERED_ALLOWS if mode == "memory" else 0)
    ids = []
    for n in range(calls):
        decision = await screener.screen_async(NUMBERS[(offset + n) % len(NUMBERS)], "bench", AT, deadline=1.0)
        if not decision.allowed:
            raise SystemExit(f"expected ALLOW, got {decision.result} {decision.reason}")
        ids.append(decision.id)
    cpu, wall = time.process_time(), time.perf_counter()
    for decision_id in ids:
        await log.record_outcome_async(decision_id, "ANSWER", 42, "16")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if mode == "memory" and len(log.recent_allows):
        raise SystemExit("an outcome did not take its remembered decision")
    return cpu / calls * 1000, wall / calls * 1000


async def compare(url: str, calls: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    settings = Settings(redis_url=url, allow_without_durability=True, **KEYS)
    screener = build_screener(settings, redis.Redis.from_url(url), connect(url, asyncio=True, timeout=5))
    seed_consents(screener.store, "bench", NUMBERS, AT, proof=Proof(form_version="v1"))
    for mode in MODES:  # warm up: connections, scripts, caches
        await outcomes_round(screener, mode, 50, 0)
    results: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
    for round_ in range(rounds):
        order = MODES if round_ % 2 == 0 else MODES[::-1]
        for mode in order:
            cpu, wall = await outcomes_round(screener, mode, calls, round_ * calls)
            results[mode].append((cpu, wall))
            print(f"round {round_ + 1} {mode:9}: {cpu:.3f} ms CPU, {wall:.3f} ms wall per outcome", flush=True)
    await screener.aclient.aclose()
    return results


def remembered(entries: int) -> RecentAllows:
    """A memory holding ``entries`` decisions as screenings leave them."""
    campaign = "spring-promotions"
    memory = RecentAllows(entries)
    for n in range(entries):
        memory.keep(DecisionRef(new_id("d"), n % 4, campaign, os.urandom(DIGEST_HEX_CHARS // 2).hex()))
    if len(memory) != entries:
        raise SystemExit("the memory did not hold every entry")
    return memory


def memory_at_bound(entries: int) -> tuple[int, float]:
    """Bytes a memory of ``entries`` decisions holds (tracemalloc), and how much the process's RSS
    grew to hold one (measured first, without tracemalloc's own bookkeeping)."""
    rss = _rss()
    memory = remembered(entries)
    grown = (_rss() - rss) / 1e6
    del memory
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    memory = remembered(entries)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(memory) == entries  # still held when measured
    return held, grown


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="outcomes timed per round")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--entries", type=int, default=REMEMBERED_ALLOWS, help="entries for the memory's size")
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with EmbeddedServer(persist=False) as server, asyncio.Runner(loop_factory=event_loop_factory("auto")) as runner:
        results = runner.run(compare(server.url, args.calls, args.rounds))
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for mode in MODES:
        cpu = [c for c, _ in results[mode]]
        wall = [w for _, w in results[mode]]
        print(f"{mode:9}: CPU per outcome median {statistics.median(cpu):.3f} ms (range {min(cpu):.3f}–"
              f"{max(cpu):.3f}), wall median {statistics.median(wall):.3f} ms")
    ratio = statistics.median(c for c, _ in results["memory"]) / statistics.median(c for c, _ in results["read-back"])
    print(f"memory : read-back CPU per outcome = {ratio:.2f}")
    held, grown = memory_at_bound(args.entries)
    print(f"{args.entries:,} remembered ALLOWs: {held / 1e6:.1f} MB traced ({held / args.entries:.0f} bytes each), "
          f"RSS grew {grown:.1f} MB")


if __name__ == "__main__":
    main()
