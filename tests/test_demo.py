"""The demo: its own namespace, seeded once, and a healthy system (every required registry fresh)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from blocklists.registry import RegistryManager
from callscreen.demo import CAMPAIGNS, REGISTRY_SOURCE, seed
from callscreen.policy import PolicyBook
from callscreen.screening import build_screener


def ordinary_midday() -> datetime:
    """12:00 UTC on the next Tuesday to Thursday that is no UK bank holiday."""
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    while True:
        day += timedelta(days=1)
        if day.weekday() in (1, 2, 3) and (day.month, day.day) not in ((12, 25), (12, 26), (1, 1)):
            return day


def test_demo_records_live_in_their_own_namespace():
    assert all(c.id.startswith("demo-") for c in CAMPAIGNS)


def test_a_second_seed_keeps_what_the_user_changed(store, redis_client):
    seed(store, redis_client)
    changed = replace(store.get_campaign("demo-spring-promo"), name="renamed by the user")
    store.put_campaign(changed)
    captured = store.get_consent("demo-ru-1").captured_at
    lines = seed(store, redis_client, now=datetime.now(UTC) + timedelta(hours=2))
    assert any("already seeded" in line for line in lines)
    assert store.get_campaign("demo-spring-promo").name == "renamed by the user"
    assert store.get_consent("demo-ru-1").captured_at == captured
    seed(store, redis_client, reset=True)
    assert store.get_campaign("demo-spring-promo").name != "renamed by the user"


def test_the_demo_loads_every_required_registry_through_the_import_path(store, redis_client):
    seed(store, redis_client)
    packs = [PolicyBook.load().get(j) for j in PolicyBook.load().jurisdictions()]
    rows = RegistryManager(redis_client).status(packs)
    assert rows and all(row.state == "fresh" for row in rows), rows


def test_demo_registries_are_refreshed_but_a_users_own_registry_is_never_touched(store, redis_client, tmp_path):
    seed(store, redis_client)
    manager = RegistryManager(redis_client)
    own = tmp_path / "tps.txt"
    own.write_text("020 7946 0001\n020 7946 0002\n020 7946 0003\n")
    manager.import_file("gb-tps", own, fmt="lines", country="GB", source="TPS", force=True)
    us_before = manager.get("us-dnc")
    seed(store, redis_client, now=datetime.now(UTC) + timedelta(days=2))
    assert manager.get("gb-tps").source == "TPS" and manager.get("gb-tps").records == 3
    assert manager.get("us-dnc").source == REGISTRY_SOURCE
    assert manager.get("us-dnc").generation > us_before.generation


def test_the_uk_demo_campaign_is_screened_against_loaded_registries(store, redis_client, settings):
    seed(store, redis_client)
    from blocklists.lookup import registry_lookup_for

    screener = build_screener(settings, redis_client, registries=registry_lookup_for(redis_client))
    at = ordinary_midday()
    decision = screener.screen("+44 20 7946 0958", "demo-uk-broadband", at, dry_run=True)
    assert decision.reason.value == "legitimate_interest", decision
    listed = screener.screen("+44 20 7946 0123", "demo-uk-broadband", at, dry_run=True)
    assert listed.reason.value != "registry_stale"
