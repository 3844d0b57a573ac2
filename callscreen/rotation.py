"""Key rotation while screening goes on: which key is in force, and the jobs that move data to it.

The key *material* is configuration (key rings, :mod:`callscreen.keys`); which key is *in force*
is state in Redis, ``cs:keys:<kind>`` (a hash: ``active``, ``retiring``, ``retired``, ``phase``,
progress counters), so every process switches within :data:`STATE_TTL` seconds of a rotation
without a restart. A key listed in ``retired`` is never used again by any process, even if its
material is still configured.

- ``encryption``: the master key wraps each person's data key. Rotation puts the new master key in
  force (new data keys are wrapped under it at once), waits until every process has seen that,
  re-wraps every stored data key (compare-and-set, so a concurrent write is never lost), repeats
  until a pass finds nothing left under the old key, then retires the old key: no process
  unwraps with it again, and nothing in the store is wrapped under it.
- ``hash``: the hash key names every per-number key. Rotation puts the new key in force with the
  old one *retiring*: every process reads facts under both digests (the stricter record wins)
  and writes blocks under the new one; other writes about numbers wait. The job moves every
  person to their new digest (:class:`HashRotation`), then retires the old key.

Invariant: a job can be interrupted at any point and run again; it resumes from its SCAN cursor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from callscreen.cluster import is_cluster_client, scan_keys
from callscreen.crypto import SealError, key_id, wrapped_key_id
from callscreen.keys import Keyring, KeyringError
from callscreen.store import PREFIX, SUBJECT_KEY_PATTERN, subject_digest

STATE_TTL = 1.0  # seconds a process may act on a state it read earlier
BATCH = 500

# Replace a value only if it is still the one that was read. KEYS[1]; ARGV: expected, new.
SWAP_IF_UNCHANGED = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RotationError(RuntimeError):
    """A rotation cannot start or go on; the message says why."""


def state_key(kind: str) -> str:
    return f"{PREFIX}keys:{kind}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class KeyView:
    """One reading of a key's state: the id in force, the id being retired (while a job runs)
    and the ids never to be used again."""

    active: str
    retiring: str = ""
    retired: frozenset[str] = frozenset()
    phase: str = ""
    erasure: tuple[str, ...] = ()  # retired hash keys still needed to find erased persons

    @classmethod
    def parse(cls, ring: Keyring, raw: dict[Any, Any]) -> KeyView:
        data = {_text(k): _text(v) for k, v in raw.items()}
        if not data.get("active"):
            return cls(ring.oldest if ring else "")
        retired = frozenset(i for i in data.get("retired", "").split(",") if i)
        erasure = tuple(i for i in data.get("erasure", "").split(",") if i)
        return cls(data["active"], data.get("retiring", ""), retired, data.get("phase", ""), erasure)


class KeyState:
    """The state of one rotatable key as this process sees it, read again from Redis once it is
    older than :data:`STATE_TTL` (sync on use, or ahead of time with :meth:`refresh_async`)."""

    def __init__(self, kind: str, ring: Keyring, client: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.kind = kind
        self.ring = ring
        self.client = client
        self.clock = clock
        self._view = KeyView(ring.oldest if ring else "")
        self._read_at = float("-inf")
        self._lock = threading.Lock()
        self.siblings: tuple[KeyState, ...] = ()  # states read in the same round trip as this one
        self._async = False  # once refreshed from an event loop, never read synchronously again

    def stale(self) -> bool:
        return self.client is not None and self.clock() - self._read_at > STATE_TTL

    def view(self) -> KeyView:
        """The state, read again if stale, except in a process driven by :meth:`refresh_async`:
        there a blocking read would stall every session, so the last state read stands (if the
        store cannot be read, no decision can be made anyway: they fail closed)."""
        if self.stale() and not self._async:
            with self._lock:
                if self.stale():
                    group = (self, *self.siblings)
                    pipe = self.client.pipeline(transaction=False)
                    for state in group:
                        pipe.hgetall(state_key(state.kind))
                    for state, raw in zip(group, pipe.execute(), strict=True):
                        state._set(raw)
        return self._view

    async def refresh_async(self, aclient: Any) -> None:
        """Read the state with an asyncio client if it is stale (so :meth:`view` does no I/O)."""
        group = (self, *self.siblings)
        for state in group:
            state._async = True
        if self.stale():
            pipe = aclient.pipeline(transaction=False)
            for state in group:
                pipe.hgetall(state_key(state.kind))
            for state, raw in zip(group, await pipe.execute(), strict=True):
                state._set(raw)

    def expire(self) -> None:
        """Forget the cached state (the next use reads it again)."""
        self._read_at = float("-inf")

    def _set(self, raw: dict[Any, Any]) -> None:
        self._view = KeyView.parse(self.ring, raw)
        self._read_at = self.clock()


class MasterKeys:
    """The master encryption keys a vault may use now: the one in force wraps, the configured
    ones not retired unwrap. Raises KeyringError if the key in force is not configured here
    (callers fail closed)."""

    def __init__(self, state: KeyState) -> None:
        self.state = state

    def current(self) -> tuple[bytes, tuple[bytes, ...]]:
        view = self.state.view()
        active = self.state.ring.get(view.active)
        readable = tuple(m for kid, m in self.state.ring if kid not in view.retired)
        return active, readable


class HashKeys:
    """The hash keys a vault uses now: the one in force names every per-number key; while a
    rotation re-keys (phase ``rekeying``) the one being retired names them too; retired keys
    listed in ``erasure`` find erased persons' markers. Raises KeyringError if any of them is
    not configured here (callers fail closed)."""

    def __init__(self, state: KeyState) -> None:
        self.state = state

    def current(self) -> tuple[bytes, bytes | None, tuple[bytes, ...]]:
        view = self.state.view()
        ring = self.state.ring
        previous = ring.get(view.retiring) if view.phase == "rekeying" and view.retiring else None
        return ring.get(view.active), previous, tuple(ring.get(kid) for kid in view.erasure)


@dataclass
class RotationProgress:
    """What a rotation job did."""

    kind: str
    old: str
    new: str
    moved: int = 0
    passes: int = 0
    finished: bool = False


def _begin(client: redis.Redis, state: KeyState, kind: str, target: str | None, phase: str, *,
           keep_erasure: bool = False) -> RotationProgress:
    """Put ``target`` (default: the ring's newest) in force and enter ``phase``; a rotation to the
    same key already in that phase is resumed, any other refused. ``keep_erasure`` carries the
    retired hash keys still needed to find erased persons."""
    target = target or state.ring.newest
    try:
        state.ring.get(target)
    except KeyringError as exc:
        raise RotationError(f"{exc}; add it to the ring of every process first") from exc
    state.expire()
    view = state.view()
    if view.phase == phase:
        if view.active != target:
            raise RotationError(f"a rotation to {view.active} is under way; finish it first")
        return RotationProgress(kind, view.retiring, target)
    if view.active == target:
        raise RotationError(f"{kind} key {target} is already in force; add a new key to the ring first")
    if target in view.retired:
        raise RotationError(f"{kind} key {target} was retired; it cannot be used again")
    fields = {
        "active": target, "retiring": view.active, "phase": phase, "cursor": "0", "moved": "0",
        "started_at": datetime.now(UTC).isoformat(), "retired": ",".join(sorted(view.retired)),
    }
    if keep_erasure:
        fields["erasure"] = ",".join(view.erasure)
    client.hset(state_key(kind), mapping=fields)
    state.expire()
    return RotationProgress(kind, view.active, target)


def _until_a_pass_moves_nothing(client: Any, kind: str, progress: RotationProgress, stop: threading.Event | None,
                                one_pass: Callable[[int], tuple[int, int]]) -> bool:
    """Run ``one_pass(cursor)`` (returns how many it moved and the cursor it stopped at) from the
    cursor saved in ``kind``'s state, then again from the start, until a pass moves nothing.
    Adds to ``progress``; True once done, False if ``stop`` cut it short."""
    cursor = int(_text(client.hget(state_key(kind), "cursor") or b"0"))
    while True:
        moved, cursor = one_pass(cursor)
        progress.moved += moved
        if stop is not None and stop.is_set():
            return False
        progress.passes += 1
        if moved == 0:
            return True
        cursor = 0


class EncryptionRotation:
    """Re-wraps every data key under the master key now in force, then retires the old one."""

    kind = "encryption"

    def __init__(self, client: redis.Redis, vault: Any, state: KeyState, grace: float = 2 * STATE_TTL) -> None:
        self.client = client
        self.vault = vault
        self.state = state
        self.ring = state.ring
        self.grace = grace

    def start(self, target: str | None = None) -> RotationProgress:
        """Put ``target`` (default: the newest key of the ring) in force; resumes a rotation
        to the same key that was cut short."""
        return _begin(self.client, self.state, self.kind, target, "rewrapping")

    def run(self, progress: RotationProgress, stop: threading.Event | None = None) -> RotationProgress:
        """Wait until every process wraps under the new key, re-wrap until nothing is left under
        the old one, then retire it. Returns early (not finished) if ``stop`` is set."""
        if (stop or threading.Event()).wait(self.grace):
            return progress
        new_id = key_id(self.ring.get(progress.new))
        if not _until_a_pass_moves_nothing(self.client, self.kind, progress, stop,
                                           lambda cursor: self._pass(new_id, cursor, stop)):
            return progress
        state = state_key(self.kind)
        retired = _text(self.client.hget(state, "retired") or b"")
        self.client.hset(state, mapping={
            "retiring": "", "phase": "", "cursor": "0", "finished_at": datetime.now(UTC).isoformat(),
            "retired": ",".join(sorted({*filter(None, retired.split(",")), progress.old})),
        })
        self.state.expire()
        progress.finished = True
        return progress

    def _pass(self, new_id: str, cursor: int, stop: threading.Event | None) -> tuple[int, int]:
        """One SCAN over every wrapped data key; returns how many were re-wrapped. On a cluster
        every master is scanned and no cursor is kept (a pass cut short starts over: re-wrapping
        skips what is already under the new key)."""
        moved = 0
        scan = _cluster_scan(self.client, SUBJECT_KEY_PATTERN) if is_cluster_client(self.client) else None
        while True:
            before = moved
            if scan is None:
                cursor, keys = self.client.scan(cursor, match=SUBJECT_KEY_PATTERN, count=BATCH)
            else:
                keys = next(scan, [])
                cursor = 1 if keys else 0
            if keys:
                for key, wrapped in zip(keys, self.client.mget(keys), strict=True):
                    if wrapped is None or wrapped_key_id(_text(wrapped)) == new_id:
                        continue
                    name = _text(key)
                    try:
                        fresh = self.vault.rewrap_key(subject_digest(name), _text(wrapped))
                    except SealError as exc:
                        raise RotationError(f"{name}: cannot be unwrapped ({exc})") from exc
                    moved += int(self.client.eval(SWAP_IF_UNCHANGED, 1, name, wrapped, fresh))
            self.client.hset(state_key(self.kind), mapping={"cursor": str(cursor if scan is None else 0)})
            self.client.hincrby(state_key(self.kind), "moved", moved - before)
            if cursor == 0 or (stop is not None and stop.is_set()):
                return moved, cursor if scan is None else 0


def _cluster_scan(client: Any, match: str) -> Iterator[list[Any]]:
    """Batches of the keys matching ``match`` on every master of a cluster."""
    batch: list[Any] = []
    for key in scan_keys(client, match, count=BATCH):
        batch.append(key)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def build_vault(settings: Any, client: Any) -> Any:
    """The vault every process uses: keys from the settings' rings, following rotations
    recorded in the store behind ``client``."""
    return vault_from_rings(settings.keyring("hash_key"), settings.keyring("encryption_key"), client)


def vault_from_rings(hash_ring: Keyring | bytes, encryption_ring: Keyring | bytes, client: Any) -> Any:
    """A vault from two key rings (or single keys), following rotations recorded in the store."""
    from callscreen.crypto import NumberVault

    if not isinstance(hash_ring, Keyring):
        hash_ring = Keyring.single("hash_key", hash_ring)
    if not isinstance(encryption_ring, Keyring):
        encryption_ring = Keyring.single("encryption_key", encryption_ring)
    encryption = KeyState("encryption", encryption_ring, client)
    hashes = KeyState("hash", hash_ring, client)
    encryption.siblings, hashes.siblings = (hashes,), (encryption,)  # one round trip a second for both
    return NumberVault(hash_ring.get(hash_ring.oldest), encryption_ring.get(encryption_ring.oldest),
                       masters=MasterKeys(encryption), hashes=HashKeys(hashes))


async def refresh_async(vault: Any, aclient: Any) -> None:
    """Read stale rotation state with an asyncio client, so the vault does no blocking I/O."""
    if aclient is None:
        return
    for source in (getattr(vault, "masters", None), getattr(vault, "hashes", None)):
        if isinstance(source, MasterKeys | HashKeys):
            await source.state.refresh_async(aclient)  # reads its siblings too: the second is fresh


# --- the hash key -------------------------------------------------------------------------------

HASH_KINDS = ("consents", "optouts", "objections", "suppressions", "contact")  # hashes, merged by field
ZSET_KINDS = ("attempts", "decisions")  # merged by member
SET_KINDS = ("complaints",)
STRING_KINDS = ("key", "erased")
NUMBER_KINDS = (*HASH_KINDS, *ZSET_KINDS, *SET_KINDS, *STRING_KINDS)
MOVED_KEY = PREFIX + "keys:hash:moved"  # the new digests a rotation under way has moved people to


class HashRotation:
    """Moves every person's records from their digest under the old hash key to their digest
    under the new one, while screening reads both (see :class:`HashKeys`).

    A person's number is recovered from what is sealed under their data key (the contact record,
    a consent, a complaint, a decision record); the data key is re-wrapped and every sealed field
    re-sealed for the new digest (the data itself keeps its key). Both copies are merged, the
    stricter winning (:func:`callscreen.store.merge_hashes`); the move is one optimistic
    transaction (WATCH), retried if anything changed meanwhile. An erased person's number is
    gone by design: their records stay under the old digest, and the old key is kept only to
    find their erasure markers (``erasure`` in the state)."""

    kind = "hash"

    def __init__(self, store: Any, log: Any, state: KeyState, grace: float = 2 * STATE_TTL) -> None:
        self.store = store
        self.client: redis.Redis = store.client
        self.vault = store.vault
        self.log = log
        self.state = state
        self.ring = state.ring
        self.grace = grace

    def start(self, target: str | None = None) -> RotationProgress:
        """Put ``target`` (default: the newest key of the ring) in force, facts read under both
        keys; resumes a rotation to the same key that was cut short. Refused on a cluster: a
        person moves from one digest's keys to another's in one transaction, and the two digests
        lie in different slots."""
        if is_cluster_client(self.client):
            raise RotationError("the hash key cannot be rotated on a Redis Cluster: moving a person "
                                "between two digests is one transaction, and their keys lie in different "
                                "slots (see docs/privacy.md); the encryption and log keys can be rotated")
        return _begin(self.client, self.state, self.kind, target, "rekeying", keep_erasure=True)

    def run(self, progress: RotationProgress, stop: threading.Event | None = None) -> RotationProgress:
        """Wait until every process reads under both keys, move every person until a pass moves
        nobody, then retire the old key. Returns early (not finished) if ``stop`` is set."""
        if (stop or threading.Event()).wait(self.grace):
            return progress
        old, new = self.ring.get(progress.old), self.ring.get(progress.new)
        erased_left = False

        def one_pass(cursor: int) -> tuple[int, int]:
            nonlocal erased_left
            moved, erased, cursor = self._pass(old, new, cursor, stop)
            erased_left = erased_left or erased > 0
            return moved, cursor

        if not _until_a_pass_moves_nothing(self.client, self.kind, progress, stop, one_pass):
            return progress
        state = state_key(self.kind)
        current = KeyView.parse(self.ring, self.client.hgetall(state))
        erasure = [*current.erasure, progress.old] if erased_left and progress.old not in current.erasure \
            else list(current.erasure)
        self.client.hset(state, mapping={
            "retiring": "", "phase": "", "cursor": "0", "finished_at": datetime.now(UTC).isoformat(),
            "retired": ",".join(sorted({*current.retired, progress.old})), "erasure": ",".join(erasure),
        })
        self.client.delete(MOVED_KEY)
        self.state.expire()
        progress.finished = True
        return progress

    def _pass(self, old: bytes, new: bytes, cursor: int, stop: threading.Event | None) -> tuple[int, int, int]:
        """One SCAN over every per-number key: (people moved, erased people left, cursor)."""
        from callscreen.crypto import digest_under
        from callscreen.store import PREFIX as P

        moved = erased = 0
        while True:
            before = moved
            cursor, keys = self.client.scan(cursor, match=P + "n:*", count=BATCH)
            digests = list(dict.fromkeys(subject_digest(_text(k)) for k in keys))
            done = self.client.smismember(MOVED_KEY, digests) if digests else []
            for digest, arrived in zip(digests, done, strict=True):
                if arrived:  # a new digest this rotation moved someone to
                    continue
                number = self._number_of(digest)
                if number is None:
                    erased += int(bool(self.client.exists(self._key(digest, "erased"))))
                    continue
                if digest == digest_under(old, number):
                    self._move(number, digest, digest_under(new, number))
                    moved += 1
            self.client.hset(state_key(self.kind), "cursor", str(cursor))
            self.client.hincrby(state_key(self.kind), "moved", moved - before)
            if cursor == 0 or (stop is not None and stop.is_set()):
                return moved, erased, cursor

    @staticmethod
    def _key(digest: str, kind: str) -> str:
        from callscreen.store import number_key

        return number_key(digest, kind)

    def _number_of(self, digest: str) -> str | None:
        """The clear number behind ``digest``, from anything sealed under its data key; None for
        an erased person (or one with only index entries left)."""
        import json

        try:
            subject = self.store.subject(digest)
        except SealError:
            return None
        if subject.erased:
            return None  # the number is gone by design
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self._key(digest, "contact"), "sealed")
        pipe.hvals(self._key(digest, "consents"))
        pipe.smembers(self._key(digest, "complaints"))
        for kind in ZSET_KINDS:
            pipe.zrange(self._key(digest, kind), -20, -1)
        sealed, consents, complaint_ids, *indexes = pipe.execute()
        candidates: list[tuple[str, str]] = [(digest, _text(sealed))] if sealed else []
        for raw in consents:
            data = json.loads(raw)
            candidates.append((data.get("number_digest") or digest, data.get("number_sealed", "")))
        if complaint_ids:
            for raw in self.client.mget([f"{PREFIX}complaint:{_text(i)}" for i in complaint_ids]):
                if raw:
                    data = json.loads(raw)
                    candidates.append((data.get("number_digest") or digest, data.get("number_sealed", "")))
        if not any(sealed_for == digest and token for sealed_for, token in candidates):
            ids = [_text(i) for index in indexes for i in index]
            candidates.extend((r.number_digest, r.number_sealed) for r in self.log.get_many(ids))
        for sealed_for, token in candidates:
            if sealed_for == digest and token:
                number = self.store.open_number(digest, token, subject)
                if number:
                    return number
        return None

    def _move(self, number: str, old: str, new: str) -> None:
        """Move one person from ``old`` to ``new`` in one optimistic transaction."""
        for _attempt in range(20):
            try:
                with self.client.pipeline(transaction=True) as pipe:
                    self._move_in(pipe, number, old, new)
                return
            except redis.WatchError:
                continue
        raise RotationError(f"digest {old}: kept changing while being moved; run the rotation again")

    def _move_in(self, pipe: Any, number: str, old: str, new: str) -> None:
        import json

        from callscreen.crypto import is_subject_sealed
        from callscreen.store import consent_pointer_key, merge_hashes

        keys = {(side, kind): self._key(d, kind) for side, d in (("old", old), ("new", new)) for kind in NUMBER_KINDS}
        complaint_ids = [_text(i) for i in self.client.smembers(keys[("old", "complaints")])]
        complaint_keys = [f"{PREFIX}complaint:{i}" for i in complaint_ids]
        # Screening keeps adding to the new digest's indexes (decisions, attempts) meanwhile: those
        # are merged by adding, not read, so they are not watched.
        watched = {k: v for k, v in keys.items() if k[0] == "old" or k[1] not in (*ZSET_KINDS, *SET_KINDS)}
        pipe.watch(*watched.values(), *complaint_keys)
        # Read in one round trip on another connection: any change after the WATCH still aborts.
        reader = self.client.pipeline(transaction=False)
        for (_side, kind), name in watched.items():
            if kind in HASH_KINDS:
                reader.hgetall(name)
            elif kind in ZSET_KINDS:
                reader.zrange(name, 0, -1, withscores=True)
            elif kind in SET_KINDS:
                reader.smembers(name)
            else:
                reader.get(name)
        for name in complaint_keys:
            reader.get(name)
        replies = reader.execute()
        read = dict(zip(watched, replies[:len(watched)], strict=True))
        complaints = dict(zip(complaint_keys, replies[len(watched):], strict=True))
        wrapped_old, wrapped_new = read[("old", "key")], read[("new", "key")]
        erased = read[("old", "erased")] or read[("new", "erased")]
        data_key = None
        if not erased:
            if wrapped_old:
                data_key = self.vault.unwrap_key(old, _text(wrapped_old))
            elif wrapped_new:
                data_key = self.vault.unwrap_key(new, _text(wrapped_new))
            else:
                data_key = self.vault.new_data_key()

        # A second data key under the new digest (made by a process that had not yet seen the
        # rotation) is replaced by the person's own: what it sealed is sealed again.
        new_side_key = (self.vault.unwrap_key(new, _text(wrapped_new))
                        if wrapped_old and wrapped_new and not erased else None)

        def reseal(token: str, field: str, sealed_for: str = old, key_from: bytes | None = None) -> str:
            if not token or data_key is None:
                return token
            if is_subject_sealed(token):
                try:
                    plain = self.vault.open_with(key_from or data_key, sealed_for, field, token)
                except SealError:
                    return token
            elif field == "number":
                plain = self.vault.open(token, sealed_for)  # the format before per-person keys
            else:
                return token
            return self.vault.seal_with(data_key, new, field, plain)

        contact = dict(read[("old", "contact")])
        if contact.get(b"sealed"):
            contact[b"sealed"] = reseal(_text(contact[b"sealed"]), "number")
        consents = {}
        for consent_id, raw in read[("old", "consents")].items():
            data = json.loads(raw)
            data["number_sealed"] = reseal(data.get("number_sealed", ""), "number")
            if data.get("proof_sealed"):
                data["proof_sealed"] = reseal(data["proof_sealed"], "proof")
            data["number_digest"] = new
            consents[consent_id] = json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        moved_hashes = {"consents": consents, "contact": contact}
        if new_side_key is not None:
            for field, value in read[("new", "contact")].items():
                if field == b"sealed":
                    read[("new", "contact")][field] = reseal(_text(value), "number", new, new_side_key)
            for consent_id, raw in read[("new", "consents")].items():
                data = json.loads(raw)
                data["number_sealed"] = reseal(data.get("number_sealed", ""), "number", new, new_side_key)
                if data.get("proof_sealed"):
                    data["proof_sealed"] = reseal(data["proof_sealed"], "proof", new, new_side_key)
                read[("new", "consents")][consent_id] = json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                                                                    sort_keys=True)
        pipe.multi()
        for kind in HASH_KINDS:
            merged = merge_hashes(kind, read[("new", kind)], moved_hashes.get(kind, read[("old", kind)]))
            if merged:
                pipe.hset(keys[("new", kind)], mapping=merged)
        for kind in ZSET_KINDS:
            if read[("old", kind)]:
                pipe.zadd(keys[("new", kind)], dict(read[("old", kind)]), gt=True)
        for kind in SET_KINDS:
            if read[("old", kind)]:
                pipe.sadd(keys[("new", kind)], *read[("old", kind)])
        if erased:
            pipe.set(keys[("new", "erased")], erased)
        elif data_key is not None:
            pipe.set(keys[("new", "key")], self.vault.wrap_key(new, data_key))
        for complaint_key, raw in complaints.items():
            if raw:
                data = json.loads(raw)
                if data.get("number_digest") == old:
                    data["number_digest"] = new
                    data["number_sealed"] = reseal(data.get("number_sealed", ""), "number")
                    for name in ("caller_name", "said"):
                        data[name] = reseal(data.get(name, ""), "complaint." + name)
                    pipe.set(complaint_key, json.dumps(data, ensure_ascii=False, separators=(",", ":"),
                                                       sort_keys=True))
        for consent_id in consents:
            pipe.set(consent_pointer_key(_text(consent_id)), new)
        pipe.delete(*(keys[("old", kind)] for kind in NUMBER_KINDS))
        pipe.sadd(MOVED_KEY, new)
        pipe.execute()
