from __future__ import annotations

import json
import re

import pytest

from callscreen.journal import JOURNAL_KEY
from callscreen.numbers import normalize
from tests.dashboard.conftest import NUMBER, build, calling_time, post_form
from tests_support import all_keys

pytestmark = pytest.mark.also_cluster

MASKED = "+7 999 ***-**-67"


def screen(svc, number=NUMBER, campaign="spring", days_ago=0):
    return svc.screener.screen(number, campaign, calling_time(days_ago), origin="test")


def test_overview_counts_todays_decisions_and_blocks_by_reason(as_role, svc, campaign, consent):
    screen(svc)  # allowed: verified web-form consent (decided as of noon)
    svc.screener.screen("12", "spring", origin="test")  # invalid_number
    svc.screener.screen("+79997654321", "no-such-campaign", origin="test")  # unknown_campaign
    svc.screener.screen("+79997654322", "no-such-campaign", origin="test")  # unknown_campaign
    html = as_role("supervisor").get("/").get_data(as_text=True)
    assert '<span class="big" id="today-decisions">4</span>' in html
    assert '<span class="big" id="today-allowed">1</span>' in html
    assert '<span class="big bad" id="today-blocked">3</span>' in html
    reasons = html[html.index('id="reasons"'):html.index("</table>", html.index('id="reasons"'))]
    assert re.search(r"unknown campaign</a></td><td class=\"num\">2</td><td class=\"num\">66.7%", reasons)
    assert re.search(r"invalid number</a></td><td class=\"num\">1</td><td class=\"num\">33.3%", reasons)
    chart = html[html.index("<svg"):html.index("</svg>")]
    assert chart.count('class="day"') == 30
    assert ": 4 decisions, 3 blocked" in chart  # today's bar


def test_finished_days_are_counted_once_and_kept(svc, campaign, redis_client):
    from datetime import UTC, datetime, timedelta

    from dashboard import stats

    now = datetime.now(UTC)
    days = stats.daily(svc.log, redis_client, "Europe/Moscow", days=3, now=now)
    assert [d.decisions for d in days] == [0, 0, 0]
    svc.screener.screen("12", "spring", origin="test")
    again = stats.daily(svc.log, redis_client, "Europe/Moscow", days=3, now=now)
    assert [d.decisions for d in again][:2] == [0, 0]
    keys = sorted(all_keys(redis_client, "cs:dashboard:day:*"))
    ttls = [redis_client.ttl(k) for k in keys]
    assert len(keys) == 3
    assert sorted(ttls)[0] <= stats.TODAY_TTL  # today's counts are short-lived
    assert sorted(ttls)[-1] > 86400  # finished days are kept
    redis_client.delete(*[k for k in keys if redis_client.ttl(k) <= stats.TODAY_TTL])
    fresh = stats.daily(svc.log, redis_client, "Europe/Moscow", days=1, now=now + timedelta(seconds=1))
    assert fresh[-1].decisions == 1 and fresh[-1].blocks == 1


def test_overview_lists_required_registries_that_are_not_loaded(as_role):
    html = as_role("supervisor").get("/").get_data(as_text=True)
    table = html[html.index('id="registries"'):]
    assert "us-dnc" in table and "required, not loaded" in table


def test_overview_says_when_no_registry_is_loaded_and_lists_open_complaints(settings, redis_client, users):
    from tests.dashboard.conftest import login

    app = build(settings, redis_client, registry_status=lambda: [])
    svc = app.extensions["callscreen"]
    svc.complaints.file(normalize(NUMBER), calling_time(), "phone", filed_by="t")
    client = app.test_client()
    login(client, "supervisor")
    html = client.get("/").get_data(as_text=True)
    assert "No registries loaded." in html
    assert '<a class="big" id="open-complaints" href="/complaints">1</a>' in html
    assert MASKED in html


def test_overview_shows_registry_freshness_from_the_hook(settings, redis_client, users):
    from datetime import UTC, datetime

    from blocklists.registry import RegistryInfo, StatusRow
    from tests.dashboard.conftest import login

    info = RegistryInfo(id="us-dnc", country="US", kind="national", source="ftc", version="1",
                        loaded_at=datetime(2026, 11, 1, tzinfo=UTC), records=1234, checksum="x",
                        bad_lines=0, generation=1)
    rows = [StatusRow("us-dnc", info, ("us",), 31, 10.0, "stale"),
            StatusRow("gb-tps", None, ("gb",), 28, None, "missing")]
    app = build(settings, redis_client, registry_status=lambda: rows)
    client = app.test_client()
    login(client, "supervisor")
    html = client.get("/").get_data(as_text=True)
    table = html[html.index('id="registries"'):]
    assert "us-dnc" in table and "1234" in table and "out of date" in table
    assert "gb-tps" in table and "required, not loaded" in table


def test_blocked_attempts_filter_by_reason_and_campaign_and_mask_numbers(as_role, svc, campaign, consent):
    from callscreen.models import Campaign

    svc.store.put_campaign(Campaign(id="autumn", purpose="promotions", jurisdiction="RU",
                                    default_region="RU", timezone="Europe/Moscow"))
    screen(svc, "+79997654321")  # spring: no_basis
    screen(svc, "+79997654321", campaign="autumn")  # autumn: no_basis
    svc.screener.screen("12", "spring", calling_time(), origin="test")  # invalid_number
    screen(svc)  # allowed: not listed
    client = as_role("supervisor")
    html = client.get("/blocked").get_data(as_text=True)
    rows = html[html.index("<tbody>"):html.index("</tbody>")]
    assert rows.count("<tr>") == 3
    assert "7654321" not in html and "+7 999 ***-**-21" in html
    only_spring = client.get("/blocked?campaign=spring&reason=no_basis").get_data(as_text=True)
    rows = only_spring[only_spring.index("<tbody>"):only_spring.index("</tbody>")]
    assert rows.count("<tr>") == 1 and "spring" in rows
    invalid = client.get("/blocked?reason=invalid_number").get_data(as_text=True)
    assert invalid[invalid.index("<tbody>"):].count("<tr>") == 1


def test_blocked_attempts_filter_by_time_range(as_role, svc, campaign):
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    screen(svc, "+79997654321")
    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Moscow")).date()
    client = as_role("supervisor")
    html = client.get(f"/blocked?from={today}&to={today}").get_data(as_text=True)
    assert "+7 999 ***-**-21" in html
    yesterday = today - timedelta(days=1)
    html = client.get(f"/blocked?from={yesterday - timedelta(days=3)}&to={yesterday}").get_data(as_text=True)
    assert "+7 999 ***-**-21" not in html and "No decisions." in html


def test_blocked_attempts_are_paginated_by_cursor(settings, redis_client, users, campaign):
    from tests.dashboard.conftest import login

    app = build(settings, redis_client, config={"CALLSCREEN_PAGE_SIZE": 2})
    svc = app.extensions["callscreen"]
    for last in range(5):
        svc.screener.screen(f"+7999765432{last}", "spring", calling_time(), origin="test")
    client = app.test_client()
    login(client, "supervisor")
    seen = []
    url = "/blocked?reason=no_basis"
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += re.findall(r"\+7 999 \*\*\*-\*\*-2(\d)", html)
        match = re.search(r'id="next-page" href="([^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert sorted(seen) == ["0", "1", "2", "3", "4"]


def test_blocked_attempts_reject_a_malformed_filter_cleanly(as_role, campaign):
    response = as_role("supervisor").get("/blocked?from=yesterday&reason=%0d%0aevil")
    assert response.status_code == 400
    assert "not a date" in response.get_data(as_text=True)


def test_number_lookup_goes_by_keyed_hash_and_shows_everything_held(as_role, svc, campaign, consent):
    from datetime import UTC, datetime

    from callscreen.models import OptOut

    svc.store.add_opt_out(normalize(NUMBER), OptOut("autumn", "call", datetime(2026, 4, 1, tzinfo=UTC)))
    screen(svc)
    client = as_role("supervisor")
    response = post_form(client, "/lookup", "/lookup", {"number": "8 (999) 123-45-67"})
    digest = svc.vault.digest(NUMBER)
    assert response.headers["Location"] == f"/numbers/{digest}"
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert MASKED in html and "1234567" not in html
    assert "con-web-1" in html and "I agree to calls about clinic offers." in html and "203.0.113.7" in html
    assert "autumn" in html
    assert "ALLOW" in html
    assert 'id="reveal-form"' not in html  # supervisors cannot reveal


def test_lookup_rejects_a_malformed_number_with_a_message(as_role):
    client = as_role("supervisor")
    response = post_form(client, "/lookup", "/lookup", {"number": "call me\r\nmaybe"})
    assert response.status_code == 400
    assert "control characters" in response.get_data(as_text=True)


def test_compliance_reveal_shows_the_full_number_and_is_journaled(as_role, svc, consent, redis_client):
    client = as_role("compliance")
    digest = svc.vault.digest(NUMBER)
    page = f"/numbers/{digest}"
    assert 'id="reveal-form"' in client.get(page).get_data(as_text=True)
    response = post_form(client, page, f"{page}/reveal", {"reason": "complainant asked us to confirm the number"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and NUMBER in html
    entries = svc.journal.recent(5)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.user, entry.role, entry.action, entry.number_digest) == ("compliance", "compliance", "reveal", digest)
    assert entry.reason == "complainant asked us to confirm the number"
    assert redis_client.type(JOURNAL_KEY) == b"stream"
    assert NUMBER not in client.get(page).get_data(as_text=True)  # shown once, not remembered


def test_reveal_needs_a_stated_reason(as_role, svc, consent):
    client = as_role("compliance")
    page = f"/numbers/{svc.vault.digest(NUMBER)}"
    response = post_form(client, page, f"{page}/reveal", {"reason": "why"})
    assert response.status_code == 400
    assert NUMBER not in response.get_data(as_text=True)
    assert svc.journal.count() == 0


def test_supervisor_and_admin_cannot_reveal(as_role, svc, consent):
    page = f"/numbers/{svc.vault.digest(NUMBER)}"
    for role in ("supervisor", "admin"):
        client = as_role(role)
        response = post_form(client, page, f"{page}/reveal", {"reason": "just curious about this one"})
        assert response.status_code == 403
        assert NUMBER not in response.get_data(as_text=True)
    assert svc.journal.count() == 0


def test_decision_page_shows_basis_and_trace(as_role, svc, campaign, consent):
    decision = screen(svc)
    html = as_role("supervisor").get(f"/decisions/{decision.id}").get_data(as_text=True)
    assert "con-web-1" in html and "web form" in html and "web_form" not in html and MASKED in html
    assert as_role("supervisor").get("/decisions/d-missing").status_code == 404


def test_withdrawing_a_consent_makes_the_next_check_block(as_role, svc, campaign, consent):
    assert screen(svc).reason.value == "consent"
    client = as_role("supervisor")
    lookup = post_form(client, "/consents", "/consents", {"consent_id": "con-web-1"})
    assert lookup.headers["Location"] == "/consents/con-web-1"
    response = post_form(client, "/consents/con-web-1", "/consents/con-web-1/withdraw",
                         {"how": "said so on a call"})
    assert response.status_code == 302
    assert svc.store.get_consent("con-web-1").withdrawn_at is not None
    after = calling_time(days_ago=-1)  # the withdrawal counts from now on
    assert svc.screener.screen(NUMBER, "spring", after, origin="test").reason.value == "consent_withdrawn"


def test_consent_lookup_by_number_lists_its_consents(as_role, svc, consent):
    client = as_role("supervisor")
    response = post_form(client, "/consents", "/consents", {"number": NUMBER})
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "con-web-1" in html and MASKED in html


def test_access_export_holds_everything_about_the_number_and_is_journaled(as_role, svc, campaign, consent):
    screen(svc)
    svc.complaints.file(normalize(NUMBER), calling_time(), "phone", said="They called at lunch", filed_by="t")
    client = as_role("compliance")
    response = post_form(client, "/dsr", "/dsr", {"number": NUMBER, "kind": "access", "reference": "letter 2026-11-20"})
    assert response.status_code == 200 and response.mimetype == "application/json"
    data = json.loads(response.get_data(as_text=True))
    assert data["number"] == NUMBER
    assert [c["id"] for c in data["consents"]] == ["con-web-1"]
    assert data["consents"][0]["proof"]["form_text"] == "I agree to calls about clinic offers."
    assert data["complaints"][0]["said"] == "They called at lunch"
    assert len(data["suppressions"]) == 1 and len(data["decisions"]) == 1
    assert "number_sealed" not in json.dumps(data)
    entry = svc.journal.recent(1)[0]
    assert (entry.action, entry.reason) == ("access_export", "letter 2026-11-20")


def test_erasure_request_is_recorded_for_the_privacy_officer(as_role, svc, consent):
    client = as_role("compliance")
    response = post_form(client, "/dsr", "/dsr", {"number": NUMBER, "kind": "erasure", "reference": "ticket 77"})
    assert response.status_code == 302
    assert svc.journal.recent(1)[0].action == "erasure_request"
    assert "ticket 77" in client.get("/dsr").get_data(as_text=True)
    assert svc.store.get_consent("con-web-1") is not None  # nothing deleted by the dashboard


def test_admin_adds_a_user_and_a_campaign(as_role, svc):
    client = as_role("admin")
    response = post_form(client, "/admin/users", "/admin/users",
                         {"name": "olga", "password": "a long enough password", "role": "supervisor"})
    assert response.status_code == 302
    assert svc.users.get("olga").role == "supervisor"
    weak = post_form(client, "/admin/users", "/admin/users", {"name": "ivan", "password": "short", "role": "admin"})
    assert weak.status_code == 400 and svc.users.get("ivan") is None
    response = post_form(client, "/admin/campaigns", "/admin/campaigns", {
        "id": "winter", "purpose": "promotions", "jurisdiction": "RU", "default_region": "ru",
        "timezone": "Europe/Moscow", "advertising": "on"})
    assert response.status_code == 302
    assert svc.store.get_campaign("winter").default_region == "RU"
    bad = post_form(client, "/admin/campaigns", "/admin/campaigns", {
        "id": "x", "purpose": "Promo Calls", "jurisdiction": "XX", "default_region": "R", "timezone": "Mars/Base"})
    assert bad.status_code == 400 and svc.store.get_campaign("x") is None


def test_admin_disables_an_account_and_cannot_disable_itself(as_role, svc):
    client = as_role("admin")
    response = post_form(client, "/admin/users", "/admin/users/supervisor", {"action": "disable"})
    assert response.status_code == 302 and svc.users.get("supervisor").disabled
    self_disable = post_form(client, "/admin/users", "/admin/users/admin", {"action": "disable"})
    assert self_disable.status_code == 400 and not svc.users.get("admin").disabled


def test_admin_creates_and_revokes_an_api_token(as_role, svc):
    client = as_role("admin")
    html = post_form(client, "/admin/users", "/admin/tokens", {"client": "crm"}).get_data(as_text=True)
    secret = re.search(r'<code id="new-token">([^<]+)</code>', html).group(1)
    assert svc.tokens.verify(secret).client == "crm"
    token_id = svc.tokens.list()[0].id
    post_form(client, "/admin/users", f"/admin/tokens/{token_id}/revoke", {})
    assert svc.tokens.verify(secret) is None


def test_chart_axis_steps_are_whole_numbers():
    from dashboard.charts import _nice_max

    assert [_nice_max(v) for v in (0, 3, 5, 9, 21, 79, 81, 150_001)] == [4, 4, 8, 20, 40, 80, 200, 200_000]
    assert all(_nice_max(v) % 4 == 0 and _nice_max(v) >= v for v in range(0, 5000, 7))
