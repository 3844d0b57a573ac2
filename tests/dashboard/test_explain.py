"""A decision's trace in Russian: every check name, every detail shape the core writes, and the
values inside them come out translated; the decision page shows no English check text."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from flask_babel import force_locale

from callscreen.decision import ScreeningRequest, decide
from callscreen.models import Contact, Facts
from callscreen.screening import unavailable
from dashboard.explain import CHECK_NAMES, PATTERNS, check_detail, check_name, translate_detail
from tests.dashboard.conftest import login, post_form
from tests.decision_cases import (
    CAPTURED,
    DAY,
    campaign,
    consent,
    ebr,
    facts,
    interest,
    local,
    number,
    objection,
    opt_out,
    pack,
    registry,
    screen,
    suppression,
    utc,
    with_pack,
)

CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)
WEEKDAY = local("Europe/Moscow", 2026, 6, 10, 12)  # a Wednesday at noon
FRESH = WEEKDAY - DAY
US_FRESH = (registry("us-dnc", loaded_at=FRESH),)
GB_FRESH = (registry("gb-tps", loaded_at=FRESH), registry("gb-ctps", loaded_at=FRESH))


def traces() -> list:
    """Decisions that between them reach every sentence shape of the core's check details."""
    ru = campaign("RU")
    ok = consent()
    decisions = [
        decide(ScreeningRequest("12", None, ru, WEEKDAY), Facts(), pack("RU")),
        decide(ScreeningRequest("+74951234567", number("+74951234567"), None, WEEKDAY), Facts(), None),
        screen("RU", WEEKDAY, facts(ok), policy=None, the_campaign=replace(ru, jurisdiction="XX")),
        screen("RU", WEEKDAY, facts(ok, suppressions=(suppression(),))),
        screen("RU", WEEKDAY, facts(ok, opt_outs=(opt_out(None),))),
        screen("RU", WEEKDAY, facts(ok, opt_outs=(opt_out("spring-promo"),))),
        screen("EU", WEEKDAY, facts(ok, objections=(objection(),))),
        screen("RU", WEEKDAY, facts(ok), automatic=True),
        screen("GB", WEEKDAY, facts(interest(), registries=GB_FRESH), automatic=True),
        screen("US", local("America/New_York", 2026, 6, 10, 12), facts(ok, registries=US_FRESH), automatic=True),
        screen("RU", WEEKDAY, facts(ok), automatic=True, policy=with_pack(pack("RU"), automatic_dialing="allowed")),
        screen("RU", WEEKDAY, facts(consent(withdrawn_at=CAPTURED + DAY))),
        screen("RU", WEEKDAY, facts(interest())),
        screen("RU", WEEKDAY, facts(consent(purposes=("appointment_reminders",)))),
        screen("RU", WEEKDAY, facts(consent(captured_at=WEEKDAY + DAY))),
        screen("RU", WEEKDAY, Facts()),
        screen("US", local("America/New_York", 2026, 6, 10, 12), facts(ebr("purchase", WEEKDAY - 30 * DAY))),
        screen("GB", WEEKDAY, facts(interest())),
        screen("GB", WEEKDAY, facts(interest(), registries=(registry("gb-tps", loaded_at=WEEKDAY - 40 * DAY),))),
        screen("GB", WEEKDAY, facts(interest(), registries=(registry("gb-tps", listed=True, loaded_at=FRESH),
                                                            registry("gb-ctps", loaded_at=FRESH)))),
        screen("GB", WEEKDAY, facts(interest(), registries=GB_FRESH)),
        screen("RU", local("Europe/Moscow", 2026, 6, 10, 23), facts(ok)),
        screen("GB", local("Europe/London", 2026, 6, 14, 12), facts(interest(), registries=GB_FRESH)),
        screen("RU", WEEKDAY, facts(ok), raw="+79991234567"),
        screen("RU", local("Europe/Moscow", 2026, 6, 10, 21, 30), facts(ok), raw="+79991234567"),
        screen("US", local("America/New_York", 2026, 6, 10, 12), facts(ok, contact=Contact("America/New_York", ""),
                                                                       registries=US_FRESH), raw="+13055550123"),
        screen("US", local("America/New_York", 2026, 6, 10, 12),
               facts(ok, registries=US_FRESH, attempts=tuple(local("America/New_York", 2026, 6, 10, h)
                                                             for h in (9, 10, 11))), raw="+13055550123"),
        screen("US", local("America/New_York", 2026, 6, 10, 12), facts(ok, registries=US_FRESH)),
        screen("RU", WEEKDAY, facts(ok, erased_at=CAPTURED)),
        screen("RU", WEEKDAY, facts(consent(source="web_form", verified_at=None))),
        screen("US", local("America/New_York", 2026, 6, 10, 12),
               facts(ok, registries=US_FRESH, disconnected_at=CAPTURED + DAY)),
        screen("US", local("America/New_York", 2026, 6, 10, 12),
               facts(ok, registries=US_FRESH, attempts_limit=3,
                     attempts=tuple(local("America/New_York", 2026, 6, 10, h) for h in (9, 10, 11))),
               raw="+13055550123"),
        unavailable("facts unavailable: Connection refused", WEEKDAY),
        unavailable("decision log unavailable: Connection refused", WEEKDAY),
        unavailable("store slower than the 250 ms budget", WEEKDAY),
    ]
    return decisions


def test_every_check_detail_the_core_writes_is_said_in_russian(app):
    used: set[str] = set()
    with app.test_request_context(), force_locale("ru"):
        for decision in traces():
            for check in decision.checks:
                assert check.name in CHECK_NAMES, check.name
                said = translate_detail(check.detail)
                assert said is not None, f"no Russian for {check.name}: {check.detail!r}"
                assert CYRILLIC.search(said), (check.detail, said)
                head = check.detail.split("; strictest")[0]
                used.update(str(t._args[0]) for p, t in PATTERNS if p.fullmatch(head))
        unreached = [t._args[0] for _p, t in PATTERNS if t._args[0] not in used]
    assert not unreached, f"patterns no decision reached (dead, or the core's wording changed): {unreached}"


@pytest.mark.parametrize("detail", [
    "consent c-1 from web_form on 2026-05-01 covers promotions",
    "2026-06-10 23:00 Europe/Moscow (wed): window 08:00-22:00; strictest of 11 candidate zones: record the "
    "contact's time zone",
])
def test_values_inside_a_detail_are_translated_too(app, detail):
    with app.test_request_context(), force_locale("ru"):
        said = check_detail(detail)
    assert "web_form" not in said and "promotions" not in said and "wed)" not in said and "strictest" not in said


def test_an_unknown_detail_is_shown_as_logged(app):
    with app.test_request_context(), force_locale("ru"):
        assert check_detail("a sentence from a newer core") == "a sentence from a newer core"
        assert check_name("calling_hours") == "часы звонков"


def test_the_russian_decision_page_has_no_english_check_text_or_raw_values(app, users, svc, campaign, consent):
    decision = svc.screener.screen("+79991234567", "spring", utc(2026, 6, 10, 9), origin="cli")
    client = app.test_client()
    login(client, "supervisor")
    post_form(client, "/", "/language", {"locale": "ru"})
    html = client.get(f"/decisions/{decision.id}").get_data(as_text=True)
    for english in ("calling_hours", "opt_out", "no complaint suppression", "is inside the window", "web_form",
                    "promotions", ">cli<"):
        assert english not in html, english
    assert "часы звонков" in html and "веб-форма" in html.lower() and "командная строка" in html
    assert "Всё время указано в поясе Europe/Moscow" in html
