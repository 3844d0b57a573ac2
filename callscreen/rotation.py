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

Invariant: a job can be interrupted at any point and run again; it resumes from its SCAN cursor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

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

    @classmethod
    def parse(cls, ring: Keyring, raw: dict[Any, Any]) -> KeyView:
        data = {_text(k): _text(v) for k, v in raw.items()}
        if not data.get("active"):
            return cls(ring.oldest if ring else "")
        retired = frozenset(i for i in data.get("retired", "").split(",") if i)
        return cls(data["active"], data.get("retiring", ""), retired, data.get("phase", ""))


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

    def stale(self) -> bool:
        return self.client is not None and self.clock() - self._read_at > STATE_TTL

    def view(self) -> KeyView:
        if self.stale():
            with self._lock:
                if self.stale():
                    self._set(self.client.hgetall(state_key(self.kind)))
        return self._view

    async def refresh_async(self, aclient: Any) -> None:
        """Read the state with an asyncio client if it is stale (so :meth:`view` does no I/O)."""
        if self.client is not None and self.clock() - self._read_at > STATE_TTL:
            self._set(await aclient.hgetall(state_key(self.kind)))

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


@dataclass
class RotationProgress:
    """What a rotation job did."""

    kind: str
    old: str
    new: str
    moved: int = 0
    passes: int = 0
    finished: bool = False


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
        target = target or self.ring.newest
        try:
            self.ring.get(target)
        except KeyringError as exc:
            raise RotationError(f"{exc}; add it to the ring of every process first") from exc
        self.state.expire()
        view = self.state.view()
        if view.phase == "rewrapping":
            if view.active != target:
                raise RotationError(f"a rotation to {view.active} is under way; finish it first")
            return RotationProgress(self.kind, view.retiring, target)
        if view.active == target:
            raise RotationError(f"encryption key {target} is already in force; add a new key to the ring first")
        if target in view.retired:
            raise RotationError(f"encryption key {target} was retired; it cannot be used again")
        self.client.hset(state_key(self.kind), mapping={
            "active": target, "retiring": view.active, "phase": "rewrapping", "cursor": "0", "moved": "0",
            "started_at": datetime.now(UTC).isoformat(), "retired": ",".join(sorted(view.retired)),
        })
        self.state.expire()
        return RotationProgress(self.kind, view.active, target)

    def run(self, progress: RotationProgress, stop: threading.Event | None = None) -> RotationProgress:
        """Wait until every process wraps under the new key, re-wrap until nothing is left under
        the old one, then retire it. Returns early (not finished) if ``stop`` is set."""
        if (stop or threading.Event()).wait(self.grace):
            return progress
        new_id = key_id(self.ring.get(progress.new))
        cursor = int(_text(self.client.hget(state_key(self.kind), "cursor") or b"0"))
        while True:
            moved, cursor = self._pass(new_id, cursor, stop)
            progress.moved += moved
            if stop is not None and stop.is_set():
                return progress
            progress.passes += 1
            if moved == 0:
                break
            cursor = 0
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
        """One SCAN over every wrapped data key; returns how many were re-wrapped."""
        moved = 0
        while True:
            cursor, keys = self.client.scan(cursor, match=SUBJECT_KEY_PATTERN, count=BATCH)
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
            self.client.hset(state_key(self.kind), mapping={"cursor": str(cursor)})
            self.client.hincrby(state_key(self.kind), "moved", 0)
            if cursor == 0 or (stop is not None and stop.is_set()):
                return moved, cursor


def build_vault(settings: Any, client: Any) -> Any:
    """The vault every process uses: keys from the settings' rings, following rotations
    recorded in the store behind ``client``."""
    from callscreen.crypto import NumberVault

    encryption = KeyState("encryption", settings.keyring("encryption_key"), client)
    return NumberVault(settings.hash_key, settings.encryption_key, masters=MasterKeys(encryption))


async def refresh_async(vault: Any, aclient: Any) -> None:
    """Read stale rotation state with an asyncio client, so the vault does no blocking I/O."""
    masters = getattr(vault, "masters", None)
    if isinstance(masters, MasterKeys) and aclient is not None:
        await masters.state.refresh_async(aclient)
