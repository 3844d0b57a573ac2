from __future__ import annotations

import pytest

from callscreen.config import ConfigError, Settings
from dashboard import create_app
from dashboard.login_guard import Backoff
from tests.dashboard.conftest import FAST_HASHER, PASSWORD, build, csrf_from, login, post_form
from tests_support import all_keys

pytestmark = pytest.mark.also_cluster

PAGES_BY_PERMISSION = {
    "/": ("supervisor", "compliance", "admin"),
    "/blocked": ("supervisor", "compliance", "admin"),
    "/complaints": ("supervisor", "compliance", "admin"),
    "/complaints/new": ("supervisor", "compliance", "admin"),
    "/lookup": ("supervisor", "compliance", "admin"),
    "/consents": ("supervisor", "compliance", "admin"),
    "/dsr": ("compliance",),
    "/admin/users": ("admin",),
    "/admin/campaigns": ("admin",),
}


def test_anonymous_visitor_is_sent_to_login(app):
    client = app.test_client()
    for page in PAGES_BY_PERMISSION:
        response = client.get(page)
        assert response.status_code == 302, page
        assert response.headers["Location"].startswith("/login")


@pytest.mark.parametrize("role", ["supervisor", "compliance", "admin"])
def test_each_role_sees_its_pages_and_gets_403_elsewhere(as_role, role):
    client = as_role(role)
    for page, roles in PAGES_BY_PERMISSION.items():
        expected = 200 if role in roles else 403
        assert client.get(page).status_code == expected, (role, page)


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(app, users):
    client = app.test_client()
    response = login(client, "supervisor", "not the password at all")
    assert response.status_code == 401
    assert "Wrong user name or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302
    assert login(client, "nobody-here", PASSWORD).status_code == 401


def test_failed_logins_are_throttled_for_that_account_from_that_address(app, users):
    codes = [login(app.test_client(), "supervisor", "wrong password " + str(i)).status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    # the right password from the same address waits too (the guesser could be sending it)
    refused = login(app.test_client(), "supervisor")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many attempts" in refused.get_data(as_text=True)
    # another account is not affected
    assert login(app.test_client(), "admin").status_code == 302


def test_login_failures_are_kept_in_the_shared_store(app, users, redis_client):
    login(app.test_client(), "supervisor", "wrong password")
    assert any(key.startswith(b"cs:{login}:") for key in all_keys(redis_client, "*"))


def test_session_cookie_is_secure_httponly_and_samesite_lax(settings, redis_client, users):
    secure_app = create_app(settings, client=redis_client, password_hasher=FAST_HASHER)  # secure cookies by default
    client = secure_app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"username": "supervisor", "password": PASSWORD, "csrf_token": token})
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("callscreen_session="))
    assert "; Secure" in cookie
    assert "; HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_login_without_csrf_token_is_rejected(app, users):
    client = app.test_client()
    client.get("/login")
    response = client.post("/login", data={"username": "supervisor", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_state_changing_form_without_csrf_token_is_rejected_and_changes_nothing(as_role, svc, campaign):
    client = as_role("supervisor")
    response = client.post("/complaints/new", data={
        "number": "+79991234567", "call_at": "2026-01-10T12:00", "channel": "phone"})
    assert response.status_code == 400
    assert svc.complaints.open_count() == 0
    forged = client.post("/complaints/new", data={
        "number": "+79991234567", "call_at": "2026-01-10T12:00", "channel": "phone", "csrf_token": "forged"})
    assert forged.status_code == 400
    assert svc.complaints.open_count() == 0


def test_changing_the_password_ends_open_sessions(as_role, svc):
    client = as_role("supervisor")
    assert client.get("/").status_code == 200
    svc.users.set_password("supervisor", "another long password")
    assert client.get("/").status_code == 302


def test_disabled_account_cannot_log_in_and_loses_its_session(as_role, app, svc):
    client = as_role("supervisor")
    svc.users.set_disabled("supervisor")
    assert client.get("/").status_code == 302
    assert login(app.test_client(), "supervisor").status_code == 401


def test_login_redirect_never_leaves_the_site(app, users):
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=//evil.example/x",
                           data={"username": "supervisor", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_login_follows_a_local_next_page(app, users):
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    response = client.post("/login?next=/blocked",
                           data={"username": "supervisor", "password": PASSWORD, "csrf_token": token})
    assert response.headers["Location"] == "/blocked"


def test_logout_is_a_post_with_csrf_and_ends_the_session(as_role):
    client = as_role("supervisor")
    assert client.get("/logout").status_code == 405
    response = post_form(client, "/", "/logout", {})
    assert response.status_code == 302
    assert client.get("/").status_code == 302


def test_pages_carry_security_headers_and_are_not_cached(as_role):
    response = as_role("supervisor").get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_app_refuses_to_start_without_a_session_secret(settings, redis_client):
    from dataclasses import replace

    with pytest.raises(ConfigError, match="dashboard_secret"):
        create_app(replace(settings, dashboard_secret=b""), client=redis_client)


def test_app_refuses_to_start_without_number_keys(redis_client):
    with pytest.raises(ConfigError, match="hash_key"):
        create_app(Settings(dashboard_secret=b"s" * 32), client=redis_client, testing=True)


def test_login_limit_per_address_sees_the_client_behind_a_trusted_proxy(settings, redis_client, users):
    app = build(settings, redis_client, proxies=1,
                config={"CALLSCREEN_LOGIN_BACKOFF_PER_ADDRESS": Backoff(free=2, base=60, cap=60)})

    def attempt(address: str, name: str) -> int:
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        return client.post("/login", data={"username": name, "password": "x", "csrf_token": token},
                           headers={"X-Forwarded-For": address}).status_code

    assert [attempt("198.51.100.1", name) for name in ("a1", "a2", "a3")] == [401, 401, 429]
    assert attempt("198.51.100.2", "a3") == 401
