"""Server-side dashboard sessions: a session lives exactly as long as its record in the store.

Invariants: the signed cookie holds only a random session id; the record it names, keyed by
the id's SHA-256, holds the account and the account's generation at login and expires
``SESSION_LIFETIME`` after login whatever the activity (an absolute lifetime, never extended).
Every request looks the record up, so logging out (which deletes it) ends that session
everywhere at once, even for a copy of the cookie taken before; a password or role change or
disabling the account bumps the account's generation, which ends all of its sessions.

Keys: ``cs:dashboard:session:<sha256 hex>`` (hash: user, generation, created_at in epoch ms).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from datetime import timedelta

import redis

from dashboard.users import User, UserStore

SESSION_LIFETIME = timedelta(hours=8)


def session_key(session_id: str) -> str:
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"cs:dashboard:session:{digest}"


class SessionStore:
    """Starts, resumes and ends dashboard sessions."""

    def __init__(self, client: redis.Redis, users: UserStore, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self.client = client
        self.users = users
        self.lifetime = lifetime

    def start(self, user: User) -> User:
        """A new session for ``user`` (just authenticated); returns the user carrying its id."""
        session_id = secrets.token_urlsafe(32)
        key = session_key(session_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, mapping={"user": user.name, "generation": str(user.generation),
                                "created_at": str(_now_ms())})
        pipe.pexpire(key, int(self.lifetime.total_seconds() * 1000))
        pipe.execute()
        return dataclasses.replace(user, session_id=session_id)

    def resume(self, session_id: str) -> User | None:
        """The user of a live session: the record exists, is younger than the lifetime, and the
        account is active and still at the generation it logged in with; else None."""
        if not isinstance(session_id, str) or not 20 <= len(session_id) <= 100:
            return None
        raw = self.client.hgetall(session_key(session_id))
        data = {_text(k): _text(v) for k, v in raw.items()}
        created = data.get("created_at", "")
        if not created.isdigit() or _now_ms() - int(created) >= self.lifetime.total_seconds() * 1000:
            return None
        user = self.users.get(data.get("user", "")) if data.get("user") else None
        if user is None or user.disabled or str(user.generation) != data.get("generation"):
            return None
        return dataclasses.replace(user, session_id=session_id)

    def end(self, session_id: str) -> None:
        if session_id:
            self.client.delete(session_key(session_id))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
