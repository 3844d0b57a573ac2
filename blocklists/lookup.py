"""The dial-time registry lookup: one ``GETBIT`` per required registry, inside the decision's
single pipelined round trip (the :class:`callscreen.store.RegistryLookup` protocol).

The key of a lookup embeds the registry's live generation, which this process caches: a
snapshot of every ``cs:reg:<id>:current`` pointer, refreshed every ``refresh_seconds`` (by a
background thread after :meth:`RedisRegistryLookup.start`, which also listens on
``cs:reg:events`` for immediate refreshes; lazily on use otherwise). So no extra round trip
is ever spent on the pointer.

Fail-closed invariants:
- A snapshot older than ``max_age_seconds`` is not trusted: the registry reads as not loaded,
  and a jurisdiction that requires it blocks with ``registry_stale``. ``max_age_seconds`` is
  far below the grace period a retired generation stays readable (``GRACE_SECONDS``), so a
  trusted snapshot never points at an expired generation.
- A registry that was not loaded when the commands were planned is probed with ``GET`` on
  its pointer instead of ``GETBIT``; a probe reply is always reported as not loaded, even if
  the snapshot changed meanwhile, because no bit was read.
- An error reply raises :class:`~callscreen.store.StoreError` (the screening fails closed).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from blocklists import storage
from blocklists.numbering import locate_e164
from blocklists.registry import GRACE_SECONDS, RegistryInfo
from callscreen.models import RegistryStatus
from callscreen.numbers import PhoneNumber
from callscreen.store import STORE_ERRORS, Command, StoreError

log = logging.getLogger("callscreen.registries")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live generation and freshness of each loaded registry, as read at ``taken``."""

    taken: float  # monotonic clock
    registries: dict[str, tuple[int, datetime]]  # id -> (generation, loaded_at)


class RedisRegistryLookup:
    """Registry lookups for the screening pipeline. Thread-safe; shareable across tasks."""

    def __init__(self, client: redis.Redis, *, refresh_seconds: float = 5.0, max_age_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < refresh_seconds < max_age_seconds <= GRACE_SECONDS / 2:
            raise ValueError("need 0 < refresh_seconds < max_age_seconds <= GRACE_SECONDS / 2")
        self.client = client
        self.refresh_seconds = refresh_seconds
        self.max_age_seconds = max_age_seconds
        self._clock = clock
        self._snapshot = Snapshot(float("-inf"), {})
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the snapshot --------------------------------------------------------------------------

    def refresh(self) -> Snapshot:
        """Read every registry pointer (two short commands) and replace the snapshot."""
        taken = self._clock()
        ids = sorted(_text(i) for i in self.client.smembers(storage.INDEX_KEY))
        raws = self.client.mget([storage.current_key(i) for i in ids]) if ids else []
        found = {}
        for raw in raws:
            if raw is not None:
                info = RegistryInfo.from_json(raw)
                found[info.id] = (info.generation, info.loaded_at)
        snapshot = Snapshot(taken, found)
        with self._lock:
            if snapshot.taken >= self._snapshot.taken:
                self._snapshot = snapshot
        return snapshot

    def snapshot(self) -> Snapshot:
        """The cached snapshot; refreshed here only when no background thread keeps it fresh."""
        current = self._snapshot
        if self._thread is None and self._clock() - current.taken >= self.refresh_seconds:
            try:
                return self.refresh()
            except STORE_ERRORS as exc:
                log.warning("registry pointers unavailable: %s", exc)
        return current

    def _trusted(self, snapshot: Snapshot) -> bool:
        return self._clock() - snapshot.taken < self.max_age_seconds

    # --- the protocol ----------------------------------------------------------------------------

    def commands(self, number: PhoneNumber, registry_ids: Sequence[str]) -> list[Command]:
        if not registry_ids:
            return []
        snapshot = self.snapshot()
        trusted = self._trusted(snapshot)
        shard, offset = locate_e164(number.e164)
        planned: list[Command] = []
        for registry_id in registry_ids:
            entry = snapshot.registries.get(registry_id) if trusted else None
            if entry is None:
                planned.append(("GET", storage.current_key(registry_id)))
            else:
                planned.append(("GETBIT", storage.shard_key(registry_id, entry[0], shard), offset))
        return planned

    def parse(self, number: PhoneNumber, registry_ids: Sequence[str],
              replies: Sequence[Any]) -> tuple[RegistryStatus, ...]:
        if len(replies) < len(registry_ids):
            raise StoreError("registry lookup replies are missing")
        snapshot = self._snapshot
        out = []
        for registry_id, reply in zip(registry_ids, replies, strict=False):
            if isinstance(reply, Exception):
                raise StoreError(f"registry {registry_id} lookup failed: {reply}")
            entry = snapshot.registries.get(registry_id)
            if not isinstance(reply, int) or entry is None:
                out.append(RegistryStatus(registry_id, listed=False, loaded_at=None))
            else:
                out.append(RegistryStatus(registry_id, listed=bool(reply), loaded_at=entry[1]))
        return tuple(out)

    # --- background refresh -----------------------------------------------------------------------

    def start(self) -> RedisRegistryLookup:
        """Keep the snapshot fresh from a daemon thread (pub/sub notifications + a timer)."""
        if self._thread is None:
            with contextlib.suppress(*STORE_ERRORS):
                self.refresh()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="registry-refresh", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        pubsub = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(storage.EVENTS_CHANNEL)
                    self.refresh()  # anything published before the subscription took effect
                message = pubsub.get_message(timeout=min(self.refresh_seconds, 0.5))
                if self._stop.is_set():
                    break
                if message is not None or self._clock() - self._snapshot.taken >= self.refresh_seconds:
                    self.refresh()
            except STORE_ERRORS as exc:  # keep trying; an old snapshot stops being trusted
                log.warning("registry refresh failed: %s", exc)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
                pubsub = None
                self._stop.wait(min(1.0, self.refresh_seconds))
        if pubsub is not None:
            with contextlib.suppress(Exception):
                pubsub.close()


def registry_lookup_for(client: redis.Redis, *, background: bool = False, **options: Any) -> RedisRegistryLookup:
    """The lookup a screener uses; servers pass ``background=True`` so a decision never waits
    for a pointer refresh (the CLI refreshes lazily: one short round trip per command run)."""
    lookup = RedisRegistryLookup(client, **options)
    return lookup.start() if background else lookup


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
