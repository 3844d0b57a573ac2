"""Every route answers each principal — anonymous or a role — exactly as its role allows."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from callscreen.numbers import normalize
from tests.dashboard.conftest import NUMBER, calling_time, csrf_from, login, post_form

PRINCIPALS = ("anonymous", "supervisor", "compliance", "admin")
A, S, C, D = PRINCIPALS
# What every (endpoint, method) of the URL map answers to a request carrying a valid CSRF token
# and nothing else, per principal: (anonymous, supervisor, compliance, admin). Path arguments
# name things that exist. 302 for the anonymous client is the way to /login; 401 is the API's
# bearer-token refusal; 403 a role without the permission; 400 the view ran and refused the empty
# form; 200 a page; 302 for a role a completed action. A new route fails the test until it is here.
EXPECTED: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("overview.index", "GET"): (302, 200, 200, 200),
    ("admin.campaigns", "GET"): (302, 403, 403, 200),
    ("admin.campaigns", "POST"): (302, 403, 403, 400),
    ("admin.add_token", "POST"): (302, 403, 403, 400),
    ("admin.revoke_token", "POST"): (302, 403, 403, 302),
    ("admin.users", "GET"): (302, 403, 403, 200),
    ("admin.add_user", "POST"): (302, 403, 403, 400),
    ("admin.change_user", "POST"): (302, 403, 403, 400),
    ("api.add_complaint", "POST"): (401, 401, 401, 401),
    ("api.add_consent", "POST"): (401, 401, 401, 401),
    ("api.get_decision", "GET"): (401, 401, 401, 401),
    ("api.add_objection", "POST"): (401, 401, 401, 401),
    ("api.openapi", "GET"): (200, 200, 200, 200),
    ("health.healthz", "GET"): (200, 200, 200, 200),
    ("health.readyz", "GET"): (200, 200, 200, 200),  # store up, no jurisdiction needing a registry
    ("health.metrics", "GET"): (200, 200, 200, 200),
    ("api.add_opt_out", "POST"): (401, 401, 401, 401),
    ("api.scrub", "POST"): (401, 401, 401, 401),
    ("api.add_withdrawal", "POST"): (401, 401, 401, 401),
    ("blocked.index", "GET"): (302, 200, 200, 200),
    ("complaints.index", "GET"): (302, 200, 200, 200),
    ("complaints.show", "GET"): (302, 200, 200, 200),
    ("complaints.dossier", "POST"): (302, 403, 200, 403),
    ("complaints.lift", "POST"): (302, 403, 400, 403),
    ("complaints.relink", "POST"): (302, 302, 302, 302),
    ("complaints.move", "POST"): (302, 400, 400, 400),
    ("complaints.new", "GET"): (302, 200, 200, 200),
    ("complaints.new", "POST"): (302, 400, 400, 400),
    ("consents.index", "GET"): (302, 200, 200, 200),
    ("consents.index", "POST"): (302, 400, 400, 400),
    ("consents.show", "GET"): (302, 200, 200, 200),
    ("consents.withdraw", "POST"): (302, 400, 400, 400),
    ("consents.for_number", "GET"): (302, 200, 200, 200),
    ("lookup.decision", "GET"): (302, 200, 200, 200),
    ("lookup.index", "GET"): (302, 200, 200, 200),
    ("lookup.index", "POST"): (302, 400, 400, 400),
    ("lookup.number", "GET"): (302, 200, 200, 200),
    ("lookup.reveal", "POST"): (302, 403, 400, 403),
    ("dsr.index", "GET"): (302, 403, 200, 403),
    ("dsr.index", "POST"): (302, 403, 400, 403),
    ("dsr.erase", "POST"): (302, 403, 404, 403),  # no such open request
    ("admin.journal", "GET"): (302, 403, 200, 200),
    ("auth.language", "POST"): (400, 400, 400, 400),  # no locale chosen
    ("auth.login", "GET"): (200, 302, 302, 302),
    ("auth.login", "POST"): (401, 401, 401, 401),  # no user name or password
    ("static", "GET"): (200, 200, 200, 200),
    ("auth.logout", "POST"): (302, 302, 302, 302),  # sent last: it ends the sessions
}


@pytest.fixture
def principals(app, users):
    """A client per principal (each from its own address, as login attempts are limited per
    address), each with the CSRF token of its own session."""
    clients = {}
    for n, principal in enumerate(PRINCIPALS):
        clients[principal] = app.test_client()
        clients[principal].environ_base["REMOTE_ADDR"] = f"192.0.2.{n + 1}"
    anonymous = clients[A]
    found = {A: (anonymous, csrf_from(anonymous.get("/login").get_data(as_text=True)))}
    for role in PRINCIPALS[1:]:
        client = clients[role]
        assert login(client, role).status_code == 302
        found[role] = (client, csrf_from(client.get("/").get_data(as_text=True)))
    return found


def _url(rule, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values[m.group(1)], rule.rule)


def test_every_route_answers_each_principal_exactly_as_its_role_allows(app, svc, principals, campaign, consent):
    complaint = svc.complaints.file(normalize(NUMBER), calling_time(), "phone", filed_by="t")
    decision = svc.screener.screen(NUMBER, "spring", calling_time(), origin="test")
    existing = {"complaint_id": complaint.id, "consent_id": consent.id, "decision_id": decision.id,
                "digest": svc.vault.digest(NUMBER), "name": "supervisor", "token_id": svc.tokens.add("crm")[0].id,
                "filename": "style.css", "request_id": "dsr-0-00000000"}
    unknown = {"complaint_id": "cmp-0-00000000", "consent_id": "nope", "decision_id": "d-0-00000000",
               "digest": "0" * 32, "name": "ghost", "token_id": "tok-00000000", "filename": "style.css",
               "request_id": "dsr-0-00000000"}
    rules = sorted(app.url_map.iter_rules(), key=lambda r: (r.endpoint == "auth.logout", r.rule))
    seen = set()
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            key = (rule.endpoint, method)
            assert key in EXPECTED, f"{method} {rule.rule} is not in the route matrix"
            seen.add(key)
            for principal, expected in zip(PRINCIPALS, EXPECTED[key], strict=True):
                client, token = principals[principal]
                refused = principal == A or expected in (401, 403)  # before the view: ids must not matter
                for values in ((unknown, existing) if refused and rule.arguments else (existing,)):
                    url = _url(rule, values)
                    response = client.open(url, method=method, data=None if method == "GET" else {"csrf_token": token})
                    assert response.status_code == expected, (principal, method, url, response.status_code)
                    if principal == A and expected == 302:
                        assert urlsplit(response.headers["Location"]).path == "/login", (method, url)
    assert seen == set(EXPECTED)


def test_a_post_without_a_csrf_token_is_refused_for_every_principal(app, principals):
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or rule.endpoint.startswith("api."):
            continue
        for principal, (client, _token) in principals.items():
            response = client.post(re.sub(r"<[^>]+>", "x", rule.rule), data={})
            assert response.status_code == 400, (principal, rule.rule)


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
