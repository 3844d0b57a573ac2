"""Every dashboard route is behind login, and every state-changing one refuses the wrong role."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from callscreen.numbers import normalize
from tests.dashboard.conftest import NUMBER, calling_time, post_form

PUBLIC = {"auth.login", "auth.logout", "auth.language", "static"}


def test_every_page_needs_a_login(app):
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC or rule.endpoint.startswith("api."):
            continue
        url = re.sub(r"<[^>]+>", "x", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method)
            if method == "GET":
                assert response.status_code == 302 and "/login" in response.headers["Location"], url
            else:  # refused before the view runs: no CSRF token, and no session either
                assert response.status_code in (302, 400), (method, url)
            checked += 1
    assert checked >= 25


@pytest.mark.parametrize(("role", "url", "data"), [
    ("supervisor", "/dsr", {"number": NUMBER, "kind": "access", "reference": "letter"}),
    ("admin", "/dsr", {"number": NUMBER, "kind": "access", "reference": "letter"}),
    ("supervisor", "/admin/users", {"name": "eve", "password": "a long enough password", "role": "admin"}),
    ("compliance", "/admin/users", {"name": "eve", "password": "a long enough password", "role": "admin"}),
    ("supervisor", "/admin/users/admin", {"action": "disable"}),
    ("compliance", "/admin/tokens", {"client": "rogue"}),
    ("supervisor", "/admin/campaigns", {"id": "x", "purpose": "promotions", "jurisdiction": "RU",
                                        "default_region": "RU", "timezone": "Europe/Moscow"}),
])
def test_state_changing_routes_refuse_the_wrong_role(as_role, svc, role, url, data):
    client = as_role(role)
    response = post_form(client, "/", url, data)
    assert response.status_code == 403
    assert svc.users.get("eve") is None and not svc.users.get("admin").disabled
    assert svc.tokens.list() == [] and svc.store.get_campaign("x") is None
    assert svc.journal.count() == 0


def test_admin_changes_a_role_and_a_password(as_role, app, svc):
    client = as_role("admin")
    assert post_form(client, "/admin/users", "/admin/users/supervisor",
                     {"action": "role", "role": "compliance"}).status_code == 302
    assert svc.users.get("supervisor").role == "compliance"
    assert post_form(client, "/admin/users", "/admin/users/supervisor",
                     {"action": "password", "password": "brand new long password"}).status_code == 302
    assert svc.users.authenticate("supervisor", "brand new long password") is not None
    short = post_form(client, "/admin/users", "/admin/users/supervisor", {"action": "password", "password": "x"})
    assert short.status_code == 400
    unknown = post_form(client, "/admin/users", "/admin/users/ghost", {"action": "disable"})
    assert unknown.status_code == 400


def test_relinking_finds_decisions_logged_after_the_complaint(as_role, svc, campaign, consent):
    call = calling_time()
    complaint = svc.complaints.file(normalize(NUMBER), call, "phone", filed_by="t")
    assert complaint.linked_decisions == ()
    # the call centre's log caught up later (e.g. a decision replicated late)
    decision = svc.screener.screen(NUMBER, "spring", call - timedelta(minutes=1), origin="test")
    client = as_role("supervisor")
    page = f"/complaints/{complaint.id}"
    assert post_form(client, page, f"{page}/relink", {}).status_code == 302
    assert svc.complaints.get(complaint.id).linked_decisions == (decision.id,)
