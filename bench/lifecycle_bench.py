"""Retention and key rotation costs against a real store.

Run by hand:  .venv/bin/python bench/lifecycle_bench.py [--decisions 50000] [--people 20000]

- retention: screens ``--decisions`` numbers (half RU, half US campaigns: interleaved in one
  chain), then runs retention 3 years and a day later, when only the Russian half is due, so
  every deleted record leaves a tombstone in the middle of the chain; then ``log verify``.
- encryption rotation: ``--people`` persons with a data key, re-wrapped under a new master key.
- hash rotation: ``--people`` persons with a consent, moved to their digest under a new hash key.
Prints records (or keys) per second and the memory Redis reports before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta

import redis

from callscreen.config import Settings
from callscreen.embedded import EmbeddedServer
from callscreen.keys import Keyring
from callscreen.models import Campaign, Consent, Contact, LegalBasis
from callscreen.numbers import normalize
from callscreen.retention import RetentionJob
from callscreen.rotation import EncryptionRotation, HashRotation
from callscreen.screening import build_screener

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def memory(client: redis.Redis) -> str:
    return f"{int(client.info('memory')['used_memory']) / 2**20:.1f} MiB"


def bench_retention(client: redis.Redis, settings: Settings, decisions: int) -> None:
    screener = build_screener(settings, client)
    screener.store.put_campaign(Campaign("ru", "promotions", "RU", "RU", "Europe/Moscow"))
    screener.store.put_campaign(Campaign("us", "promotions", "US", "US", "America/New_York"))
    started = time.perf_counter()
    for i in range(decisions):
        campaign, raw = ("ru", f"+7999{i:07d}") if i % 2 else ("us", f"+1202555{i % 10000:04d}")
        screener.screen(raw, campaign, AT)
    print(f"screened {decisions} numbers in {time.perf_counter() - started:.1f} s; redis {memory(client)}")
    job = RetentionJob(screener.store, screener.log, screener.policies, settings.default_region)
    started = time.perf_counter()
    report = job.run(datetime.now(UTC) + timedelta(days=1096))
    seconds = time.perf_counter() - started
    deleted = sum(report.deleted.values())
    print(f"retention: {deleted} records deleted in {seconds:.2f} s ({deleted / seconds:,.0f}/s); "
          f"redis {memory(client)}; tombstones {client.hlen('cs:{log}:purged')}")
    started = time.perf_counter()
    verified = screener.log.verify()
    print(f"log verify: {verified.records} records, {'intact' if verified.ok else 'PROBLEMS'} in "
          f"{time.perf_counter() - started:.2f} s")


def bench_rewrap(client: redis.Redis, settings: Settings, people: int) -> None:
    client.flushall()
    old, new = ("e1", settings.encryption_key), ("e2", bytes(range(200, 232)))
    settings = dataclasses.replace(settings, keyrings={"encryption_key": Keyring("encryption_key", (old, new))})
    screener = build_screener(settings, client)
    digests = [screener.vault.digest(f"+7999{i:07d}") for i in range(people)]
    for start in range(0, people, 1000):
        screener.store.subjects(digests[start:start + 1000], create=True)
    print(f"{people} persons with a data key; redis {memory(client)}")
    job = EncryptionRotation(client, screener.vault, screener.vault.masters.state)
    progress = job.start("e2")
    started = time.perf_counter()
    progress = job.run(progress, threading.Event())
    seconds = time.perf_counter() - started - job.grace
    print(f"encryption rotation: {progress.moved} data keys re-wrapped in {progress.passes} passes, "
          f"{seconds:.2f} s after the {job.grace:.0f} s grace ({progress.moved / seconds:,.0f}/s)")


def bench_rekey(client: redis.Redis, settings: Settings, people: int) -> None:
    client.flushall()
    old, new = ("h1", settings.hash_key), ("h2", bytes(range(50, 82)))
    settings = dataclasses.replace(settings, keyrings={"hash_key": Keyring("hash_key", (old, new))})
    screener = build_screener(settings, client)
    items = [(normalize(f"+7999{i:07d}"), Consent(f"c{i}", "", ("promotions",), LegalBasis.CONSENT, "paper",
                                                  AT - timedelta(days=9)), Contact("Europe/Moscow", ""))
             for i in range(people)]
    for start in range(0, people, 1000):
        screener.store.add_consents(items[start:start + 1000])
    print(f"{people} persons with a consent; redis {memory(client)}")
    job = HashRotation(screener.store, screener.log, screener.vault.hashes.state)
    progress = job.start("h2")
    started = time.perf_counter()
    progress = job.run(progress, threading.Event())
    seconds = time.perf_counter() - started - job.grace
    print(f"hash rotation: {progress.moved} persons moved in {progress.passes} passes, "
          f"{seconds:.2f} s after the {job.grace:.0f} s grace ({progress.moved / seconds:,.0f}/s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=50_000)
    parser.add_argument("--people", type=int, default=20_000)
    args = parser.parse_args()
    with EmbeddedServer(persist=False) as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, hash_key=b"h" * 32, encryption_key=b"e" * 32, log_key=b"l" * 32)
        bench_retention(client, settings, args.decisions)
        bench_rewrap(client, settings, args.people)
        bench_rekey(client, settings, args.people)


if __name__ == "__main__":
    main()
