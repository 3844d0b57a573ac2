"""A small demo data set: one campaign per policy pack, consents that show each outcome, and
tiny synthetic do-not-call registries so every pack's required registries are loaded.

Invariants:
- The demo lives in its own namespace: campaign ids start with ``demo-``, consent ids too, and
  its numbers are not the ones the README's walkthrough uses — nothing a user adds collides
  with it.
- It is seeded once (marker ``cs:demo:seeded``); later seeds leave the records alone, so a
  change made to a demo record sticks. ``reset=True`` writes them again.
- Demo registries are imported through the real registry import path and re-imported only
  while they are still the demo's own (source ``callscreen demo``) and older than a day, so they
  stay fresh; a registry loaded from any other source is never touched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from callscreen.models import Campaign, Consent, Contact, LegalBasis, OptOut, Proof
from callscreen.numbers import normalize
from callscreen.store import Store

MARKER_KEY = "cs:demo:seeded"
REGISTRY_SOURCE = "callscreen demo"
REGISTRY_DIR = Path(__file__).with_name("registries")
REGISTRIES = (("us-dnc", "US"), ("gb-tps", "GB"), ("gb-ctps", "GB"))  # every pack's required registries
REFRESH_AFTER = timedelta(days=1)

FORM_RU = ("Я согласен(на) получать рекламные звонки клиники «Здоровье» о скидках и акциях "
           "на номер, указанный выше. Согласие можно отозвать в любой момент.")
FORM_EN = ("I agree to receive marketing calls from Sunny Solar at the number above. "
           "Consent is not a condition of purchase.")

CAMPAIGNS = (
    Campaign("demo-spring-promo", "promotions", "RU", "RU", "Europe/Moscow", name="Demo: spring check-up discounts"),
    Campaign("demo-clinic-reminders", "appointment_reminders", "RU", "RU", "Europe/Moscow", advertising=False,
             name="Demo: appointment reminders"),
    Campaign("demo-robo-promo", "promotions", "RU", "RU", "Europe/Moscow", automatic_dialing=True,
             name="Demo: automatic dialing (forbidden for advertising in RU)"),
    Campaign("demo-us-solar", "promotions", "US", "US", "America/New_York", name="Demo: solar panels, Florida"),
    Campaign("demo-uk-broadband", "promotions", "GB", "GB", "Europe/London", name="Demo: broadband upgrade"),
    Campaign("demo-bg-insurance", "promotions", "BG", "BG", "Europe/Sofia", name="Demo: car insurance renewal"),
)
OPTED_OUT = "+79265550104"


def _consents(now: datetime) -> tuple[tuple[str, Consent, Contact | None], ...]:
    month_ago = now - timedelta(days=30)
    return (
        ("+79995550101", Consent(
            "demo-ru-1", "", ("promotions", "appointment_reminders"), LegalBasis.CONSENT, "web_form", month_ago,
            proof=Proof(ip="203.0.113.7", user_agent="Mozilla/5.0", form_text=FORM_RU, form_version="ru-2026-03",
                        page_url="https://clinic.example/signup"),
            verified_at=month_ago + timedelta(minutes=3)), Contact("Europe/Moscow", "")),
        ("+79165550102", Consent(
            "demo-ru-2", "", ("appointment_reminders",), LegalBasis.CONSENT, "paper", month_ago,
            proof=Proof(document_id="scan-2026-0042", form_version="paper-v2")), Contact("Europe/Moscow", "")),
        # unverified: BLOCK consent_unverified; retention deletes it once the RU pack's period is over
        ("+79035550103", Consent(
            "demo-ru-3", "", ("promotions",), LegalBasis.CONSENT, "web_form", now - timedelta(days=2),
            proof=Proof(ip="198.51.100.4", form_text=FORM_RU, form_version="ru-2026-03")),
         Contact("Europe/Moscow", "")),
        ("+13055550123", Consent(
            "demo-us-1", "", ("promotions",), LegalBasis.CONSENT, "web_form", month_ago,
            proof=Proof(ip="192.0.2.10", form_text=FORM_EN, form_version="us-2026-01")), None),
        ("+12125550100", Consent(
            "demo-us-2", "", ("promotions",), LegalBasis.EXISTING_RELATIONSHIP, "crm_import",
            now - timedelta(days=200), relationship="purchase"), None),
        ("+442079460958", Consent(
            "demo-gb-1", "", ("promotions",), LegalBasis.LEGITIMATE_INTEREST, "crm_import", month_ago,
            proof=Proof(document_id="LIA-2026-07")), None),
        ("+359888123456", Consent(
            "demo-bg-1", "", ("promotions",), LegalBasis.CONSENT, "email_double_opt_in", month_ago,
            verified_at=month_ago + timedelta(hours=1), proof=Proof(form_version="bg-2026-02")), None),
    )


def seed(store: Store, client: redis.Redis, *, reset: bool = False, now: datetime | None = None) -> list[str]:
    """Write the demo records (once, or again with ``reset``) and keep the demo registries fresh.
    Returns one line per thing done, for the user to read."""
    now = now or datetime.now(UTC)
    done = []
    if reset or not client.exists(MARKER_KEY):
        for campaign in CAMPAIGNS:
            store.put_campaign(campaign)
        for raw, consent, contact in _consents(now):
            store.add_consent(normalize(raw), consent, contact)
        store.add_opt_out(normalize(OPTED_OUT), OptOut(None, "call", now - timedelta(days=30),
                                                       "asked not to be called"))
        client.set(MARKER_KEY, now.isoformat())
        done.append(f"demo: seeded {len(CAMPAIGNS)} campaigns (demo-*), {len(_consents(now))} consents, 1 opt-out")
    else:
        done.append("demo: already seeded, left as it is (callscreen demo seed --reset writes it again)")
    done.extend(_registries(client, now))
    return done


def _registries(client: redis.Redis, now: datetime) -> list[str]:
    try:
        from blocklists.registry import RegistryManager
    except ImportError:
        return []
    manager = RegistryManager(client)
    done = []
    for registry_id, country in REGISTRIES:
        live = manager.get(registry_id)
        if live is not None and (live.source != REGISTRY_SOURCE or now - live.loaded_at < REFRESH_AFTER):
            continue
        report = manager.import_file(registry_id, REGISTRY_DIR / f"{registry_id}.txt", fmt="lines", country=country,
                                     source=REGISTRY_SOURCE, version="demo", force=True)
        done.append(f"demo: registry {registry_id} loaded ({report.info.records} synthetic numbers)")
    return done
