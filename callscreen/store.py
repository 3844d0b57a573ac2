"""Redis adapter: the key schema, the one-round-trip fact query, and record keeping.

The key schema is documented in ``docs/store.md``. Every per-number key embeds the
number's keyed digest in a hash tag (``cs:n:{<digest>}:…``) so all of one number's keys
live in one Redis Cluster slot. No phone number is written in clear: a number that must
be shown again is stored sealed (AES-GCM) in its contact hash.

Reads that a decision needs are *planned* as plain command tuples (:class:`FactQuery`)
and executed by whichever client the caller has, sync or asyncio, in one pipeline.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis

from callscreen import codec
from callscreen.crypto import NumberVault
from callscreen.models import (
    Campaign,
    Consent,
    Contact,
    Facts,
    Objection,
    OptOut,
    RegistryStatus,
    Suppression,
)
from callscreen.numbers import PhoneNumber

PREFIX = "cs:"
COMPANY_WIDE = "*"
ATTEMPT_HISTORY = timedelta(days=8)


class StoreError(RuntimeError):
    """The store could not answer; callers fail closed."""


# --- key schema -----------------------------------------------------------------------

def number_key(digest: str, kind: str) -> str:
    """``cs:n:{digest}:kind`` — kinds: consents, optouts, objections, suppressions,
    attempts, decisions, contact."""
    return f"{PREFIX}n:{{{digest}}}:{kind}"


def consent_pointer_key(consent_id: str) -> str:
    return f"{PREFIX}consent:{consent_id}"


def campaign_key(campaign_id: str) -> str:
    return f"{PREFIX}campaign:{campaign_id}"


CAMPAIGNS_KEY = PREFIX + "campaigns"


def new_id(prefix: str) -> str:
    """Sortable, unguessable id: ``<prefix>-<ms since epoch in base36>-<8 hex>``."""
    return f"{prefix}-{_base36(int(time.time() * 1000))}-{secrets.token_hex(4)}"


def _base36(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while value:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
    return out or "0"


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- connections -----------------------------------------------------------------------

def connect(url: str, *, asyncio: bool = False, timeout: float = 2.0) -> Any:
    """A client with bounded timeouts and a single quick retry: screening must fail closed
    in milliseconds, not after redis-py's default back-off."""
    from redis.backoff import ConstantBackoff
    from redis.retry import Retry

    options = dict(socket_timeout=timeout, socket_connect_timeout=min(timeout, 1.0),
                   retry=Retry(ConstantBackoff(0.01), 1), health_check_interval=30)
    if asyncio:
        from redis.asyncio import Redis as AsyncRedis
        from redis.asyncio.retry import Retry as AsyncRetry

        options["retry"] = AsyncRetry(ConstantBackoff(0.01), 1)
        return AsyncRedis.from_url(url, **options)
    return redis.Redis.from_url(url, **options)


# --- server-side scripts ------------------------------------------------------------------

SCRIPTS: dict[str, str] = {}  # sha1 -> body of every script the planned commands may call


def script(body: str) -> str:
    """Register a Lua script; returns the sha1 that ``EVALSHA`` commands name."""
    sha = hashlib.sha1(body.encode()).hexdigest()
    SCRIPTS[sha] = body
    return sha


# One command instead of six: every per-number key lives in the same slot, so this is
# cluster-safe. KEYS: consents, optouts, objections, suppressions, contact, attempts.
FACTS_SHA = script("""
local out = {}
for i = 1, 5 do out[i] = redis.call('HGETALL', KEYS[i]) end
out[6] = redis.call('ZRANGEBYSCORE', KEYS[6], ARGV[1], '+inf', 'WITHSCORES')
return out
""")


# Delete hash fields only if they still hold the value that was read (retention must not delete a
# record that changed meanwhile, e.g. a consent confirmed while the job looked at it).
# KEYS[1]: the hash. ARGV: field, expected value, field, expected value, ... Returns fields deleted.
FORGET_IF_UNCHANGED = """
local gone = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    gone = gone + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return gone
"""


# --- executing planned commands --------------------------------------------------------

Command = tuple[Any, ...]


def _missing_scripts(commands: Sequence[Command], replies: list[Any]) -> list[int]:
    return [i for i, reply in enumerate(replies)
            if isinstance(reply, redis.exceptions.NoScriptError) and commands[i][1] in SCRIPTS]


def run_pipeline(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one round trip; a failed command's reply is its exception.

    After a server restart the scripts are gone: the commands that failed with NOSCRIPT are
    sent again, in order, once the scripts are loaded (a second round trip, once)."""
    try:
        replies = _execute(client, commands)
        missing = _missing_scripts(commands, replies)
        if missing:
            for sha in {commands[i][1] for i in missing}:
                client.script_load(SCRIPTS[sha])
            for index, reply in zip(missing, _execute(client, [commands[i] for i in missing]), strict=True):
                replies[index] = reply
        return replies
    except redis.RedisError as exc:
        raise StoreError(f"store unavailable: {exc}") from exc


def _execute(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute(raise_on_error=False)


async def run_pipeline_async(client: Any, commands: Sequence[Command]) -> list[Any]:
    """Asyncio twin of :func:`run_pipeline` for ``redis.asyncio`` clients."""
    try:
        replies = await _execute_async(client, commands)
        missing = _missing_scripts(commands, replies)
        if missing:
            for sha in {commands[i][1] for i in missing}:
                await client.script_load(SCRIPTS[sha])
            again = await _execute_async(client, [commands[i] for i in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        return replies
    except redis.RedisError as exc:
        raise StoreError(f"store unavailable: {exc}") from exc


async def _execute_async(client: Any, commands: Sequence[Command]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return await pipe.execute(raise_on_error=False)


def _check(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise StoreError(f"store command failed: {reply}")
    return reply


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_values(reply: dict[Any, Any]) -> list[dict[str, Any]]:
    return [json.loads(_text(v)) for v in reply.values()]


# --- registries hook -------------------------------------------------------------------

class RegistryLookup(Protocol):
    """Adds do-not-call registry lookups to the decision's single round trip."""

    def commands(self, number: PhoneNumber, registry_ids: Sequence[str]) -> list[Command]: ...

    def parse(
        self, number: PhoneNumber, registry_ids: Sequence[str], replies: Sequence[Any]
    ) -> tuple[RegistryStatus, ...]: ...


class NoRegistries:
    """Lookup used when no registry is loaded: every required registry reads as never loaded,
    so a jurisdiction that requires one blocks with ``registry_stale`` (fail closed)."""

    def commands(self, number: PhoneNumber, registry_ids: Sequence[str]) -> list[Command]:
        return []

    def parse(
        self, number: PhoneNumber, registry_ids: Sequence[str], replies: Sequence[Any]
    ) -> tuple[RegistryStatus, ...]:
        return tuple(RegistryStatus(rid, listed=False, loaded_at=None) for rid in registry_ids)


# --- the fact query --------------------------------------------------------------------

class FactQuery:
    """Plans and parses the one pipelined round trip that gathers a number's facts."""

    KINDS = ("consents", "optouts", "objections", "suppressions", "contact")

    def __init__(
        self,
        number: PhoneNumber,
        digest: str,
        at: datetime,
        registry_ids: Sequence[str] = (),
        registries: RegistryLookup | None = None,
    ) -> None:
        self.number = number
        self.digest = digest
        self.at = at
        self.registry_ids = tuple(registry_ids)
        self.registries = registries or NoRegistries()
        self._registry_commands = self.registries.commands(number, self.registry_ids)

    def commands(self) -> list[Command]:
        keys = [number_key(self.digest, kind) for kind in (*self.KINDS, "attempts")]
        facts: Command = ("EVALSHA", FACTS_SHA, len(keys), *keys, ms(self.at - ATTEMPT_HISTORY))
        return [facts, *self._registry_commands]

    def parse(self, replies: Sequence[Any]) -> Facts:
        gathered = _check(replies[0])
        consents, optouts, objections, suppressions, contact = (_as_hash(r) for r in gathered[:5])
        attempts = gathered[5]
        contact_map = {_text(k): _text(v) for k, v in contact.items()}
        contact_map.pop("sealed", None)
        attempt_times = tuple(
            datetime.fromtimestamp(float(score) / 1000, UTC) for score in _as_hash(attempts).values()
        )
        return Facts(
            consents=tuple(codec.consent_from(d) for d in _json_values(consents)),
            opt_outs=tuple(codec.opt_out_from(d) for d in _json_values(optouts)),
            objections=tuple(codec.objection_from(d) for d in _json_values(objections)),
            suppressions=tuple(codec.suppression_from(d) for d in _json_values(suppressions)),
            registries=self.registries.parse(self.number, self.registry_ids, replies[1:]),
            attempts=tuple(sorted(attempt_times)),
            contact=codec.contact_from(contact_map),
        )


def _as_hash(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


# --- record keeping ----------------------------------------------------------------------

def _contact_fields(contact: Contact) -> dict[str, str]:
    """The contact hash fields worth writing (empty values leave what is stored)."""
    return {k: v for k, v in (("timezone", contact.timezone), ("subdivision", contact.subdivision)) if v}


class Store:
    """Synchronous record keeping: campaigns, consents, opt-outs, objections, suppressions.

    Used by the CLI, the dashboard and imports. The decision path uses :class:`FactQuery`.
    """

    def __init__(self, client: redis.Redis, vault: NumberVault) -> None:
        self.client = client
        self.vault = vault

    # campaigns
    def put_campaign(self, campaign: Campaign) -> Campaign:
        if campaign.created_at is None:
            campaign = replace(campaign, created_at=datetime.now(UTC))
        pipe = self.client.pipeline(transaction=True)
        pipe.set(campaign_key(campaign.id), codec.dumps(campaign))
        pipe.sadd(CAMPAIGNS_KEY, campaign.id)
        pipe.execute()
        return campaign

    def get_campaign(self, campaign_id: str) -> Campaign | None:
        raw = self.client.get(campaign_key(campaign_id))
        return None if raw is None else codec.campaign_from(json.loads(raw))

    def list_campaigns(self) -> list[Campaign]:
        ids = sorted(_text(i) for i in self.client.smembers(CAMPAIGNS_KEY))
        if not ids:
            return []
        raws = self.client.mget([campaign_key(i) for i in ids])
        return [codec.campaign_from(json.loads(r)) for r in raws if r is not None]

    # the number itself, sealed
    def remember_number(self, number: PhoneNumber, pipe: Any = None) -> str:
        """Store the sealed number beside its digest (so it can be revealed later); returns digest."""
        digest = self.vault.digest(number.e164)
        target = pipe if pipe is not None else self.client
        target.hsetnx(number_key(digest, "contact"), "sealed", self.vault.seal(number.e164))
        return digest

    def reveal(self, digest: str) -> str | None:
        """The clear number for ``digest``; callers must journal why (see dashboard)."""
        sealed = self.client.hget(number_key(digest, "contact"), "sealed")
        return None if sealed is None else self.vault.open(_text(sealed), digest)

    def set_contact(self, number: PhoneNumber, timezone: str = "", subdivision: str = "") -> None:
        digest = self.remember_number(number)
        mapping = _contact_fields(Contact(timezone, subdivision))
        if mapping:
            self.client.hset(number_key(digest, "contact"), mapping=mapping)

    # consents
    def add_consent(self, number: PhoneNumber, consent: Consent, contact: Contact | None = None) -> Consent:
        """Record a consent (or EBR / legitimate-interest basis); an existing id is replaced."""
        return self.add_consents([(number, consent, contact)])[0]

    def add_consents(self, items: Sequence[tuple[PhoneNumber, Consent, Contact | None]]) -> list[Consent]:
        """Record many consents in one round trip (imports)."""
        pipe = self.client.pipeline(transaction=True)
        saved = []
        for number, consent, contact in items:
            digest = self.vault.digest(number.e164)
            consent = replace(
                consent,
                number_digest=digest,
                number_sealed=self.vault.seal(number.e164),
                recorded_at=consent.recorded_at or datetime.now(UTC),
            )
            self.remember_number(number, pipe)
            pipe.hset(number_key(digest, "consents"), consent.id, codec.dumps(consent))
            pipe.set(consent_pointer_key(consent.id), digest)
            mapping = _contact_fields(contact) if contact else {}
            if mapping:
                pipe.hset(number_key(digest, "contact"), mapping=mapping)
            saved.append(consent)
        pipe.execute()
        return saved

    def get_consent(self, consent_id: str) -> Consent | None:
        digest = self.client.get(consent_pointer_key(consent_id))
        if digest is None:
            return None
        raw = self.client.hget(number_key(_text(digest), "consents"), consent_id)
        return None if raw is None else codec.consent_from(json.loads(raw))

    def consents_for(self, digest: str) -> list[Consent]:
        raw = self.client.hgetall(number_key(digest, "consents"))
        found = [codec.consent_from(json.loads(v)) for v in raw.values()]
        return sorted(found, key=lambda c: c.captured_at)

    def withdraw_consent(self, consent_id: str, how: str, at: datetime | None = None) -> Consent:
        """Mark a consent withdrawn; the record stays as evidence. Raises KeyError if unknown."""
        consent = self.get_consent(consent_id)
        if consent is None:
            raise KeyError(consent_id)
        if consent.withdrawn_at is not None:
            return consent
        withdrawn = replace(consent, withdrawn_at=at or datetime.now(UTC), withdrawn_how=how)
        self.client.hset(number_key(consent.number_digest, "consents"), consent_id, codec.dumps(withdrawn))
        return withdrawn

    def forget_consents(self, digest: str, consents: Sequence[tuple[str, bytes | str]]) -> int:
        """Delete consent records (retention) that still read as ``(id, raw JSON)``; returns how
        many went. Their pointers go with them."""
        if not consents:
            return 0
        flat = [part for consent_id, raw in consents for part in (consent_id, raw)]
        gone = int(self.client.eval(FORGET_IF_UNCHANGED, 1, number_key(digest, "consents"), *flat))
        for consent_id, _raw in consents:
            pointer = self.client.get(consent_pointer_key(consent_id))
            if pointer is not None and _text(pointer) == digest and not self.client.hexists(
                    number_key(digest, "consents"), consent_id):
                self.client.delete(consent_pointer_key(consent_id))
        return gone

    def withdraw_all(self, number: PhoneNumber, how: str, purpose: str | None = None) -> list[Consent]:
        """Withdrawal as easy as consent: withdraw every active consent of a number (for a purpose)."""
        digest = self.vault.digest(number.e164)
        return [
            self.withdraw_consent(c.id, how)
            for c in self.consents_for(digest)
            if c.withdrawn_at is None and (purpose is None or c.covers(purpose))
        ]

    # opt-outs, objections, suppressions
    def add_opt_out(self, number: PhoneNumber, opt_out: OptOut) -> str:
        digest = self.remember_number(number)
        scope = opt_out.campaign_id or COMPANY_WIDE
        self.client.hset(number_key(digest, "optouts"), scope, codec.dumps(opt_out))
        return digest

    def remove_opt_out(self, number: PhoneNumber, campaign_id: str | None) -> bool:
        digest = self.vault.digest(number.e164)
        return bool(self.client.hdel(number_key(digest, "optouts"), campaign_id or COMPANY_WIDE))

    def opt_outs_for(self, digest: str) -> list[OptOut]:
        raw = self.client.hgetall(number_key(digest, "optouts"))
        return [codec.opt_out_from(json.loads(v)) for v in raw.values()]

    def add_objection(self, number: PhoneNumber, objection: Objection) -> str:
        digest = self.remember_number(number)
        self.client.hset(number_key(digest, "objections"), objection.scope, codec.dumps(objection))
        return digest

    def suppress(self, digest: str, suppression: Suppression) -> None:
        self.client.hset(
            number_key(digest, "suppressions"), suppression.complaint_id, codec.dumps(suppression)
        )

    def lift_suppression(self, digest: str, complaint_id: str) -> bool:
        return bool(self.client.hdel(number_key(digest, "suppressions"), complaint_id))

    def facts(self, number: PhoneNumber, at: datetime, registry_ids: Sequence[str] = (),
              registries: RegistryLookup | None = None) -> Facts:
        query = FactQuery(number, self.vault.digest(number.e164), at, registry_ids, registries)
        return query.parse(run_pipeline(self.client, query.commands()))
