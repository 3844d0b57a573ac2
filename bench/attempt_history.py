"""Cost of a screening for a much-called number against a fresh one (run by hand; loopback only).

    .venv/bin/python bench/attempt_history.py [--attempts 10000] [--n 3000]

Starts a private valkey server, seeds a US campaign, a consented New York number with
``--attempts`` allowed calls spread over the 8-day attempt history (New York has no state cap,
so every screening of it is an ALLOW, like the fresh number's) and a fresh consented number.
Then, interleaved so that machine noise hits both alike, it times:

(a) ``Screener.screen()`` end to end (fact query, decision, log append with index and attempt
    writes) for the much-called number and for the fresh one (whose attempt set is emptied,
    untimed, after each screening so that it stays fresh);
(b) the fact query alone, bounded, for both numbers; then the unbounded read it replaced
    (``ZRANGEBYSCORE … +inf`` over the whole history) for both, separately (its large replies
    would otherwise slow whatever runs next).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from callscreen.config import Settings
from callscreen.embedded import EmbeddedServer
from callscreen.models import Campaign, Consent, LegalBasis, Proof
from callscreen.numbers import normalize
from callscreen.screening import build_screener
from callscreen.store import ATTEMPT_HISTORY, FACTS_SHA, FactQuery, ms, number_key, run_pipeline

AT = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York
BUSY, FRESH = "+12125550100", "+12125550199"
UNBOUNDED_FACTS = """
local out = {}
for i = 1, 5 do out[i] = redis.call('HGETALL', KEYS[i]) end
out[6] = redis.call('ZRANGEBYSCORE', KEYS[6], ARGV[1], '+inf', 'WITHSCORES')
return out
"""


def interleaved(n: int, runs: dict[str, Callable[[int], None]],
                between: Callable[[str], None] = lambda _label: None) -> dict[str, list[float]]:
    """Each run once per round, the starting run rotating, so no run always follows another."""
    samples: dict[str, list[float]] = {label: [] for label in runs}
    order = list(runs.items())
    for i in range(n):
        shift = i % len(order)
        for label, run in order[shift:] + order[:shift]:
            started = time.perf_counter()
            run(i)
            samples[label].append(time.perf_counter() - started)
            between(label)
    return samples


def report(title: str, samples: dict[str, list[float]], base: str) -> None:
    print(title)
    base_p50, base_mean = statistics.median(samples[base]), statistics.fmean(samples[base])
    for label, values in samples.items():
        values = sorted(values)
        p50, mean, p99 = statistics.median(values), statistics.fmean(values), values[int(len(values) * 0.99)]
        print(f"  {label:34} p50 {p50 * 1e6:8.1f} µs ({p50 / base_p50 - 1:+6.1%})  "
              f"mean {mean * 1e6:8.1f} µs ({mean / base_mean - 1:+6.1%})  p99 {p99 * 1e6:8.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    with EmbeddedServer(persist=False) as server:
        client = redis.Redis.from_url(server.url)
        settings = Settings(redis_url=server.url, hash_key=b"h" * 32, encryption_key=b"e" * 32, log_key=b"l" * 32)
        screener = build_screener(settings, client)
        screener.store.put_campaign(Campaign("us-promo", "promotions", "US", "US", "America/New_York"))
        digests = {}
        for raw in (BUSY, FRESH):
            number = normalize(raw, "US")
            screener.store.add_consent(number, Consent(f"c{raw}", "", ("promotions",), LegalBasis.CONSENT,
                                                       "web_form", AT - timedelta(days=30),
                                                       proof=Proof(form_text="Yes, call me about offers")))
            digests[raw] = screener.vault.digest(number.e164)
        attempts = {raw: number_key(digest, "attempts") for raw, digest in digests.items()}
        spacing = ATTEMPT_HISTORY / (args.attempts + 1)
        seeded = {f"d-seed-{i}": ms(AT - spacing * (i + 1)) for i in range(args.attempts)}
        for start in range(0, args.attempts, 5000):
            client.zadd(attempts[BUSY], dict(list(seeded.items())[start:start + 5000]))
        print(f"much-called number: {client.zcard(attempts[BUSY])} attempts in the last 8 days; "
              f"fresh number: {client.zcard(attempts[FRESH])}")
        check = screener.screen(BUSY, "us-promo", AT)
        assert check.allowed, check.reason
        limit = screener.policies.get("US").attempt_read_limit

        def screen(raw: str) -> Callable[[int], None]:
            return lambda i: screener.screen(raw, "us-promo", AT + timedelta(microseconds=i))

        def keep_fresh(label: str) -> None:
            if label == "fresh":
                client.delete(attempts[FRESH])

        screens = interleaved(args.n, {"fresh": screen(FRESH), f"{args.attempts} attempts": screen(BUSY)},
                              keep_fresh)
        report(f"Screener.screen() end to end, n={args.n} each, interleaved:", screens, "fresh")

        unbounded_sha = client.script_load(UNBOUNDED_FACTS)
        queries = {raw: FactQuery(normalize(raw, "US"), digests[raw], AT, attempt_limit=limit) for raw in digests}

        def bounded(raw: str) -> Callable[[int], None]:
            return lambda _i: run_pipeline(client, queries[raw].commands())

        def unbounded(raw: str) -> Callable[[int], None]:
            keys = [number_key(digests[raw], kind) for kind in (*FactQuery.KINDS, "attempts")]
            command = ("EVALSHA", unbounded_sha, len(keys), *keys, ms(AT - ATTEMPT_HISTORY))
            return lambda _i: run_pipeline(client, [command])

        assert FACTS_SHA in {c[1] for c in queries[BUSY].commands()}
        reads = interleaved(args.n, {"fresh": bounded(FRESH), f"{args.attempts} attempts": bounded(BUSY)})
        report(f"fact query alone, bounded read (limit {limit}), n={args.n} each, interleaved:", reads, "fresh")
        old = interleaved(max(args.n // 10, 10), {"fresh": unbounded(FRESH),
                                                  f"{args.attempts} attempts": unbounded(BUSY)})
        report("fact query alone, the unbounded read it replaced:", old, "fresh")


if __name__ == "__main__":
    main()
