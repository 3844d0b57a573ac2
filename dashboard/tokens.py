"""Bearer tokens for the intake API, one or more per client system (CRM, web form…).

Invariants: a token is shown once, when created, and stored only as the SHA-256 of its
text (the token carries 256 random bits, so a fast hash is enough: there is nothing to
brute-force); a revoked token stops working on the next request.

Keys: ``cs:apitoken:<sha256 hex>`` (hash: id, client, created_at, last_used_at),
``cs:apitokens`` (hash: token id -> sha256 hex).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from callscreen.cluster import write_pipeline

TOKENS_KEY = "cs:apitokens"
TOKEN_PREFIX = "cst_"
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TokenError(ValueError):
    """A client name is not acceptable or a token id is unknown."""


def token_key(token_hash: str) -> str:
    return f"cs:apitoken:{token_hash}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    client: str
    created_at: str
    last_used_at: str = ""


class TokenStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def add(self, client_name: str) -> tuple[ApiToken, str]:
        """Create a token for ``client_name``; returns the record and the secret (shown once)."""
        if not isinstance(client_name, str) or not _CLIENT.match(client_name):
            raise TokenError("client name: 1-64 characters, letters, digits, '.', '_', '-'")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = "tok-" + secrets.token_hex(4)
        digest = _hash(secret)
        record = ApiToken(id=token_id, client=client_name, created_at=datetime.now(UTC).isoformat())
        pipe = write_pipeline(self.client)  # the token's record, then the list's entry
        pipe.hset(token_key(digest), mapping={"id": record.id, "client": record.client,
                                              "created_at": record.created_at})
        pipe.hset(TOKENS_KEY, token_id, digest)
        pipe.execute()
        return record, secret

    def verify(self, secret: str) -> ApiToken | None:
        """The token record for a presented secret, or None."""
        if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        key = token_key(_hash(secret))
        raw = self.client.hgetall(key)
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        self.client.hset(key, "last_used_at", datetime.now(UTC).isoformat())
        return ApiToken(id=data["id"], client=data["client"], created_at=data.get("created_at", ""),
                        last_used_at=data.get("last_used_at", ""))

    def list(self) -> list[ApiToken]:
        found = []
        for token_id, digest in sorted(self.client.hgetall(TOKENS_KEY).items()):
            raw = self.client.hgetall(token_key(_text(digest)))
            if raw:
                data = {_text(k): _text(v) for k, v in raw.items()}
                found.append(ApiToken(id=_text(token_id), client=data["client"],
                                      created_at=data.get("created_at", ""),
                                      last_used_at=data.get("last_used_at", "")))
        return found

    def revoke(self, token_id: str) -> ApiToken:
        digest = self.client.hget(TOKENS_KEY, token_id)
        if digest is None:
            raise TokenError(f"no token {token_id!r}")
        record = next((t for t in self.list() if t.id == token_id), None)
        pipe = write_pipeline(self.client)
        pipe.delete(token_key(_text(digest)))
        pipe.hdel(TOKENS_KEY, token_id)
        pipe.execute()
        return record or ApiToken(id=token_id, client="", created_at="")
