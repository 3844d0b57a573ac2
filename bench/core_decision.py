"""Core screening cost: the pure decision, and a full sync screen() against a real store.

Run by hand:  .venv/bin/python bench/core_decision.py [--n 20000]
Prints CPU and wall time per decision for: normalize, decide(), and screen() (normalize +
one pipelined fact query + decide + HMAC-chained log append + WAITAOF), against an embedded
valkey-server that fsyncs every write (``bench/durability_bench.py`` compares store settings).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import redis

from callscreen.config import Settings
from callscreen.decision import ScreeningRequest, decide
from callscreen.embedded import EmbeddedServer
from callscreen.models import Campaign, Consent, Contact, LegalBasis, Proof
from callscreen.numbers import normalize
from callscreen.screening import build_screener

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def timed(label: str, n: int, fn) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    samples = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - t)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    samples.sort()
    print(f"{label:34} cpu {cpu / n * 1e6:8.1f} µs  wall {wall / n * 1e6:8.1f} µs  "
          f"p50 {statistics.median(samples) * 1e6:8.1f} µs  p99 {samples[int(n * 0.99)] * 1e6:8.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    n = parser.parse_args().n
    with EmbeddedServer() as server:  # appendfsync always: every ALLOW waits for its fsync
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, hash_key=b"h" * 32, encryption_key=b"e" * 32, log_key=b"l" * 32)
        screener = build_screener(settings, client)
        campaign = Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow")
        screener.store.put_campaign(campaign)
        numbers = [f"+7999{i:07d}" for i in range(1000)]
        for raw in numbers:
            screener.store.add_consent(normalize(raw), Consent(
                f"c{raw}", "", ("promotions",), LegalBasis.CONSENT, "paper", AT - timedelta(days=9),
                proof=Proof(form_version="v1")), Contact("Europe/Moscow", ""))
        pack = screener.policies.get("RU")
        number = normalize(numbers[0])
        facts = screener.store.facts(number, AT, attempt_limit=pack.attempt_read_limit)
        request = ScreeningRequest(numbers[0], number, campaign, AT)
        normalize.cache_clear()
        timed("normalize (uncached)", n, lambda i: normalize.__wrapped__(f"8 999 {i % 10_000_000:07d}", "RU"))
        timed("decide() (pure)", n, lambda i: decide(request, facts, pack))
        timed("screen() sync, end to end", n, lambda i: screener.screen(numbers[i % 1000], "spring", AT))
        print(f"redis memory after {n} logged decisions: {client.info('memory')['used_memory_human']}")


if __name__ == "__main__":
    main()
