"""Dashboard user accounts in Redis, passwords hashed with argon2id.

Invariants: a password is only ever stored as an argon2 hash; a user's ``generation``
counter is bumped by a password or role change and by disabling the account, and a session
(see :mod:`dashboard.sessions`) only lives while the generation is the one it logged in with,
so each of these ends every open session at once; a disabled user cannot log in.

Keys: ``cs:user:<name>`` (hash: password, role, disabled, locale, generation, created_at),
``cs:users`` (set of names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callscreen.cluster import write_pipeline

USERS_KEY = "cs:users"
ROLES = ("supervisor", "compliance", "admin")
LOCALES = ("en", "ru")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")

# What each role may do. Admins manage accounts and campaigns but do not see full numbers:
# revealing and exporting personal data is the compliance officer's job alone. Both may read the
# access journal (who revealed or exported what, and why).
PERMISSIONS: dict[str, frozenset[str]] = {
    "supervisor": frozenset({"view", "complaints"}),
    "compliance": frozenset({"view", "complaints", "reveal", "export", "dsr", "lift_suppression", "journal"}),
    "admin": frozenset({"view", "complaints", "users", "campaigns", "journal"}),
}


class UserError(ValueError):
    """A user name, role, password or locale is not acceptable; the message says why."""


def user_key(name: str) -> str:
    return f"cs:user:{name}"


@dataclass(frozen=True, slots=True)
class User:
    """A dashboard account (Flask-Login compatible)."""

    name: str
    role: str
    disabled: bool = False
    locale: str = ""
    generation: int = 0
    created_at: str = ""
    session_id: str = ""  # set for the user of a live session (dashboard.sessions)

    # Flask-Login protocol
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return not self.disabled

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        return self.session_id

    def can(self, permission: str) -> bool:
        return permission in PERMISSIONS.get(self.role, frozenset())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError("user name: 2-64 characters, lower-case letters, digits, '.', '_', '@', '-'")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise UserError(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"password: at most {MAX_PASSWORD} characters")
    return password


class UserStore:
    """Creates, authenticates and manages users."""

    def __init__(self, client: redis.Redis, hasher: PasswordHasher | None = None) -> None:
        self.client = client
        self.hasher = hasher or PasswordHasher()
        # verifying against this keeps unknown-user logins as slow as wrong-password ones
        self._dummy = self.hasher.hash("callscreen-no-such-user")

    def add(self, name: str, password: str, role: str, locale: str = "") -> User:
        check_name(name)
        check_password(password)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        if locale and locale not in LOCALES:
            raise UserError(f"locale must be one of {', '.join(LOCALES)}")
        created = datetime.now(UTC).isoformat()
        fields = {
            "password": self.hasher.hash(password), "role": role, "disabled": "0",
            "locale": locale, "generation": "0", "created_at": created,
        }
        if not self.client.hsetnx(user_key(name), "role", role):
            raise UserError(f"user {name!r} already exists")
        pipe = write_pipeline(self.client)
        pipe.hset(user_key(name), mapping=fields)
        pipe.sadd(USERS_KEY, name)
        pipe.execute()
        return User(name=name, role=role, locale=locale, created_at=created)

    def get(self, name: str) -> User | None:
        raw = self.client.hgetall(user_key(name))
        if not raw or b"role" not in raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        return User(
            name=name,
            role=data["role"],
            disabled=data.get("disabled") == "1",
            locale=data.get("locale", ""),
            generation=int(data.get("generation", "0")),
            created_at=data.get("created_at", ""),
        )

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right and the account is active; else None."""
        if not isinstance(name, str) or not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None
        stored = self.client.hget(user_key(name), "password") if _NAME.match(name) else None
        try:
            if stored is None:
                self.hasher.verify(self._dummy, password + "\x00")
                return None
            self.hasher.verify(_text(stored), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        user = self.get(name)
        if user is None or user.disabled:
            return None
        if self.hasher.check_needs_rehash(_text(stored)):
            self.client.hset(user_key(name), "password", self.hasher.hash(password))
        return user

    def set_password(self, name: str, password: str) -> User:
        check_password(password)
        self._require(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(user_key(name), "password", self.hasher.hash(password))
        pipe.hincrby(user_key(name), "generation", 1)
        pipe.execute()
        return self._require(name)

    def set_disabled(self, name: str, disabled: bool = True) -> User:
        self._require(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(user_key(name), "disabled", "1" if disabled else "0")
        pipe.hincrby(user_key(name), "generation", 1)
        pipe.execute()
        return self._require(name)

    def set_role(self, name: str, role: str) -> User:
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        self._require(name)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(user_key(name), "role", role)
        pipe.hincrby(user_key(name), "generation", 1)
        pipe.execute()
        return self._require(name)

    def set_locale(self, name: str, locale: str) -> User:
        if locale and locale not in LOCALES:
            raise UserError(f"locale must be one of {', '.join(LOCALES)}")
        self._require(name)
        self.client.hset(user_key(name), "locale", locale)
        return self._require(name)

    def all(self) -> list[User]:
        names = sorted(_text(n) for n in self.client.smembers(USERS_KEY))
        return [u for u in (self.get(n) for n in names) if u is not None]

    def _require(self, name: str) -> User:
        user = self.get(name)
        if user is None:
            raise UserError(f"no user {name!r}")
        return user
