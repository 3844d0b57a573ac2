"""Screening end to end against a real store: decide, log, answer — and fail closed."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from callscreen.config import Settings
from callscreen.models import Campaign, Consent, Contact, LegalBasis, Proof, Reason, Result, Suppression
from callscreen.numbers import normalize
from callscreen.screening import build_screener
from callscreen.store import connect, ms, number_key
from tests_support import on_every_primary, store_client

pytestmark = pytest.mark.also_cluster

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Friday


@pytest.fixture
def screener(settings, redis_client):
    screener = build_screener(settings, redis_client)
    screener.store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    screener.store.put_campaign(Campaign("fl-solar", "promotions", "US", "US", "America/New_York"))
    return screener


def give_consent(screener, raw="+79991234567", **overrides):
    number = normalize(raw, "RU")
    fields = dict(id="c-1", number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
                  source="sms_double_opt_in", captured_at=AT - timedelta(days=30),
                  verified_at=AT - timedelta(days=30) + timedelta(minutes=3), proof=Proof(form_version="v3"))
    fields.update(overrides)
    return screener.store.add_consent(number, Consent(**fields), Contact("Europe/Moscow", ""))


def test_consented_number_is_allowed_and_the_answer_is_logged_with_its_basis(screener):
    give_consent(screener)
    decision = screener.screen("8 (999) 123-45-67", "spring", AT)
    assert (decision.result, decision.reason) == (Result.ALLOW, Reason.CONSENT)
    assert decision.basis.short() == "consent:sms_double_opt_in:2026-10-21"
    logged = screener.log.get(decision.id)
    assert logged.result == "ALLOW" and logged.basis["consent_id"] == "c-1"
    assert logged.basis["form_version"] == "v3" and logged.timezone == "Europe/Moscow"
    assert screener.store.open_number(logged.number_digest, logged.number_sealed) == "+79991234567"


def test_every_decision_is_logged_even_invalid_numbers_and_unknown_campaigns(screener):
    first = screener.screen("not a number", "spring", AT)
    second = screener.screen("+79991234567", "no-such-campaign", AT)
    assert first.reason is Reason.INVALID_NUMBER and second.reason is Reason.UNKNOWN_CAMPAIGN
    assert screener.log.get(first.id) and screener.log.get(second.id)


def test_dry_run_is_neither_logged_nor_counted_as_an_attempt(screener, redis_client):
    give_consent(screener)
    decision = screener.screen("+79991234567", "spring", AT, dry_run=True)
    assert decision.allowed and decision.id == ""
    assert screener.log.tail(5) == []
    digest = screener.vault.digest("+79991234567")
    assert redis_client.zcard(number_key(digest, "attempts")) == 0


def test_allowed_calls_count_as_attempts_toward_the_florida_cap(screener):
    number = normalize("+13055550123")
    screener.store.add_consent(number, Consent("c-fl", "", ("promotions",), LegalBasis.CONSENT, "web_form",
                                               AT - timedelta(days=3), proof=Proof(form_text="Call me")))
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 10:00 in Miami
    results = [screener.screen("+1 305 555 0123", "fl-solar", at + timedelta(minutes=i)).reason
               for i in range(4)]
    assert results == [Reason.CONSENT] * 3 + [Reason.ATTEMPT_CAP]


def test_a_complaint_suppression_blocks_the_very_next_check(screener):
    give_consent(screener)
    assert screener.screen("+79991234567", "spring", AT).allowed
    screener.store.suppress(screener.vault.digest("+79991234567"), Suppression("cmp-1", AT))
    assert screener.screen("+79991234567", "spring", AT).reason is Reason.COMPLAINT_SUPPRESSED


def test_us_campaign_without_a_loaded_registry_blocks_as_stale_unless_consent_exempts(screener):
    number = normalize("+12125550100")
    screener.store.add_consent(number, Consent("li", "", ("promotions",), LegalBasis.LEGITIMATE_INTEREST,
                                               "crm_import", AT - timedelta(days=3)))
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
    assert screener.screen("+12125550100", "fl-solar", at).reason is Reason.NO_BASIS
    screener.store.add_consent(number, Consent("ebr", "", ("promotions",), LegalBasis.EXISTING_RELATIONSHIP,
                                               "crm_import", AT - timedelta(days=3), relationship="inquiry"))
    assert screener.screen("+12125550100", "fl-solar", at).reason is Reason.EXISTING_RELATIONSHIP


def test_a_store_that_cannot_be_reached_blocks_with_screening_unavailable(settings):
    dead = connect("redis://127.0.0.1:1/0")
    screener = build_screener(settings, dead)
    decision = screener.screen("+79991234567", "spring", AT)
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE)
    assert decision.id == ""


def test_a_log_write_failure_never_lets_an_allow_through(screener, redis_client):
    give_consent(screener)
    on_every_primary(redis_client, "CONFIG", "SET", "maxmemory", "1")  # writes refused (OOM), reads answered
    try:
        decision = screener.screen("+79991234567", "spring", AT)
    finally:
        on_every_primary(redis_client, "CONFIG", "SET", "maxmemory", "0")
    assert (decision.result, decision.reason) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE)


def test_async_screening_blocks_at_the_deadline_and_the_block_can_be_logged_afterwards(settings, redis_client,
                                                                                       store_url):
    async def scenario():
        aclient = store_client(store_url, asyncio=True)
        screener = build_screener(settings, redis_client, aclient=aclient)
        screener.store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
        give_consent(screener)
        # the first decision learns a cluster's slot map and every master's settings: not timed here
        allowed = await screener.screen_async("+79991234567", "spring", AT, deadline=5)
        screener.campaigns.ttl = 0  # force a store round trip for the campaign as well
        on_every_primary(redis_client, "CLIENT", "PAUSE", 400, "ALL")
        slow = await screener.screen_async("+79991234567", "spring", AT, deadline=0.1)
        logged = await screener.log_unavailable_async("+79991234567", "spring", slow.checks[0].detail)
        await aclient.aclose()
        return screener, allowed, slow, logged

    screener, allowed, slow, logged = asyncio.run(scenario())
    assert allowed.allowed and screener.log.get(allowed.id)
    assert (slow.result, slow.reason, slow.id) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE, "")
    assert "100 ms budget" in slow.checks[0].detail
    assert screener.log.get(logged.id).reason == "screening_unavailable"


def test_missing_keys_fail_loudly_at_start_up(redis_client):
    from callscreen.config import ConfigError

    with pytest.raises(ConfigError):
        build_screener(Settings(), redis_client)


def test_a_much_called_number_is_capped_from_a_bounded_read_with_the_same_answer(screener, redis_client):
    number = normalize("+13055550123")
    screener.store.add_consent(number, Consent("c-fl", "", ("promotions",), LegalBasis.CONSENT, "web_form",
                                               AT - timedelta(days=3), proof=Proof(form_text="Yes, call me")))
    at = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 10:00 in Miami
    attempts = number_key(screener.vault.digest(number.e164), "attempts")
    redis_client.zadd(attempts, {f"d-{i}": ms(at - timedelta(seconds=10 * i + 10)) for i in range(3000)})
    decision = screener.screen("+1 305 555 0123", "fl-solar", at)
    assert decision.reason is Reason.ATTEMPT_CAP
    attempts_check = next(c for c in decision.checks if c.name == "attempts")
    assert attempts_check.detail == "at least 4 calls in the last 24 h; cap 3"
