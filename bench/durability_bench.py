"""What "durable before ALLOW" costs: decisions/s and latency of ``Screener.screen_async`` with and
without the store's confirmation, over differently configured stores (run by hand).

    .venv/bin/python bench/durability_bench.py [--seconds 5] [--concurrency 1 32] [--rounds 2]

Each configuration gets a fresh private valkey-server (data folder in a temporary directory on
the project's disk), 1,000 consented numbers in calling hours, and a closed loop of
``concurrency`` screenings in flight on one event loop (what one ``callscreen serve`` worker
does). Every decision is a full ALLOW: campaign, one fact round trip, decide, the log append and
(unless waived) WAITAOF / WAIT in the same round trip. Rounds are interleaved so the shared
machine's noise spreads over all configurations.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
import redis.asyncio

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

from callscreen.config import Settings  # noqa: E402
from callscreen.embedded import EmbeddedServer  # noqa: E402
from callscreen.models import Proof  # noqa: E402
from callscreen.screening import build_screener  # noqa: E402
from harness.screening import seed_consents  # noqa: E402

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday
NUMBERS = [f"+7999{i:07d}" for i in range(1000)]
PROOF = Proof(form_version="v1")
KEYS = dict(hash_key=b"h" * 32, encryption_key=b"e" * 32, log_key=b"l" * 32)


@dataclass(frozen=True)
class Config:
    label: str
    store_args: tuple[str, ...]  # on top of EmbeddedServer's (appendonly yes, appendfsync always)
    waived: bool = False
    replicas: int = 0
    persist: bool = True


CONFIGS = (
    Config("always + WAITAOF (default)", ()),
    Config("always, confirmation waived", (), waived=True),
    Config("everysec + WAITAOF", ("--appendfsync", "everysec")),
    Config("everysec, waived (the old setup)", ("--appendfsync", "everysec"), waived=True),
    Config("no AOF, waived (memory only)", (), waived=True, persist=False),
    Config("always + WAITAOF + WAIT 1 replica", ("--repl-diskless-sync-delay", "0"), replicas=1),
)


def wait_for_replica(primary: EmbeddedServer) -> None:
    client = redis.Redis.from_url(primary.url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        client.set("probe", "1")
        if client.execute_command("WAIT", 1, 100) == 1:
            return
    raise SystemExit("the replica did not come online")


async def closed_loop(screener, seconds: float, concurrency: int) -> tuple[list[float], int, int]:
    samples: list[float] = []
    allowed = blocked = 0
    stop = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal allowed, blocked
        i = offset
        while time.monotonic() < stop:
            started = time.perf_counter()
            decision = await screener.screen_async(NUMBERS[i % len(NUMBERS)], "bench", AT, deadline=0.25)
            samples.append(time.perf_counter() - started)
            allowed += decision.allowed
            blocked += not decision.allowed
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return samples, allowed, blocked


def run(config: Config, seconds: float, concurrency: int, folder: Path) -> dict[str, float]:
    servers = [EmbeddedServer(folder / "primary", persist=config.persist, extra_args=config.store_args).start()]
    try:
        if config.replicas:
            servers.append(EmbeddedServer(folder / "replica", extra_args=(
                "--replicaof", "127.0.0.1", str(servers[0].port))).start())
            wait_for_replica(servers[0])
        settings = Settings(redis_url=servers[0].url, durable_replicas=config.replicas,
                            allow_without_durability=config.waived, **KEYS)

        async def main() -> tuple[list[float], int, int]:
            client = redis.Redis.from_url(servers[0].url)
            screener = build_screener(settings, client, redis.asyncio.Redis.from_url(servers[0].url))
            seed_consents(screener.store, "bench", NUMBERS, AT, proof=PROOF)
            await closed_loop(screener, 0.5, concurrency)  # warm up
            result = await closed_loop(screener, seconds, concurrency)
            await screener.aclient.aclose()
            return result

        samples, allowed, blocked = asyncio.run(main())
    finally:
        for server in reversed(servers):
            server.stop()
    samples.sort()
    return {"rate": len(samples) / seconds, "p50": statistics.median(samples) * 1000,
            "p99": samples[int(len(samples) * 0.99)] * 1000, "allow": allowed / max(1, allowed + blocked) * 100}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"{'configuration':38} {'in flight':>9} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} {'ALLOW %':>8}")
    for round_ in range(args.rounds):
        for concurrency in args.concurrency:
            for config in CONFIGS:
                with tempfile.TemporaryDirectory(prefix="callscreen-bench-", dir=ROOT / "var"
                                                 if (ROOT / "var").is_dir() else None) as folder:
                    r = run(config, args.seconds, concurrency, Path(folder))
                print(f"{config.label:38} {concurrency:9d} {r['rate']:12.0f} {r['p50']:8.2f} {r['p99']:8.2f} "
                      f"{r['allow']:8.1f}   (round {round_ + 1})", flush=True)


if __name__ == "__main__":
    main()
