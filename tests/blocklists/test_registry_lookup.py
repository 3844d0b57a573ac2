"""The dial-time lookup inside the decision's single round trip, staleness, and the metrics."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio
from prometheus_client import CollectorRegistry

from blocklists.lookup import RedisRegistryLookup, Snapshot, registry_lookup_for
from blocklists.metrics import RegistryCollector, limits_from_packs
from blocklists.registry import RegistryManager
from callscreen.models import Campaign, Consent, LegalBasis, Reason, Result
from callscreen.numbers import normalize
from callscreen.policy import PolicyBook
from callscreen.screening import build_screener
from callscreen.store import FactQuery, run_pipeline
from tests_support import store_client

pytestmark = pytest.mark.also_cluster

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday, 12:00 in London


def load(manager, registry_id, text, tmp_path, fmt="tps", country="GB"):
    path = tmp_path / f"{registry_id}.txt"
    path.write_text(text)
    return manager.import_file(registry_id, path, fmt=fmt, country=country)


@pytest.fixture
def manager(redis_client):
    return RegistryManager(redis_client, clock=lambda: AT - timedelta(days=1))


def test_the_lookup_is_one_getbit_per_registry_inside_the_fact_query_pipeline(manager, redis_client, store,
                                                                             tmp_path):
    load(manager, "gb-tps", "02079460958\n", tmp_path)
    lookup = RedisRegistryLookup(redis_client)
    number = normalize("+44 20 7946 0958")
    query = FactQuery(number, store.vault.digest(number.e164), AT, ("gb-tps", "gb-ctps"), lookup, attempt_limit=0)
    commands = query.commands()
    assert commands[-2] == ("GETBIT", "cs:reg:gb-tps:v1:44:2079", 460958)
    assert commands[-1] == ("GET", "cs:reg:gb-ctps:current")  # not loaded: a probe, never a bit
    facts = query.parse(run_pipeline(redis_client, commands))
    tps, ctps = facts.registries
    assert (tps.registry_id, tps.listed, tps.loaded_at) == ("gb-tps", True, AT - timedelta(days=1))
    assert (ctps.registry_id, ctps.listed, ctps.loaded_at) == ("gb-ctps", False, None)


def test_screening_blocks_listed_numbers_as_national_dnc_and_missing_registries_as_stale(
        manager, settings, redis_client, tmp_path):
    load(manager, "gb-tps", "02079460958\n", tmp_path)
    screener = build_screener(settings, redis_client, registries=registry_lookup_for(redis_client))
    screener.store.put_campaign(Campaign("uk-promo", "promotions", "GB", "GB", "Europe/London"))
    for raw in ("+442079460958", "+442071234567"):
        screener.store.add_consent(normalize(raw), Consent(f"li-{raw[-4:]}", "", ("promotions",),
                                                           LegalBasis.LEGITIMATE_INTEREST, "crm_import",
                                                           AT - timedelta(days=5)))
    assert screener.screen("020 7123 4567", "uk-promo", AT, dry_run=True).reason is Reason.REGISTRY_STALE
    load(manager, "gb-ctps", "01212345678\n", tmp_path)
    screener.registries.refresh()
    listed = screener.screen("020 7946 0958", "uk-promo", AT)
    assert (listed.result, listed.reason) == (Result.BLOCK, Reason.NATIONAL_DNC)
    assert "listed on gb-tps" in next(c.detail for c in listed.checks if c.name == "registries")
    assert screener.screen("020 7123 4567", "uk-promo", AT).reason is Reason.LEGITIMATE_INTEREST
    later = AT + timedelta(days=40)
    assert screener.screen("020 7123 4567", "uk-promo", later.replace(hour=12), dry_run=True).reason \
        is Reason.REGISTRY_STALE


def test_the_async_screening_path_reads_the_registry_in_its_pipeline_with_a_background_refresher(
        manager, settings, redis_client, store_url, tmp_path):
    load(manager, "gb-tps", "02079460958\n", tmp_path)
    load(manager, "gb-ctps", "01212345678\n", tmp_path)
    lookup = registry_lookup_for(redis_client, background=True)

    async def scenario():
        aclient = store_client(store_url, asyncio=True)
        screener = build_screener(settings, redis_client, aclient=aclient, registries=lookup)
        screener.store.put_campaign(Campaign("uk-promo", "promotions", "GB", "GB", "Europe/London"))
        screener.store.add_consent(normalize("+442079460958"), Consent(
            "li-1", "", ("promotions",), LegalBasis.LEGITIMATE_INTEREST, "crm_import", AT - timedelta(days=5)))
        # a generous deadline: this is about where the registry is read, not how fast (a loaded
        # machine and a first decision that reads every cluster master's settings can take 250 ms)
        decision = await screener.screen_async("+44 20 7946 0958", "uk-promo", AT, deadline=5)
        await aclient.aclose()
        return decision

    try:
        decision = asyncio.run(scenario())
    finally:
        lookup.stop()
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.NATIONAL_DNC) and decision.id


def test_a_reader_holding_the_previous_generation_still_reads_the_whole_old_list(manager, redis_client, tmp_path):
    load(manager, "us-dnc", "2012001234\n", tmp_path, fmt="lines", country="US")
    lookup = RedisRegistryLookup(redis_client, refresh_seconds=100, max_age_seconds=140)
    lookup.refresh()
    load(manager, "us-dnc", "2012001235\n", tmp_path, fmt="lines", country="US")
    number = normalize("+12012001234")
    commands = lookup.commands(number, ["us-dnc"])
    assert commands[0][1].startswith("cs:reg:us-dnc:v1:")
    assert lookup.parse(number, ["us-dnc"], [redis_client.execute_command(*commands[0])])[0].listed
    lookup.refresh()
    commands = lookup.commands(number, ["us-dnc"])
    assert not lookup.parse(number, ["us-dnc"], [redis_client.execute_command(*commands[0])])[0].listed


def test_an_old_pointer_snapshot_is_not_trusted_so_the_registry_reads_as_not_loaded(redis_client):
    """The pointers cannot be refreshed (store unreachable for the refresh): after max_age the
    cached generation is no longer used and the registry reads as not loaded (fail closed)."""
    now = [1000.0]
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    lookup = RedisRegistryLookup(dead, refresh_seconds=5, max_age_seconds=60, clock=lambda: now[0])
    lookup._snapshot = Snapshot(taken=1000.0, registries={"us-dnc": (1, AT)})
    number = normalize("+12012001234")
    assert lookup.commands(number, ["us-dnc"])[0][0] == "GETBIT"
    now[0] += 61
    commands = lookup.commands(number, ["us-dnc"])
    assert commands == [("GET", "cs:reg:us-dnc:current")]
    status = lookup.parse(number, ["us-dnc"], [redis_client.execute_command(*commands[0])])[0]
    assert status.loaded_at is None


def test_screening_with_a_pointer_snapshot_too_old_to_trust_blocks_as_registry_stale(
        manager, settings, redis_client, tmp_path):
    """Both registries are loaded and fresh and the number is on neither, but this process could
    not refresh its pointers for longer than max_age: it must not trust them, so the call that
    would be allowed on legitimate interest blocks with registry_stale until a refresh succeeds."""
    load(manager, "gb-tps", "02079460958\n", tmp_path)
    load(manager, "gb-ctps", "01212345678\n", tmp_path)
    now = [1000.0]
    lookup = RedisRegistryLookup(redis_client, refresh_seconds=5, max_age_seconds=60, clock=lambda: now[0])
    lookup.refresh()
    screener = build_screener(settings, redis_client, registries=lookup)
    screener.store.put_campaign(Campaign("uk-promo", "promotions", "GB", "GB", "Europe/London"))
    screener.store.add_consent(normalize("+442071234567"), Consent(
        "li-1", "", ("promotions",), LegalBasis.LEGITIMATE_INTEREST, "crm_import", AT - timedelta(days=5)))
    assert screener.screen("020 7123 4567", "uk-promo", AT).reason is Reason.LEGITIMATE_INTEREST
    lookup.client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)  # refreshes fail
    now[0] += 61
    stale = screener.screen("020 7123 4567", "uk-promo", AT)
    assert (stale.result, stale.reason) == (Result.BLOCK, Reason.REGISTRY_STALE)
    assert "not loaded" in next(c.detail for c in stale.checks if c.name == "registries")
    lookup.client = redis_client
    lookup.refresh()
    assert screener.screen("020 7123 4567", "uk-promo", AT).reason is Reason.LEGITIMATE_INTEREST


def test_a_probe_planned_before_a_load_never_reads_as_loaded(manager, redis_client, tmp_path):
    lookup = RedisRegistryLookup(redis_client)
    number = normalize("+12012001234")
    commands = lookup.commands(number, ["us-dnc"])
    load(manager, "us-dnc", "2012001234\n", tmp_path, fmt="lines", country="US")
    reply = redis_client.execute_command(*commands[0])
    lookup.refresh()  # the snapshot now knows the registry, but no bit was read for this request
    assert lookup.parse(number, ["us-dnc"], [reply])[0].loaded_at is None


def test_the_background_refresher_follows_an_import_through_pub_sub(manager, redis_client, tmp_path):
    lookup = RedisRegistryLookup(redis_client, refresh_seconds=30, max_age_seconds=60).start()
    try:
        time.sleep(0.2)
        load(manager, "us-dnc", "2012001234\n", tmp_path, fmt="lines", country="US")
        deadline = time.monotonic() + 5
        while "us-dnc" not in lookup._snapshot.registries and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lookup._snapshot.registries["us-dnc"][0] == 1
    finally:
        lookup.stop()


def test_the_lookup_refuses_a_cache_that_could_outlive_a_retired_generation(redis_client):
    with pytest.raises(ValueError):
        RedisRegistryLookup(redis_client, refresh_seconds=5, max_age_seconds=3600)


def test_metrics_export_age_records_and_staleness_against_policy_limits(manager, redis_client, tmp_path):
    load(manager, "gb-tps", "02079460958\n01212345678\n", tmp_path)
    book = PolicyBook.load()
    limits = limits_from_packs(book.get(j) for j in book.jurisdictions())
    assert limits["us-dnc"] == 31 and limits["gb-tps"] == 28
    registry = CollectorRegistry()
    RegistryCollector(redis_client, registry, limits, clock=lambda: AT + timedelta(days=30))
    value = registry.get_sample_value
    assert value("callscreen_registry_records", {"registry": "gb-tps"}) == 2
    assert value("callscreen_registry_age_seconds", {"registry": "gb-tps"}) == 31 * 86400
    assert value("callscreen_registry_stale", {"registry": "gb-tps"}) == 1
    assert value("callscreen_registry_stale", {"registry": "us-dnc"}) == 1  # required, not loaded
    assert value("callscreen_registry_store_up", {}) == 1


def test_metrics_report_the_store_down_instead_of_failing_the_scrape():
    dead = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    registry = CollectorRegistry()
    RegistryCollector(dead, registry, {"us-dnc": 31})
    assert registry.get_sample_value("callscreen_registry_store_up", {}) == 0
    assert registry.get_sample_value("callscreen_registry_stale", {"registry": "us-dnc"}) is None
