"""Redis adapter: the key schema, the one-round-trip fact query, and record keeping.

The key schema is documented in ``docs/store.md``. Every per-number key embeds the
number's keyed digest in a hash tag (``cs:n:{<digest>}:…``) so all of one number's keys
live in one Redis Cluster slot. No phone number is written in clear: a number that must
be shown again is stored sealed (AES-GCM) in its contact hash.

Reads that a decision needs are *planned* as plain command tuples (:class:`FactQuery`)
and executed by whichever client the caller has, sync or asyncio, in one pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis

try:
    from hiredis import pack_command as _pack_command
except ImportError:  # hiredis is a dependency; older builds lack the packer
    _pack_command = None

from callscreen import codec
from callscreen.cluster import is_cluster_client, write_pipeline
from callscreen.crypto import NumberVault, SealError, is_subject_sealed
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


# What a store client raises when the store cannot answer: redis-py's cluster client raises
# RedisClusterException (not a RedisError) when no node answers or a slot has no master.
STORE_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, redis.exceptions.RedisClusterException)


class RekeyingInProgress(StoreError):
    """Writes about numbers wait while the hash key is rotated (screening goes on)."""


# --- key schema -----------------------------------------------------------------------

def number_key(digest: str, kind: str) -> str:
    """``cs:n:{digest}:kind`` — kinds: consents, optouts, objections, suppressions,
    attempts, decisions, contact, complaints, key (the wrapped data key), erased."""
    return f"{PREFIX}n:{{{digest}}}:{kind}"


def subject_key_key(digest: str) -> str:
    """Where a subject's wrapped data key lives (a string, ``w1.<key id>.<…>``)."""
    return number_key(digest, "key")


SUBJECT_KEY_PATTERN = PREFIX + "n:*:key"  # SCAN MATCH pattern of every wrapped data key


def subject_digest(key: str) -> str:
    """The digest inside a per-number key name (``cs:n:{D}:kind`` → ``D``)."""
    return key[key.index("{") + 1:key.index("}")]


def consent_pointer_key(consent_id: str) -> str:
    return f"{PREFIX}consent:{consent_id}"


def consent_alias_key(alias: str) -> str:
    """A retired consent id, named by its keyed alias (:meth:`NumberVault.alias`) → current id."""
    return f"{PREFIX}consent-alias:{alias}"


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

CLUSTER_NODE_CONNECTIONS = 512  # per node, asyncio cluster clients: see connect()


def connect(url: str, *, asyncio: bool = False, timeout: float = 2.0, connect_timeout: float | None = None,
            max_connections: int | None = None, pool_timeout: float | None = None) -> Any:
    """The one way a store client is built, for a single server or a cluster (``redis+cluster://``,
    see :mod:`callscreen.cluster`), sync or asyncio.

    Bounded timeouts and a single quick retry: screening must fail closed in milliseconds, not
    after redis-py's default back-off. ``max_connections`` caps an asyncio client's connections
    and with ``pool_timeout`` makes a command wait that long for a free one rather than fail. A sync
    cluster client reads the cluster's layout at once: :class:`StoreError` if no seed node answers. The
    asyncio cluster client cannot wait for a connection, so each node gets at least
    :data:`CLUSTER_NODE_CONNECTIONS` (a burst of sessions must not turn into refusals)."""
    from redis.backoff import ConstantBackoff

    from callscreen.cluster import parse_store_url

    address = parse_store_url(url)
    options: dict[str, Any] = dict(socket_timeout=timeout, health_check_interval=30,
                                   socket_connect_timeout=min(timeout, 1.0) if connect_timeout is None
                                   else connect_timeout)
    if asyncio:
        from redis.asyncio.retry import Retry as AsyncRetry

        retry: Any = AsyncRetry(ConstantBackoff(0.01), 1)
    else:
        from redis.retry import Retry

        retry = Retry(ConstantBackoff(0.01), 1)
    if address.cluster:
        return _connect_cluster(address.nodes, {**address.options, **options}, retry, asyncio, max_connections)
    options["retry"] = retry
    if not asyncio:
        return redis.Redis.from_url(url, **options)
    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio import Redis as AsyncRedis

    if max_connections is None:
        return AsyncRedis.from_url(url, **options)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_timeout, **options)
    return AsyncRedis(connection_pool=pool)


def _connect_cluster(nodes: Sequence[tuple[str, int]], options: dict[str, Any], retry: Any, asyncio: bool,
                     max_connections: int | None) -> Any:
    from callscreen.cluster import AsyncStoreCluster, StoreCluster

    if asyncio:
        from redis.asyncio.cluster import ClusterNode as AsyncNode

        return AsyncStoreCluster(startup_nodes=[AsyncNode(h, p) for h, p in nodes], retry=retry,
                                 max_connections=max(max_connections or 0, CLUSTER_NODE_CONNECTIONS), **options)
    from redis.cluster import ClusterNode

    try:  # unlike every other client, this one asks a seed node for the cluster's layout at once
        return StoreCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes], retry=retry, **options)
    except STORE_ERRORS as exc:
        raise StoreError(f"store unavailable: {exc}") from exc


# --- server-side scripts ------------------------------------------------------------------

SCRIPTS: dict[str, str] = {}  # sha1 -> body of every script the planned commands may call


def script(body: str) -> str:
    """Register a Lua script; returns the sha1 that ``EVALSHA`` commands name."""
    sha = hashlib.sha1(body.encode()).hexdigest()
    SCRIPTS[sha] = body
    return sha


# One command instead of eight: every per-number key lives in the same slot, so this is
# cluster-safe. KEYS: consents, optouts, objections, suppressions, contact, attempts, key,
# erased. ARGV: attempt horizon ms, a freshly wrapped data key to store if the subject has
# none ('' for none: dry runs), never for an erased subject; now ms; how many of the newest
# attempts up to now to read (0: none). Replies 7 and 8: the stored wrapped key and the
# erasure marker. The attempt read is bounded, O(log n + limit), however many calls the
# number has had.
FACTS_SHA = script("""
local out = {}
for i = 1, 5 do out[i] = redis.call('HGETALL', KEYS[i]) end
if tonumber(ARGV[4]) > 0 then
  out[6] = redis.call('ZREVRANGEBYSCORE', KEYS[6], ARGV[3], ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[4])
else
  out[6] = {}
end
out[8] = redis.call('GET', KEYS[8])
if ARGV[2] ~= '' and not out[8] then redis.call('SET', KEYS[7], ARGV[2], 'NX') end
out[7] = redis.call('GET', KEYS[7])
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


# A subject's data key, created on first use: SET NX the caller's freshly wrapped key, then
# answer whichever key is stored. Never for an erased subject (answers nil).
# KEYS: key, erased. ARGV: wrapped candidate.
ENSURE_KEY_SHA = script("""
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
""")


# --- executing planned commands --------------------------------------------------------

Command = tuple[Any, ...]


def _missing_scripts(commands: Sequence[Command], replies: list[Any]) -> list[int]:
    return [i for i, reply in enumerate(replies)
            if isinstance(reply, redis.exceptions.NoScriptError) and commands[i][1] in SCRIPTS]


def run_pipeline(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one round trip; a failed command's reply is its exception. On a
    cluster each node gets its share at once (keyless commands go to any node: a durability
    confirmation needs :mod:`callscreen.log_cluster`).

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
    except STORE_ERRORS as exc:
        raise StoreError(f"store unavailable: {exc}") from exc


def _execute(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """One round trip on one pooled connection (see :func:`_execute_async`)."""
    if is_cluster_client(client):
        return _cluster_pipeline(client, commands).execute(raise_on_error=False)
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        return connection.retry.call_with_retry(lambda: _exchange(client, connection, commands),
                                                lambda _error: connection.disconnect())
    except BaseException:
        connection.disconnect()  # replies may still be on the wire: never hand it back half-read
        raise
    finally:
        pool.release(connection)


def _cluster_pipeline(client: Any, commands: Sequence[Command]) -> Any:
    """redis-py's cluster pipeline (sync or asyncio) holding ``commands``: each node gets its share."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe


def _exchange(client: redis.Redis, connection: Any, commands: Sequence[Command]) -> list[Any]:
    connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for command in commands:
        try:
            replies.append(client.parse_response(connection, command[0]))
        except redis.exceptions.ResponseError as exc:
            replies.append(exc)
    return replies


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
    except STORE_ERRORS as exc:
        raise StoreError(f"store unavailable: {exc}") from exc


async def _execute_async(client: Any, commands: Sequence[Command]) -> list[Any]:
    """One round trip on one pooled connection: the packed commands in one write, then each
    reply (an error reply in its place, as an exception). What redis-py's pipeline does, without
    its per-command stack, observability hooks and reset: less CPU for every decision. A failed,
    timed-out or cancelled exchange drops the connection (its replies may still be on the wire)
    instead of returning it to the pool; a connection error is retried as the client's retry
    policy says (see :func:`connect`). A cluster keeps redis-py's cluster pipeline."""
    if is_cluster_client(client):
        return await _cluster_pipeline(client, commands).execute(raise_on_error=False)
    pool = client.connection_pool
    kept = kept_connections(client)
    connection = kept.pop() if kept else await pool.get_connection()
    clean = False
    try:
        replies = await connection.retry.call_with_retry(lambda: _exchange_async(client, connection, commands),
                                                         lambda _error: connection.disconnect())
        clean = True
        return replies
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    finally:
        if clean and len(kept) < KEPT_CONNECTIONS:
            kept.append(connection)
        else:
            await pool.release(connection)


# Connections that finished a round trip cleanly wait here for the next one instead of going back
# to redis-py's pool, whose get and release cost about a tenth of a decision's CPU (locks,
# connection checks, observability hooks). At most KEPT_CONNECTIONS per client; to the pool they
# stay in use, so the pool's bound still holds them; a forked process starts with none.
KEPT_CONNECTIONS = 8
_KEPT: weakref.WeakKeyDictionary[Any, tuple[int, list[Any]]] = weakref.WeakKeyDictionary()


def kept_connections(client: Any) -> list[Any]:
    """The connections kept for ``client``'s next round trips (in this process)."""
    pid = os.getpid()
    entry = _KEPT.get(client)
    if entry is None or entry[0] != pid:
        entry = _KEPT[client] = (pid, [])
    return entry[1]


async def _exchange_async(client: Any, connection: Any, commands: Sequence[Command]) -> list[Any]:
    """The write and every reply under ONE timer of the connection's socket timeout, where
    redis-py starts a task for the write (``wait_for``) and a timer for each reply: a tenth of a
    round trip's client CPU. The connection's own timeout is lifted meanwhile (the connection is
    this round trip's alone) and put back after. Past the timeout the connection is dropped and
    redis-py's TimeoutError raised, which the retry policy and :data:`STORE_ERRORS` know."""
    timeout = connection.socket_timeout
    try:
        async with asyncio.timeout(timeout):
            connection.socket_timeout = None
            try:
                await connection.send_packed_command(pack_commands(connection, commands))
                replies: list[Any] = []
                for command in commands:
                    try:
                        replies.append(await client.parse_response(connection, command[0]))
                    except redis.exceptions.ResponseError as exc:
                        replies.append(exc)
                return replies
            finally:
                connection.socket_timeout = timeout
    except TimeoutError:
        await connection.disconnect(nowait=True)
        raise redis.exceptions.TimeoutError(f"no reply from the store within {timeout}s") from None


def pack_commands(connection: Any, commands: Sequence[Command]) -> list[bytes]:
    """The RESP bytes of ``commands``, packed by hiredis in C (redis-py's asyncio connection packs
    in Python: about a sixth of a decision's CPU); redis-py's packer where hiredis has none. Both
    give the same bytes; an argument that is not text, bytes or a number is refused."""
    if _pack_command is None:
        return connection.pack_commands(commands)
    try:
        return [_pack_command(tuple(command)) for command in commands]
    except TypeError as exc:
        raise StoreError(f"cannot send a command: {exc}") from exc


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
    """Plans and parses the one pipelined round trip that gathers a number's facts.

    With ``key_candidate`` (a freshly wrapped data key) the same command creates the subject's
    data key if it has none, so the decision's log record can seal the number without another
    round trip; after :meth:`parse`, ``wrapped_key`` holds the subject's stored wrapped key
    (None for an erased subject).

    ``attempt_limit`` is how many of the newest attempts up to ``at`` to read: the pack's
    :attr:`~callscreen.policy.PolicyPack.attempt_read_limit` (0 when it has no cap)."""

    KINDS = ("consents", "optouts", "objections", "suppressions", "contact")

    def __init__(
        self,
        number: PhoneNumber,
        digest: str,
        at: datetime,
        registry_ids: Sequence[str] = (),
        registries: RegistryLookup | None = None,
        key_candidate: str = "",
        previous: str | None = None,
        erasure: Sequence[str] = (),
        *,
        attempt_limit: int,
    ) -> None:
        if attempt_limit < 0:
            raise ValueError("attempt_limit must not be negative")
        self.number = number
        self.attempt_limit = attempt_limit
        self.digest = digest
        self.at = at
        self.registry_ids = tuple(registry_ids)
        self.registries = registries or NoRegistries()
        self.key_candidate = key_candidate
        self.previous = previous
        self.erasure = tuple(erasure)
        self.wrapped_key: str | None = None
        self.previous_wrapped_key: str | None = None
        self._registry_commands = self.registries.commands(number, self.registry_ids)

    def _facts_command(self, digest: str, candidate: str) -> Command:
        keys = [number_key(digest, kind) for kind in (*self.KINDS, "attempts", "key", "erased")]
        return ("EVALSHA", FACTS_SHA, len(keys), *keys, ms(self.at - ATTEMPT_HISTORY), candidate, ms(self.at),
                self.attempt_limit)

    def commands(self) -> list[Command]:
        """The facts under the number's digest; while the hash key is rotated, under its previous
        digest too (merged, the stricter record winning); and the erasure markers under retired
        hash keys that still name erased persons."""
        planned = [self._facts_command(self.digest, self.key_candidate)]
        if self.previous:
            planned.append(self._facts_command(self.previous, ""))
        planned.extend(("GET", number_key(d, "erased")) for d in self.erasure)
        return [*planned, *self._registry_commands]

    def parse(self, replies: Sequence[Any]) -> Facts:
        gathered = _check(replies[0])
        index = 1
        if self.previous:
            older = _check(replies[1])
            self.previous_wrapped_key = _text(older[6]) if older[6] and not older[7] else None
            gathered = merge_facts(gathered, older)
            index = 2
        erased_elsewhere = [_check(r) for r in replies[index:index + len(self.erasure)]]
        index += len(self.erasure)
        consents, optouts, objections, suppressions, contact = (as_hash(r) for r in gathered[:5])
        attempts = gathered[5]
        wrapped, erased = gathered[6], gathered[7] or next((e for e in erased_elsewhere if e), None)
        self.wrapped_key = _text(wrapped) if wrapped and not erased else None
        contact_map = {_text(k): _text(v) for k, v in contact.items()}
        contact_map.pop("sealed", None)
        disconnected = contact_map.pop("disconnected_at", None)
        attempt_times = tuple(
            datetime.fromtimestamp(float(score) / 1000, UTC) for score in as_hash(attempts).values()
        )
        if self.previous and self.attempt_limit:  # two digests' newest attempts: keep the newest overall
            attempt_times = tuple(sorted(attempt_times)[-self.attempt_limit:])
        return Facts(
            consents=tuple(load_consent(raw, None) for raw in consents.values()),
            opt_outs=tuple(codec.opt_out_from(d) for d in _json_values(optouts)),
            objections=tuple(codec.objection_from(d) for d in _json_values(objections)),
            suppressions=tuple(codec.suppression_from(d) for d in _json_values(suppressions)),
            registries=self.registries.parse(self.number, self.registry_ids, replies[index:]),
            attempts=tuple(sorted(attempt_times)),
            attempts_limit=self.attempt_limit,
            contact=codec.contact_from(contact_map),
            erased_at=codec.parse_time(json.loads(erased)["at"]) if erased else None,
            disconnected_at=codec.parse_time(disconnected) if disconnected else None,
        )


def as_hash(flat: list[Any]) -> dict[Any, Any]:
    """A flat ``[field, value, ...]`` reply (HGETALL or a stream entry inside a script) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def stricter_consent(current: bytes | str, previous: bytes | str) -> bytes | str:
    """Of two stored copies of one consent, the one that may not be relied on: a withdrawal
    on either copy wins, otherwise the copy under the digest in force."""
    if json.loads(previous).get("withdrawn_at") and not json.loads(current).get("withdrawn_at"):
        return previous
    return current


def merge_hashes(kind: str, current: dict[Any, Any], previous: dict[Any, Any]) -> dict[Any, Any]:
    """One per-number hash merged from its copies under two digests: every field of both
    (opt-outs, objections and suppressions block from either); for the same field the copy
    under the digest in force, except that a withdrawn consent stays withdrawn."""
    merged = {**previous, **current}
    if kind == "consents":
        for field in current.keys() & previous.keys():
            merged[field] = stricter_consent(current[field], previous[field])
    return merged


def merge_facts(current: list[Any], previous: list[Any]) -> list[Any]:
    """The fact script's replies for one number read under two digests, as one reply."""
    merged: list[Any] = []
    for position, kind in enumerate(FactQuery.KINDS):
        both = merge_hashes(kind, as_hash(current[position]), as_hash(previous[position]))
        merged.append([x for pair in both.items() for x in pair])
    attempts = {**as_hash(previous[5]), **as_hash(current[5])}
    merged.append([x for pair in attempts.items() for x in pair])
    merged.append(current[6])
    merged.append(current[7] or previous[7])
    return merged


# --- personal data under the subject's data key -------------------------------------------

ERASED_TEXT = "[erased]"
SEALED_TEXT = "[sealed]"


class ErasedSubject(ValueError):
    """The number's personal data was erased: nothing personal about it may be stored again."""


@dataclass(frozen=True, slots=True)
class Subject:
    """One data subject (a number digest) and its data key, unwrapped.

    ``key`` is None when no data key exists: the subject was erased (``erased``) or has never
    had personal data stored. Sealing needs a key; opening a value sealed under a key that is
    gone raises :class:`~callscreen.crypto.SealError`. Values written before per-subject keys
    (legacy seals of the number, clear text fields) are still read until ``callscreen migrate``
    re-seals them."""

    digest: str
    key: bytes | None
    vault: NumberVault
    erased: bool = False

    def seal(self, field: str, text: str) -> str:
        if not text:
            return ""
        if self.key is None:
            raise ErasedSubject("this number's personal data was erased") if self.erased else SealError(
                "no data key for this subject")
        return self.vault.seal_with(self.key, self.digest, field, text)

    def open(self, field: str, token: str) -> str:
        """The clear value; SealError if its key is gone (erased) or the value was altered."""
        if not token:
            return ""
        if not is_subject_sealed(token):
            return self.vault.open(token, self.digest) if field == "number" else token
        if self.key is None:
            raise SealError("the data key of this subject is erased")
        return self.vault.open_with(self.key, self.digest, field, token)

    def show(self, field: str, token: str) -> str:
        """Like :meth:`open`, but an unreadable value reads as ``[erased]`` (for display)."""
        try:
            return self.open(field, token)
        except SealError:
            return ERASED_TEXT


def _contact_fields(contact: Contact) -> dict[str, str]:
    """The contact hash fields worth writing (empty values leave what is stored)."""
    return {k: v for k, v in (("timezone", contact.timezone), ("subdivision", contact.subdivision)) if v}


PROOF_IN_CLEAR = ("form_version",)  # the company's form version: not personal, the decision cites it


def dump_consent(consent: Consent, subject: Subject) -> str:
    """Consent JSON as stored: the proof's personal fields sealed under the subject's key."""
    data = codec.to_dict(consent)
    private = {k: v for k, v in data["proof"].items() if k not in PROOF_IN_CLEAR and v}
    data["proof"] = {k: data["proof"][k] for k in PROOF_IN_CLEAR}
    if private:
        data["proof_sealed"] = subject.seal("proof", json.dumps(private, ensure_ascii=False, sort_keys=True))
        data["proof_held"] = sorted(private)  # which proof is on file (names only): the decision needs that
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def load_consent(raw: bytes | str, subject: Subject | None) -> Consent:
    """A stored consent with its proof opened (``[erased]`` if its subject key is gone). Without a
    subject (the decision path) each sealed proof field on file reads ``[sealed]``: present, unread."""
    data = json.loads(raw)
    sealed = data.pop("proof_sealed", "")
    held = data.pop("proof_held", ())
    if sealed and subject is None:
        data["proof"] = {**(data.get("proof") or {}), **dict.fromkeys(held, SEALED_TEXT)}
    elif sealed:
        try:
            private = json.loads(subject.open("proof", sealed))
        except SealError:
            private = {name: ERASED_TEXT for name in ("ip", "user_agent", "form_text")}
        data["proof"] = {**(data.get("proof") or {}), **private}
    return codec.consent_from(data)


# --- record keeping ----------------------------------------------------------------------

class Store:
    """Synchronous record keeping: campaigns, consents, opt-outs, objections, suppressions.

    Used by the CLI, the dashboard and imports. The decision path uses :class:`FactQuery`.
    """

    def __init__(self, client: redis.Redis, vault: NumberVault) -> None:
        self.client = client
        self.vault = vault

    def rekeying(self) -> bool:
        """Whether the hash key is being rotated (facts are then read under two digests)."""
        return self.vault.hashes is not None and self.vault.hashes.current()[1] is not None

    def _writable(self) -> None:
        """Records about a number are not written while its facts may be moving between digests
        (the move merges both copies; a write racing it could be lost): a clear, retryable error."""
        if self.rekeying():
            raise RekeyingInProgress("the hash key is being rotated: records about numbers can be written again "
                                     "in a moment (`callscreen keys status` shows the progress)")

    # campaigns
    def put_campaign(self, campaign: Campaign) -> Campaign:
        if campaign.created_at is None:
            campaign = replace(campaign, created_at=datetime.now(UTC))
        pipe = write_pipeline(self.client)
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

    # subjects and their data keys
    def ensure_key_command(self, digest: str) -> Command:
        """The command that creates (or reads) a subject's wrapped data key; nil if erased."""
        candidate = self.vault.wrap_key(digest, self.vault.new_data_key())
        return ("EVALSHA", ENSURE_KEY_SHA, 2, subject_key_key(digest), number_key(digest, "erased"), candidate)

    def subjects(self, digests: Sequence[str], create: bool = False) -> dict[str, Subject]:
        """The subjects of ``digests`` with their data keys, in one round trip; ``create`` makes
        a data key for any subject that has none (never for an erased one)."""
        unique = list(dict.fromkeys(digests))
        commands: list[Command] = []
        for digest in unique:
            commands.append(self.ensure_key_command(digest) if create else ("GET", subject_key_key(digest)))
            commands.append(("EXISTS", number_key(digest, "erased")))
        replies = run_pipeline(self.client, commands)
        found = {}
        for index, digest in enumerate(unique):
            wrapped, erased = _check(replies[2 * index]), bool(_check(replies[2 * index + 1]))
            key = self.vault.unwrap_key(digest, _text(wrapped)) if wrapped else None
            found[digest] = Subject(digest, key, self.vault, erased)
        return found

    def subject(self, digest: str, create: bool = False) -> Subject:
        return self.subjects([digest], create)[digest]

    def is_erased(self, digest: str) -> bool:
        return bool(self.client.exists(number_key(digest, "erased")))

    # the number itself, sealed
    def remember_number(self, number: PhoneNumber, pipe: Any = None, subject: Subject | None = None) -> str:
        """Store the sealed number beside its digest (so it can be revealed later); returns digest.
        An erased subject's number is not stored again."""
        self._writable()
        digest = self.vault.digest(number.e164)
        subject = subject or self.subject(digest, create=True)
        if subject.key is not None:
            target = pipe if pipe is not None else self.client
            target.hsetnx(number_key(digest, "contact"), "sealed", subject.seal("number", number.e164))
        return digest

    def open_number(self, digest: str, sealed: str, subject: Subject | None = None) -> str | None:
        """The clear number of a sealed copy; None when it cannot be opened (e.g. erased)."""
        if not sealed or not digest:
            return None
        try:
            return (subject or self.subject(digest)).open("number", sealed)
        except SealError:
            return None

    def reveal(self, digest: str) -> str | None:
        """The clear number for ``digest`` (None if none is kept or it was erased); callers
        must journal why (see the access journal)."""
        sealed = self.client.hget(number_key(digest, "contact"), "sealed")
        return None if sealed is None else self.open_number(digest, _text(sealed))

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
        """Record many consents in two round trips (imports); personal fields are sealed under
        each number's data key. Raises :class:`ErasedSubject`, writing nothing, if any number
        was erased."""
        self._writable()
        subjects = self.subjects([self.vault.digest(n.e164) for n, _c, _x in items], create=True)
        erased = [s for s in subjects.values() if s.key is None] + [
            n for n, _c, _x in items for d in self.vault.erasure_digests(n.e164)
            if self.client.exists(number_key(d, "erased"))]
        if erased:
            raise ErasedSubject(f"{len(erased)} of these numbers had their personal data erased; "
                                "a new consent for an erased number cannot be recorded")
        pipe = write_pipeline(self.client)
        saved = []
        for number, consent, contact in items:
            digest = self.vault.digest(number.e164)
            subject = subjects[digest]
            consent = replace(
                consent,
                number_digest=digest,
                number_sealed=subject.seal("number", number.e164),
                recorded_at=consent.recorded_at or datetime.now(UTC),
            )
            self.remember_number(number, pipe, subject)
            pipe.hset(number_key(digest, "consents"), consent.id, dump_consent(consent, subject))
            pipe.set(consent_pointer_key(consent.id), digest)
            mapping = _contact_fields(contact) if contact else {}
            if mapping:
                pipe.hset(number_key(digest, "contact"), mapping=mapping)
            saved.append(consent)
        pipe.execute()
        return saved

    def count_known_consents(self, consent_ids: Sequence[str]) -> int:
        """How many of these ids are already on file (a re-import counts them as not new)."""
        if not consent_ids:
            return 0
        return int(self.client.exists(*(consent_pointer_key(i) for i in consent_ids)))

    def get_consent(self, consent_id: str) -> Consent | None:
        """A consent by id; an id retired by ``callscreen migrate`` still finds its consent."""
        digest = self.client.get(consent_pointer_key(consent_id))
        if digest is None:
            current = self.client.get(consent_alias_key(self.vault.alias(consent_id)))
            if current is None:
                return None
            consent_id = _text(current)
            digest = self.client.get(consent_pointer_key(consent_id))
            if digest is None:
                return None
        digest = _text(digest)
        raw = self.client.hget(number_key(digest, "consents"), consent_id)
        return None if raw is None else load_consent(raw, self.subject(digest))

    def current_consent_id(self, consent_id: str) -> str:
        """The id a consent goes by now: an id retired by ``callscreen migrate`` (an unkeyed hash
        of the number) maps to its keyed successor, so it is never shown again."""
        if not consent_id or self.client.exists(consent_pointer_key(consent_id)):
            return consent_id
        current = self.client.get(consent_alias_key(self.vault.alias(consent_id)))
        return consent_id if current is None else _text(current)

    def consents_for(self, digest: str) -> list[Consent]:
        raw = self.client.hgetall(number_key(digest, "consents"))
        subject = self.subject(digest) if raw else None
        found = [load_consent(v, subject) for v in raw.values()]
        return sorted(found, key=lambda c: c.captured_at)

    def withdraw_consent(self, consent_id: str, how: str, at: datetime | None = None) -> Consent:
        """Mark a consent withdrawn; the record stays as evidence. Raises KeyError if unknown."""
        self._writable()
        consent = self.get_consent(consent_id)
        if consent is None:
            raise KeyError(consent_id)
        if consent.withdrawn_at is not None:
            return consent
        withdrawn = replace(consent, withdrawn_at=at or datetime.now(UTC), withdrawn_how=how)
        raw = self.client.hget(number_key(consent.number_digest, "consents"), consent.id)
        stored = json.loads(raw) if raw is not None else {}
        stored.update(withdrawn_at=codec.iso(withdrawn.withdrawn_at), withdrawn_how=how)
        self.client.hset(number_key(consent.number_digest, "consents"), consent.id,
                         json.dumps(stored, ensure_ascii=False, separators=(",", ":"), sort_keys=True))
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
        self._writable()
        digest = self.vault.digest(number.e164)
        return [
            self.withdraw_consent(c.id, how)
            for c in self.consents_for(digest)
            if c.withdrawn_at is None and (purpose is None or c.covers(purpose))
        ]

    # opt-outs, objections, suppressions
    def _blocking_fact_digest(self, number: PhoneNumber) -> str:
        """Where a blocking fact is written: beside the sealed number, or while the hash key is
        rotated, under the number's new digest alone (a block must never wait)."""
        return self.vault.digest(number.e164) if self.rekeying() else self.remember_number(number)

    def add_opt_out(self, number: PhoneNumber, opt_out: OptOut) -> str:
        digest = self._blocking_fact_digest(number)
        scope = opt_out.campaign_id or COMPANY_WIDE
        self.client.hset(number_key(digest, "optouts"), scope, codec.dumps(opt_out))
        return digest

    def remove_opt_out(self, number: PhoneNumber, campaign_id: str | None) -> bool:
        self._writable()
        digest = self.vault.digest(number.e164)
        return bool(self.client.hdel(number_key(digest, "optouts"), campaign_id or COMPANY_WIDE))

    def opt_outs_for(self, digest: str) -> list[OptOut]:
        raw = self.client.hgetall(number_key(digest, "optouts"))
        return [codec.opt_out_from(json.loads(v)) for v in raw.values()]

    def add_objection(self, number: PhoneNumber, objection: Objection) -> str:
        digest = self._blocking_fact_digest(number)
        self.client.hset(number_key(digest, "objections"), objection.scope, codec.dumps(objection))
        return digest

    def suppress(self, digest: str, suppression: Suppression) -> None:
        self.client.hset(
            number_key(digest, "suppressions"), suppression.complaint_id, codec.dumps(suppression)
        )

    def lift_suppression(self, digest: str, complaint_id: str) -> bool:
        self._writable()
        return bool(self.client.hdel(number_key(digest, "suppressions"), complaint_id))

    def facts(self, number: PhoneNumber, at: datetime, registry_ids: Sequence[str] = (),
              registries: RegistryLookup | None = None, *, attempt_limit: int) -> Facts:
        query = FactQuery(number, self.vault.digest(number.e164), at, registry_ids, registries,
                          previous=self.vault.previous_digest(number.e164),
                          erasure=self.vault.erasure_digests(number.e164), attempt_limit=attempt_limit)
        return query.parse(run_pipeline(self.client, query.commands()))
