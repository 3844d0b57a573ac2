"""Dashboard sessions end when they should, and the login guard stops guessers without letting
them lock anyone else out; oversized bodies get 413 however they are sent."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
from werkzeug.serving import make_server

from dashboard.login_guard import PER_ACCOUNT, Backoff, LoginGuard
from dashboard.sessions import SESSION_LIFETIME, session_key
from tests.dashboard.conftest import login, post_form
from tests_support import all_keys

pytestmark = pytest.mark.also_cluster


def session_cookie(client) -> str:
    return client.get_cookie("callscreen_session").value


def client_with_cookie(app, cookie: str, user_agent: str = "Mozilla/5.0 (another browser)"):
    client = app.test_client()
    client.set_cookie("callscreen_session", cookie)
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def live_session_keys(redis_client) -> list[bytes]:
    return all_keys(redis_client, "cs:dashboard:session:*")


# --- ending sessions --------------------------------------------------------------------------

def test_logout_ends_the_session_for_a_copy_of_the_cookie_taken_before(app, as_role, redis_client):
    client = as_role("supervisor")
    captured = session_cookie(client)
    assert client_with_cookie(app, captured).get("/").status_code == 200  # the copy works while logged in
    post_form(client, "/", "/logout", {})
    assert live_session_keys(redis_client) == []
    for user_agent in ("Mozilla/5.0 (another browser)", "Werkzeug/3"):
        assert client_with_cookie(app, captured, user_agent).get("/").status_code == 302


def test_logout_ends_only_that_session(app, as_role):
    laptop, phone = as_role("supervisor"), as_role("supervisor")
    post_form(laptop, "/", "/logout", {})
    assert laptop.get("/").status_code == 302
    assert phone.get("/").status_code == 200


def test_a_role_change_ends_open_sessions(as_role, svc):
    client = as_role("supervisor")
    svc.users.set_role("supervisor", "compliance")
    assert client.get("/").status_code == 302


def test_a_password_change_from_the_admin_page_ends_the_users_sessions(as_role):
    victim, admin = as_role("supervisor"), as_role("admin")
    response = post_form(admin, "/admin/users", "/admin/users/supervisor",
                         {"action": "password", "password": "a brand new long password"})
    assert response.status_code == 302
    assert victim.get("/").status_code == 302
    assert admin.get("/").status_code == 200


def test_a_session_ends_8_hours_after_login_however_busy(as_role, redis_client):
    client = as_role("supervisor")
    [key] = live_session_keys(redis_client)
    ttl = redis_client.pttl(key)
    assert SESSION_LIFETIME.total_seconds() * 1000 - 60_000 < ttl <= SESSION_LIFETIME.total_seconds() * 1000
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert redis_client.pttl(key) <= ttl  # use does not extend it
    # the record says when it started: 8 hours on, the session is over even if the key lingers
    started = int(redis_client.hget(key, "created_at"))
    redis_client.hset(key, "created_at", started - int(SESSION_LIFETIME.total_seconds() * 1000))
    assert client.get("/").status_code == 302


def test_the_cookie_holds_only_a_session_id_whose_record_is_keyed_by_its_hash(app, as_role, redis_client):
    client = as_role("supervisor")
    with client.session_transaction() as session:
        session_id = session["_user_id"]
    assert "supervisor" not in session_id and len(session_id) >= 40
    assert redis_client.exists(session_key(session_id))
    assert not all_keys(redis_client, f"*{session_id}*")


def test_a_forged_session_id_gets_nowhere(app, users):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "supervisor:0"
        session["_fresh"] = True
    assert client.get("/").status_code == 302


# --- the login guard ----------------------------------------------------------------------------

@pytest.fixture
def guard(redis_client) -> LoginGuard:
    return LoginGuard(redis_client)


def fail(guard: LoginGuard, address: str, account: str, now: float) -> int:
    """One wrong password if admitted; returns the wait asked for (0 = tried and failed)."""
    return guard.admit(address, account, now=now).retry_after


def test_waits_grow_exponentially_after_the_free_failures(guard):
    now = 1_000_000.0
    waits = []
    for _ in range(12):
        wait = fail(guard, "203.0.113.9", "olga", now)
        waits.append(wait)
        if wait:
            now += wait
            assert fail(guard, "203.0.113.9", "olga", now) == 0
        now += 0.001
    assert waits[:3] == [0, 0, 0]
    assert waits[3:8] == [1, 2, 4, 8, 16]
    assert waits[-1] > waits[-2]


def test_successes_are_not_counted(guard):
    now = 1_000_000.0
    for _ in range(50):
        admission = guard.admit("203.0.113.9", "olga", now=now)
        assert admission.admitted
        guard.succeeded(admission)
        now += 0.01


def test_a_refused_attempt_does_not_lengthen_the_wait(guard):
    now = 1_000_000.0
    for _ in range(3):
        assert fail(guard, "203.0.113.9", "olga", now) == 0
        now += 0.001
    assert fail(guard, "203.0.113.9", "olga", now) == 1
    for _ in range(20):
        fail(guard, "203.0.113.9", "olga", now + 0.5)
    assert fail(guard, "203.0.113.9", "olga", now + 1) == 0


def test_a_guesser_cannot_lock_the_owner_out_from_another_address(guard):
    """Many addresses guessing one account as fast as allowed for 15 minutes: the owner, from
    an address of their own, never waits more than the per-account cap."""
    now, step = 1_000_000.0, 0.5
    for i in range(int(15 * 60 / step)):
        fail(guard, f"198.51.100.{i % 200}", "olga", now)
        now += step
    wait = guard.admit("192.0.2.55", "olga", now=now).retry_after
    assert wait <= PER_ACCOUNT.cap
    owner = guard.admit("192.0.2.55", "olga", now=now + wait)
    assert owner.admitted


def test_one_address_guessing_is_held_off_for_up_to_15_minutes(guard):
    now, waits = 1_000_000.0, []
    for _ in range(40):
        wait = fail(guard, "203.0.113.9", "olga", now)
        if wait:
            waits.append(wait)
        now += wait or 0.001
    assert waits[-4:] == [900] * 4  # one guess per 15 minutes, for as long as it keeps guessing
    assert fail(guard, "203.0.113.9", "someone-else", now - 1) >= 1  # the address, whatever account


def test_spraying_many_accounts_from_one_address_is_held_off(redis_client):
    guard = LoginGuard(redis_client, per_address=Backoff(free=10, base=1, cap=900))
    now = 1_000_000.0
    waits = [fail(guard, "203.0.113.9", f"user{i}", now + i * 0.01) for i in range(11)]
    assert waits[:10] == [0] * 10 and waits[10] == 1


def test_the_owner_logs_in_through_the_page_while_an_attacker_is_held_off(settings, redis_client, users):
    from tests.dashboard.conftest import build, csrf_from

    app = build(settings, redis_client, proxies=1)

    def attempt(address: str, password: str) -> int:
        client = app.test_client()
        token = csrf_from(client.get("/login").get_data(as_text=True))
        return client.post("/login", data={"username": "supervisor", "password": password, "csrf_token": token},
                           headers={"X-Forwarded-For": address}).status_code

    assert [attempt("198.51.100.7", f"guess {i}") for i in range(5)] == [401, 401, 401, 429, 429]
    assert attempt("192.0.2.1", "correct horse battery staple") == 302


def test_ten_logins_in_a_row_are_never_throttled(app, users):
    for _ in range(10):
        assert login(app.test_client(), "supervisor").status_code == 302


# --- oversized bodies -------------------------------------------------------------------------

@pytest.fixture
def live_api(app, svc):
    """The app behind a real HTTP server on a free loopback port, and a bearer token."""
    _, token = svc.tokens.add("crm")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, token
    server.shutdown()
    thread.join(5)


def post_chunked(port: int, token: str, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))
    conn.request("POST", "/api/v1/opt-outs", body=chunks, encode_chunked=True,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    try:
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_chunked_body_over_1_mib_gets_413(live_api):
    port, token = live_api
    status, body = post_chunked(port, token, b'{"number":"' + b"1" * (1024 * 1024 + 10) + b'"}')
    assert status == 413 and body["error"] == "request_entity_too_large"


def test_a_small_chunked_body_is_read_whole(live_api, svc):
    port, token = live_api
    started = time.time()
    status, body = post_chunked(port, token, json.dumps({"number": "+79991234567", "note": "x" * 400}).encode())
    assert status == 201 and body["scope"] == "company", body
    assert time.time() - started < 10
