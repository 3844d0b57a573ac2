"""A small demo data set: one campaign per policy pack and consents that show each outcome.

Idempotent: seeding twice leaves the same records (fixed ids).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callscreen.models import Campaign, Consent, Contact, LegalBasis, OptOut, Proof
from callscreen.numbers import normalize
from callscreen.store import Store

FORM_RU = ("Я согласен(на) получать рекламные звонки клиники «Здоровье» о скидках и акциях "
           "на номер, указанный выше. Согласие можно отозвать в любой момент.")
FORM_EN = ("I agree to receive marketing calls from Sunny Solar at the number above. "
           "Consent is not a condition of purchase.")

CAMPAIGNS = (
    Campaign("spring-promo", "promotions", "RU", "RU", "Europe/Moscow", name="Spring check-up discounts"),
    Campaign("clinic-reminders", "appointment_reminders", "RU", "RU", "Europe/Moscow", advertising=False,
             name="Appointment reminders"),
    Campaign("robo-promo", "promotions", "RU", "RU", "Europe/Moscow", automatic_dialing=True,
             name="Automatic dialing (forbidden for advertising in RU)"),
    Campaign("us-solar", "promotions", "US", "US", "America/New_York", name="Solar panels, Florida"),
    Campaign("uk-broadband", "promotions", "GB", "GB", "Europe/London", name="Broadband upgrade"),
    Campaign("bg-insurance", "promotions", "BG", "BG", "Europe/Sofia", name="Car insurance renewal"),
)


def seed(store: Store, now: datetime | None = None) -> list[str]:
    """Write the demo records; returns one line per record written."""
    now = now or datetime.now(UTC)
    written = []
    for campaign in CAMPAIGNS:
        store.put_campaign(campaign)
        written.append(f"campaign {campaign.id}")
    month_ago = now - timedelta(days=30)
    consents = (
        ("+79991234567", Consent(
            "demo-ru-1", "", ("promotions", "appointment_reminders"), LegalBasis.CONSENT, "web_form", month_ago,
            proof=Proof(ip="203.0.113.7", user_agent="Mozilla/5.0", form_text=FORM_RU, form_version="ru-2026-03",
                        page_url="https://clinic.example/signup"),
            verified_at=month_ago + timedelta(minutes=3)), Contact("Europe/Moscow", "")),
        ("+79161234567", Consent(
            "demo-ru-2", "", ("appointment_reminders",), LegalBasis.CONSENT, "paper", month_ago,
            proof=Proof(document_id="scan-2026-0042", form_version="paper-v2")), Contact("Europe/Moscow", "")),
        ("+79031234567", Consent(
            "demo-ru-3", "", ("promotions",), LegalBasis.CONSENT, "web_form", month_ago,
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
    for raw, consent, contact in consents:
        store.add_consent(normalize(raw), consent, contact)
        written.append(f"consent {consent.id}")
    store.add_opt_out(normalize("+79261234567"), OptOut(None, "call", month_ago, "asked not to be called"))
    written.append("opt-out +7 926 ***-**-67")
    return written
