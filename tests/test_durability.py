"""Durable before ALLOW: an ALLOW leaves only once the store confirmed its record on disk (and on
the required replicas); a store that cannot give that guarantee gets every ALLOW refused."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import redis
from prometheus_client import CollectorRegistry
from screening_support import AT, CAMPAIGN, own_screener, seed, waitaof_calls

from callscreen.durability import CONFIRMED, REFUSED, DurabilityUnconfirmed, confirm, confirmation, judge
from callscreen.metrics import ScreeningMetrics
from callscreen.models import Reason, Result

AOF_ALWAYS = {"appendonly": "yes", "appendfsync": "always", "no-appendfsync-on-rewrite": "no"}


def _metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


# --- the verdict on the store's settings -----------------------------------------------------


@pytest.mark.parametrize("config, why", [
    ({**AOF_ALWAYS, "appendonly": "no"}, "appendonly no"),
    ({**AOF_ALWAYS, "appendfsync": "no"}, "appendfsync no"),
    (redis.ResponseError("NOPERM this user has no permissions to run the 'config|get' command"),
     "cannot read the store's persistence settings"),
])
def test_settings_that_cannot_keep_a_record_refuse_allow_and_say_how_to_opt_out(config, why) -> None:
    verdict = judge(config, {"aof_enabled": 1}, {"connected_slaves": 0}, replicas=0)
    assert verdict.state == REFUSED and why in verdict.detail
    assert "allow_without_durability" in verdict.detail


def test_no_append_only_file_is_refused_even_when_config_is_forbidden() -> None:
    verdict = judge(redis.ResponseError("unknown command"), {"aof_enabled": 0}, {}, replicas=0)
    assert verdict.state == REFUSED and "aof_enabled:0" in verdict.detail


def test_everysec_and_missing_replicas_are_accepted_with_warnings() -> None:
    verdict = judge({**AOF_ALWAYS, "appendfsync": "everysec"}, {}, {"connected_slaves": 0}, replicas=1)
    assert verdict.state == CONFIRMED
    assert any("everysec" in w for w in verdict.warnings)
    assert any("0 replica(s) are connected" in w for w in verdict.warnings)
    assert judge(AOF_ALWAYS, {}, {"connected_slaves": 1}, replicas=1).warnings == ()


@pytest.mark.parametrize("replies", [
    [[0, 0], 1], [[1, 0], 0], [redis.ResponseError("WAITAOF cannot be used"), 1], ["OK", 1], [[1, 0], "OK"],
])
def test_a_confirmation_short_of_what_was_asked_is_not_a_confirmation(replies) -> None:
    with pytest.raises(DurabilityUnconfirmed):
        confirm(confirmation(1, 50), replies)
    confirm(confirmation(1, 50), [[1, 0], 2])  # more replicas than asked is fine
    confirm(confirmation(0, 50), [[1, 0]])


# --- against real servers ----------------------------------------------------------------------


def test_an_allow_waits_for_the_fsync_and_a_block_does_not(settings, own_store) -> None:
    server = own_store()
    screener = own_screener(settings, server)
    seed(screener)
    before = waitaof_calls(server)
    allowed = screener.screen("+79991000000", CAMPAIGN, AT)
    assert allowed.allowed and screener.log.get(allowed.id).result == "ALLOW"
    assert waitaof_calls(server) == before + 1
    blocked = screener.screen("+79990000000", CAMPAIGN, AT)  # no consent
    assert blocked.reason is Reason.NO_BASIS and blocked.id
    assert waitaof_calls(server) == before + 1
    assert screener.durability.verdict.state == CONFIRMED


def test_a_store_without_an_append_only_file_gets_every_allow_refused_loudly(settings, own_store, caplog) -> None:
    registry = CollectorRegistry()
    screener = own_screener(settings, own_store(persist=False), metrics=ScreeningMetrics(registry))
    seed(screener)
    with caplog.at_level(logging.ERROR, logger="callscreen.durability"):
        decision = screener.screen("+79991000000", CAMPAIGN, AT)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE)
    assert "decision log not durable" in decision.checks[0].detail and "appendonly no" in decision.checks[0].detail
    assert screener.log.get(decision.id).reason == "screening_unavailable"  # the refusal itself is logged
    assert "NOT durable" in caplog.text
    assert _metric(registry, "callscreen_screening_failures_total", stage="log", kind="not_durable") == 1
    assert _metric(registry, "callscreen_log_durability", state="refused") == 1
    assert _metric(registry, "callscreen_log_durability", state="confirmed") == 0


def test_the_explicit_opt_out_answers_allow_without_asking_the_disk(settings, own_store) -> None:
    registry = CollectorRegistry()
    server = own_store(persist=False)
    screener = own_screener(settings, server, allow_without_durability=True, metrics=ScreeningMetrics(registry))
    seed(screener)
    decision = screener.screen("+79991000000", CAMPAIGN, AT)
    assert decision.allowed and screener.log.get(decision.id)
    assert waitaof_calls(server) == 0
    assert _metric(registry, "callscreen_log_durability", state="waived") == 1


def test_a_store_that_forbids_config_is_treated_as_unable_to_guarantee(settings, own_store) -> None:
    server = own_store()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "dialer", "on", ">secret-pass", "~*", "&*", "+@all", "-config")
    screener = own_screener(settings, server)
    seed(screener)
    limited = own_screener(settings, server)
    limited.store.client = redis.Redis(port=server.port, username="dialer", password="secret-pass")
    decision = limited.screen("+79991000000", CAMPAIGN, AT)
    assert decision.reason is Reason.SCREENING_UNAVAILABLE
    assert "cannot read the store's persistence settings" in decision.checks[0].detail


def test_turning_the_append_only_file_off_at_runtime_blocks_the_next_allow(settings, own_store) -> None:
    server = own_store()
    screener = own_screener(settings, server)
    seed(screener)
    assert screener.screen("+79991000000", CAMPAIGN, AT).allowed
    redis.Redis.from_url(server.url).config_set("appendonly", "no")  # the verdict is a minute old at most
    decision = screener.screen("+79991000000", CAMPAIGN, AT)
    assert decision.reason is Reason.SCREENING_UNAVAILABLE and "cannot confirm" in decision.checks[0].detail


def test_an_allow_waits_for_the_required_replica_and_is_blocked_in_time_without_it(settings, own_store) -> None:
    primary = own_store("--repl-diskless-sync-delay", "0")
    registry = CollectorRegistry()

    async def scenario() -> tuple:
        screener = own_screener(settings, primary, asyncio=True, durable_replicas=1,
                                metrics=ScreeningMetrics(registry))
        seed(screener)
        started = time.perf_counter()
        alone = await screener.screen_async("+79991000000", CAMPAIGN, AT, deadline=0.5)
        alone_seconds = time.perf_counter() - started
        replica = own_store("--replicaof", "127.0.0.1", str(primary.port))
        _wait_for_replica(primary)
        await screener.durability.check_async(screener.aclient)
        paired = await screener.screen_async("+79991000000", CAMPAIGN, AT, deadline=0.25)
        await screener.aclient.aclose()
        return alone, alone_seconds, paired, replica

    alone, alone_seconds, paired, replica = asyncio.run(scenario())
    assert (alone.result, alone.reason) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE)
    # WAIT says "0 of 1" itself unless the busy store notices its timeout too late: then the budget cuts it
    assert any(why in alone.checks[0].detail for why in ("0 of 1 replicas received", "500 ms budget"))
    assert alone_seconds < 1.0  # within the budget, not at the store's pace
    assert paired.allowed, paired.checks
    assert sum(_metric(registry, "callscreen_screening_failures_total", stage="log", kind=kind)
               for kind in ("durability", "timeout")) == 1
    replicated = redis.Redis.from_url(replica.url)
    assert replicated.hget("cs:{log}:ids", paired.id) is not None


def _wait_for_replica(primary, timeout: float = 10.0) -> None:
    client = redis.Redis.from_url(primary.url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        client.set("probe", "1")
        if client.execute_command("WAIT", 1, 100) == 1:  # online and acknowledging
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not come online")


def test_readiness_reads_the_store_settings_before_any_decision_has(settings, own_store) -> None:
    from callscreen.cli.serve import _readiness

    def durability_check(server) -> tuple[bool, str]:
        screener = own_screener(settings, server)
        _ready, checks = _readiness(screener.store.client, screener.policies, screener).report()
        found = next(c for c in checks if c.name == "durability")
        return found.ok, found.detail

    assert durability_check(own_store()) == (True, "the store confirms writes on disk")
    passed, detail = durability_check(own_store(persist=False))
    assert not passed and "appendonly no" in detail
