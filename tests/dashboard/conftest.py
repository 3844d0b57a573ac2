"""Fixtures for the dashboard: the app on the real embedded store, users of each role, a
logged-in test client per role, a campaign, and helpers that read CSRF tokens from pages."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from callscreen.models import Campaign, Consent, LegalBasis, Proof
from callscreen.numbers import normalize
from dashboard import create_app
from dashboard.services import Services

PASSWORD = "correct horse battery staple"
# Real argon2id, with small cost parameters so the suite stays quick.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
ROLES = ("supervisor", "compliance", "admin")
NUMBER = "+79991234567"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


def build(settings: Any, client: Any, **kwargs: Any) -> Flask:
    """The app as tests use it: plain-http cookies, quick argon2 parameters."""
    options: dict[str, Any] = {"password_hasher": FAST_HASHER, "secure_cookies": False, **kwargs}
    return create_app(settings, client=client, **options)


@pytest.fixture
def app(settings: Any, redis_client: Any) -> Flask:
    return build(settings, redis_client)


@pytest.fixture
def svc(app: Flask) -> Services:
    return app.extensions["callscreen"]


@pytest.fixture
def users(svc: Services) -> dict[str, str]:
    """One account per role, named after the role."""
    for role in ROLES:
        svc.users.add(role, PASSWORD, role)
    return {role: role for role in ROLES}


def login(client: FlaskClient, name: str, password: str = PASSWORD) -> Any:
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token})


@pytest.fixture
def as_role(app: Flask, users: dict[str, str]) -> Callable[[str], FlaskClient]:
    """A fresh logged-in client for a role."""

    def make(role: str) -> FlaskClient:
        client = app.test_client()
        response = login(client, role)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return make


def post_form(client: FlaskClient, page: str, url: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """Submit a form the way a browser does: read the CSRF token from ``page`` first."""
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token}, **kwargs)


@pytest.fixture
def campaign(svc: Services) -> Campaign:
    return svc.store.put_campaign(Campaign(
        id="spring", purpose="promotions", jurisdiction="RU", default_region="RU",
        timezone="Europe/Moscow", name="Spring check-ups",
    ))


def calling_time(days_ago: int = 0) -> datetime:
    """07:30 UTC: inside Russian calling hours on any day in every zone a Russian mobile
    number may be in (09:30 in Kaliningrad, 19:30 in Kamchatka)."""
    today = datetime.now(UTC).date() - timedelta(days=days_ago)
    return datetime(today.year, today.month, today.day, 7, 30, tzinfo=UTC)


@pytest.fixture
def consent(svc: Services) -> Consent:
    return svc.store.add_consent(normalize(NUMBER), Consent(
        id="con-web-1", number_digest="", purposes=("promotions",), basis=LegalBasis.CONSENT,
        source="web_form", captured_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
        proof=Proof(ip="203.0.113.7", form_text="I agree to calls about clinic offers.",
                    form_version="signup-v3", page_url="https://clinic.example/signup"),
        verified_at=datetime(2026, 3, 1, 10, 5, tzinfo=UTC),
    ))
