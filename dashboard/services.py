"""The core objects one dashboard app works with, built once per app from its Settings.

Views reach them through :func:`services`; tests pass their own client (and, if they
want, screener or decision log) to :func:`dashboard.app.create_app`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from argon2 import PasswordHasher
from flask import current_app

from callscreen.complaints import ComplaintBook
from callscreen.config import Settings
from callscreen.crypto import NumberVault
from callscreen.journal import AccessJournal
from callscreen.rotation import build_vault
from callscreen.store import Store, connect
from dashboard.sessions import SessionStore
from dashboard.tokens import TokenStore
from dashboard.users import UserStore

EXTENSION = "callscreen"


@dataclass
class Services:
    settings: Settings
    client: redis.Redis
    vault: NumberVault
    store: Store
    users: UserStore
    sessions: SessionStore
    tokens: TokenStore
    journal: AccessJournal
    complaints: ComplaintBook
    log: Any  # callscreen.decision_log.DecisionLog
    screener: Any  # callscreen.screening.Screener
    registry_status: Callable[[], list[Any]] | None


def build_services(
    settings: Settings,
    client: redis.Redis | None = None,
    *,
    decision_log: Any = None,
    screener: Any = None,
    registry_status: Callable[[], list[Any]] | None = None,
    password_hasher: PasswordHasher | None = None,
) -> Services:
    if client is None:
        if not settings.redis_url:
            raise RuntimeError("the dashboard needs CALLSCREEN_REDIS_URL (the store the screener uses)")
        client = connect(settings.redis_url, timeout=30)
    vault = build_vault(settings, client)
    store = Store(client, vault)
    if screener is None:
        from callscreen.screening import build_screener

        screener = build_screener(settings, client, registries=_default_registries(settings, client))
    if decision_log is None:
        decision_log = screener.log
    users = UserStore(client, password_hasher)
    return Services(
        settings=settings,
        client=client,
        vault=vault,
        store=store,
        users=users,
        sessions=SessionStore(client, users),
        tokens=TokenStore(client),
        journal=AccessJournal(client, settings.keyring("log_key")),
        complaints=ComplaintBook(store, decision_log),
        log=decision_log,
        screener=screener,
        registry_status=registry_status,
    )


def _default_registries(settings: Settings, client: redis.Redis) -> Any:
    """The do-not-call registry lookup from :mod:`blocklists` (refreshed lazily on use)."""
    try:
        from blocklists.lookup import registry_lookup_for
    except ImportError:
        return None
    return registry_lookup_for(client)


def services() -> Services:
    return current_app.extensions[EXTENSION]
