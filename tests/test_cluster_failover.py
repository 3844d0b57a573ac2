"""A cluster master dies under a screening load.

While the cluster has no master for part of its slots, every answer that needs those slots is
BLOCK ``screening_unavailable``. No number gets an ALLOW it should not get. Every ALLOW that was
answered has its record in the log after the failover. Once the replica is promoted, the same
screener (no restart) gives real answers again, including for the numbers the dead master held.
``durable_replicas = 1`` is the cluster setting this needs: an ALLOW waits until its record is on
the replica that will take over, and each master has two replicas, so the promoted one still has a
replica to confirm on (with one, the promoted master's slots answer BLOCK until a replica is
attached again: fail closed, see docs/store.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.cluster import key_slot

from callscreen.config import Settings
from callscreen.embedded import EmbeddedCluster
from callscreen.models import Campaign, Consent, Contact, LegalBasis, OptOut, Proof
from callscreen.numbers import normalize
from callscreen.screening import build_screener
from callscreen.store import connect, number_key
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday
CONSENTED = [f"+7999100{i:04d}" for i in range(60)]
OPTED_OUT = [f"+7999200{i:04d}" for i in range(20)]
UNKNOWN = [f"+7999300{i:04d}" for i in range(20)]
IN_FLIGHT = 8
RESUMED_FOR = 2.0  # seconds of real answers, after the failover, that count as "service resumed"
GIVE_UP = 40.0


@dataclass(frozen=True)
class Answer:
    number: str
    result: str
    reason: str
    decision_id: str
    at: float


def expected(number: str) -> tuple[str, str]:
    if number in CONSENTED:
        return "ALLOW", "consent"
    return "BLOCK", "opted_out" if number in OPTED_OUT else "no_basis"


@pytest.fixture
def cluster(tmp_path: Path):
    with EmbeddedCluster(tmp_path / "cluster", masters=3, replicas=2, node_timeout_ms=1000) as started:
        yield started


def seed(screener) -> None:
    store = screener.store
    store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    store.add_consents([
        (normalize(raw, "RU"), Consent(f"c-{i}", "", ("promotions",), LegalBasis.CONSENT, "sms_double_opt_in",
                                       AT - timedelta(days=30), verified_at=AT - timedelta(days=30, minutes=-3),
                                       proof=Proof(form_version="v1")),
         Contact("Europe/Moscow", ""))
        for i, raw in enumerate(CONSENTED + OPTED_OUT)
    ])
    for raw in OPTED_OUT:
        store.add_opt_out(normalize(raw, "RU"), OptOut(None, "call", AT - timedelta(days=1)))


def test_a_master_killed_under_load_blocks_as_unavailable_then_resumes_without_a_wrong_allow_or_lost_record(
        cluster: EmbeddedCluster, tmp_path: Path) -> None:
    settings = Settings(redis_url=cluster.url, data_dir=tmp_path, hash_key=TEST_HASH_KEY,
                        encryption_key=TEST_ENCRYPTION_KEY, log_key=TEST_LOG_KEY,
                        durable_replicas=1, log_shards=6)
    client = connect(cluster.url)
    screener = build_screener(settings, client, connect(cluster.url, asyncio=True))
    seed(screener)
    victim = cluster.masters[0]
    victim_slots = range(0, 16384 // 3)  # EmbeddedCluster gives the first master the first third
    held = [raw for raw in CONSENTED
            if key_slot(number_key(screener.store.vault.digest(normalize(raw, "RU").e164), "consents").encode())
            in victim_slots]
    assert held, "some consented numbers live on the master that dies"

    answers: list[Answer] = []
    killed_at: list[float] = []

    async def load() -> None:
        numbers = CONSENTED + OPTED_OUT + UNKNOWN
        stop = time.monotonic() + GIVE_UP

        def resumed() -> bool:
            if not killed_at:
                return False
            since = [a for a in answers if a.at > killed_at[0]]
            unavailable = [a.at for a in since if a.reason == "screening_unavailable"]
            recovered = [a for a in since if a.at > max(unavailable, default=killed_at[0])]
            return (bool(unavailable) and recovered and recovered[-1].at - recovered[0].at >= RESUMED_FOR
                    and any(a.number in held and a.result == "ALLOW" for a in recovered))

        async def worker(k: int) -> None:
            i = k
            while time.monotonic() < stop and not resumed():
                raw = numbers[i % len(numbers)]
                decision = await screener.screen_async(raw, "spring", AT, deadline=0.25)
                answers.append(Answer(raw, decision.result.value, decision.reason.value, decision.id,
                                      time.monotonic()))
                i += IN_FLIGHT

        async def killer() -> None:
            await asyncio.sleep(1.5)
            assert victim.process is not None
            os.kill(victim.process.pid, signal.SIGKILL)
            killed_at.append(time.monotonic())

        await asyncio.gather(killer(), *(worker(k) for k in range(IN_FLIGHT)))
        await screener.aclient.aclose()

    asyncio.run(load())

    assert killed_at, "the master was killed"
    wrong = [a for a in answers
             if (a.result, a.reason) != expected(a.number) and a.reason != "screening_unavailable"]
    assert not wrong, f"answers other than the right one or screening_unavailable: {wrong[:5]}"
    assert all(a.result == "BLOCK" for a in answers if a.reason == "screening_unavailable")
    during = [a for a in answers if a.at > killed_at[0] and a.reason == "screening_unavailable"]
    assert during, "a dead master's slots answer screening_unavailable until the failover"
    after = [a for a in answers if a.at > max(x.at for x in during)]
    assert {a.number for a in after if a.result == "ALLOW"} & set(held), \
        "after the failover the same screener allows the numbers the dead master held (no restart)"

    client = connect(cluster.url)  # a fresh client: the promoted replica's view of the log
    screener = build_screener(settings, client)
    allowed = [a for a in answers if a.result == "ALLOW"]
    records = screener.log.get_many([a.decision_id for a in allowed])
    assert {r.id for r in records if r.result == "ALLOW"} == {a.decision_id for a in allowed}, \
        "every ALLOW answered has its record on the cluster after the failover"
    report = screener.log.verify()
    assert report.ok, report.problems[:5]
