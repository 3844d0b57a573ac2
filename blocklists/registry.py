"""Registry metadata and its life cycle: import, switch, change lists, drop, diff, status.

Invariants:
- A full import builds a new generation beside the live one and switches the pointer
  (``cs:reg:<id>:current``) in one MULTI/EXEC: a reader sees the old list or the new list,
  never a half-loaded one. The old generation's keys get a TTL of ``GRACE_SECONDS`` instead of
  being deleted, so a reader still holding the old generation (lookups cache the pointer for a
  few seconds, see :mod:`blocklists.lookup`) keeps reading a complete list.
- Bad lines are counted and skipped; a file that yields no number, or far fewer numbers than
  the live list, is not switched to unless forced (a wrong file must not empty a registry).
- A change list updates the live generation in place, bit by bit: each number is, at every
  moment, in its old or its new state; the record count stays exact (BITFIELD returns the
  previous bits).
- One writer per registry at a time (``cs:reg:<id>:lock``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from blocklists import storage
from blocklists.formats import BadLine, Batch, Source, read_batches
from blocklists.numbering import Scheme, scheme_for_country
from callscreen.cluster import is_cluster_client, write_pipeline
from callscreen.store import STORE_ERRORS

KINDS = ("national", "industry", "internal")
LOCK_SECONDS = 600  # renewed while an import progresses
GRACE_SECONDS = 300  # old generations live this long after a switch; lookups refresh far faster
MIN_FRACTION = 0.5  # a full reload smaller than this share of the live list needs force
BAD_SAMPLES = 20
HISTORY = 20
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_WRITE_BYTES = 32 << 20
_BITFIELD_OPS = 4096

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RegistryError(RuntimeError):
    """A registry operation cannot be done as asked; the live list is unchanged."""


Progress = Callable[[int, int], None]  # (source bytes read, numbers read)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _time(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class RegistryInfo:
    """What is loaded for one registry (the JSON behind ``cs:reg:<id>:current``).

    ``loaded_at`` is the freshness the policy's age limit is measured against: the time of the
    last full import or change list. ``checksum`` is the sha256 of the last full source file.
    """

    id: str
    country: str
    kind: str
    source: str
    version: str
    loaded_at: datetime
    records: int
    checksum: str
    bad_lines: int
    generation: int
    format: str = ""
    lines: int = 0
    shards: int = 0
    bytes: int = 0
    full_loaded_at: datetime | None = None
    changes_applied: int = 0
    bad_samples: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        data["loaded_at"] = _iso(self.loaded_at)
        data["full_loaded_at"] = _iso(self.full_loaded_at)
        data["bad_samples"] = list(self.bad_samples)
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> RegistryInfo:
        data = json.loads(raw)
        known = set(cls.__dataclass_fields__)
        data = {k: v for k, v in data.items() if k in known}
        data["loaded_at"] = _time(data["loaded_at"])
        data["full_loaded_at"] = _time(data.get("full_loaded_at"))
        data["bad_samples"] = tuple(data.get("bad_samples", ()))
        return cls(**data)

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.loaded_at).total_seconds()


@dataclass(slots=True)
class ImportReport:
    info: RegistryInfo | None  # None when the import was refused
    lines: int = 0
    accepted: int = 0  # good lines, duplicates included
    bad_count: int = 0
    bad: list[BadLine] = field(default_factory=list)  # the first ones, with line numbers
    seconds: float = 0.0
    switched: bool = False
    previous_generation: int | None = None
    added: int = 0  # change lists: numbers newly listed
    removed: int = 0  # change lists: numbers no longer listed

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


@dataclass(slots=True)
class DiffReport:
    only_left: int = 0
    only_right: int = 0
    both: int = 0
    left_samples: list[str] = field(default_factory=list)
    right_samples: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class StatusRow:
    registry_id: str
    info: RegistryInfo | None
    required_by: tuple[str, ...]  # policy pack ids that require this registry
    max_age_days: int | None  # the strictest limit among them
    age_seconds: float | None
    state: str  # "fresh", "stale", "missing" (required but not loaded) or "loaded" (no limit)


class RegistryManager:
    """Writes and reads registry metadata and bitmaps through a synchronous Redis client."""

    def __init__(self, client: redis.Redis, *, grace_seconds: int = GRACE_SECONDS,
                 memory_bytes: int = 4 << 30, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.client = client
        self.grace_seconds = grace_seconds
        self.memory_bytes = memory_bytes
        self.clock = clock
        self._release = client.register_script(_RELEASE)

    # --- reading ----------------------------------------------------------------------------

    def get(self, registry_id: str) -> RegistryInfo | None:
        raw = self.client.get(storage.current_key(registry_id))
        return None if raw is None else RegistryInfo.from_json(raw)

    def loaded(self) -> list[RegistryInfo]:
        """Metadata of every loaded registry, by id."""
        ids = sorted(_text(i) for i in self.client.smembers(storage.INDEX_KEY))
        if not ids:
            return []
        raws = self.client.mget([storage.current_key(i) for i in ids])
        return [RegistryInfo.from_json(r) for r in raws if r is not None]

    def history(self, registry_id: str) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.client.lrange(storage.history_key(registry_id), 0, -1)]

    def status(self, packs: Iterable[Any] = (), now: datetime | None = None) -> list[StatusRow]:
        """Every loaded or required registry with its age against the policy limits."""
        now = now or self.clock()
        required: dict[str, list[tuple[str, int]]] = {}
        for pack in packs:
            for registry_id in pack.all_registries():
                required.setdefault(registry_id, []).append((pack.id, pack.registry_max_age_days))
        loaded = {info.id: info for info in self.loaded()}
        rows = []
        for registry_id in sorted(set(loaded) | set(required)):
            info = loaded.get(registry_id)
            limits = [days for _pack, days in required.get(registry_id, []) if days > 0]
            max_age = min(limits) if limits else None
            age = info.age_seconds(now) if info else None
            if info is None:
                state = "missing"
            elif max_age is None:
                state = "loaded"
            else:
                state = "stale" if age is not None and age > max_age * 86400 else "fresh"
            by = tuple(sorted({p for p, _days in required.get(registry_id, [])}))
            rows.append(StatusRow(registry_id, info, by, max_age, age, state))
        return rows

    def ages(self, now: datetime | None = None) -> list[tuple[str, float, int]]:
        """(registry id, age in seconds, record count) for every loaded registry: the metrics hook."""
        now = now or self.clock()
        return [(info.id, info.age_seconds(now), info.records) for info in self.loaded()]

    def shard_bitmaps(self, registry_id: str) -> tuple[RegistryInfo, dict[str, bytes]]:
        """The live generation's bitmaps by shard name (for diff; reads the whole list)."""
        info = self._require(registry_id)
        names = sorted(_text(n) for n in self.client.smembers(storage.shards_key(registry_id, info.generation)))
        bitmaps = {}
        for start in range(0, len(names), 64):
            part = names[start:start + 64]
            values = self.client.mget([storage.shard_key(registry_id, info.generation, n) for n in part])
            bitmaps.update({n: v for n, v in zip(part, values, strict=True) if v})
        return info, bitmaps

    def _require(self, registry_id: str) -> RegistryInfo:
        info = self.get(registry_id)
        if info is None:
            raise RegistryError(f"registry {registry_id!r} is not loaded")
        return info

    # --- full import --------------------------------------------------------------------------

    def import_file(self, registry_id: str, path: str | Path | Source, *, fmt: str, country: str,
                    kind: str = "national", source: str = "", version: str = "", column: str | None = None,
                    force: bool = False, progress: Progress | None = None, bad_limit: int = 1000) -> ImportReport:
        """Load ``path`` as the new generation of ``registry_id`` and switch to it atomically."""
        check_id(registry_id)
        if kind not in KINDS:
            raise RegistryError(f"kind must be one of {', '.join(KINDS)}")
        scheme = _scheme(country)
        started = time.perf_counter()
        file = _source(path)
        with self._locked(registry_id) as lock:
            self._expire_orphans(registry_id)
            live = self.get(registry_id)
            if live is not None and live.country != country.upper():
                raise RegistryError(f"{registry_id} holds {live.country} numbers, not {country.upper()}")
            report = ImportReport(info=None)
            builder = storage.BitmapBuilder(scheme, self.memory_bytes)
            for batch in read_batches(file, fmt, scheme, column=column, bad_limit=bad_limit):
                self._count(report, batch, bad_limit)
                builder.add(batch.keys)
                lock.renew()
                if progress:
                    progress(batch.position, report.accepted)
            generation = int(self.client.incr(storage.generation_counter_key(registry_id)))
            try:
                shards, records, size = self._write(registry_id, generation, scheme, builder.shards())
                now = self.clock()
                info = RegistryInfo(
                    id=registry_id, country=country.upper(), kind=kind, source=source or file.path.name,
                    version=version or now.strftime("%Y-%m-%d"), loaded_at=now, records=records,
                    checksum=file.checksum, bad_lines=report.bad_count, generation=generation, format=fmt,
                    lines=report.lines, shards=shards, bytes=size, full_loaded_at=now,
                    bad_samples=tuple(f"line {b.line}{' of ' + b.where if b.where else ''}: {b.reason}"
                                      for b in report.bad[:BAD_SAMPLES]),
                )
                self._guard(live, info, force)
                self._switch(live, info)
            except BaseException:
                if not self._is_live(registry_id, generation):  # never the generation readers use
                    self._delete_generation(registry_id, generation)
                raise
        report.info = info
        report.switched = True
        report.previous_generation = live.generation if live else None
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _count(report: ImportReport, batch: Batch, bad_limit: int) -> None:
        report.lines += batch.lines
        report.accepted += len(batch.keys) + len(batch.deletions)
        report.bad_count += batch.bad_count
        if len(report.bad) < bad_limit:
            report.bad.extend(batch.bad[:bad_limit - len(report.bad)])

    def _write(self, registry_id: str, generation: int, scheme: Scheme,
               shards: Iterator[tuple[int, bytes]]) -> tuple[int, int, int]:
        count = records = size = pending = 0
        pipe = self.client.pipeline(transaction=False)
        members = storage.shards_key(registry_id, generation)
        for shard_id, bitmap in shards:
            name = scheme.shard_name(shard_id)
            pipe.set(storage.shard_key(registry_id, generation, name), bitmap)
            pipe.sadd(members, name)
            count += 1
            records += storage.popcount(bitmap)
            size += len(bitmap)
            pending += len(bitmap)
            if pending >= _WRITE_BYTES:
                pipe.execute()
                pending = 0
        pipe.execute()
        return count, records, size

    def _guard(self, live: RegistryInfo | None, info: RegistryInfo, force: bool) -> None:
        if force:
            return
        if info.records == 0:
            raise RegistryError(f"refusing to load {info.id}: the file holds no valid number "
                                f"({info.bad_lines} bad lines); check --format (or use --force)")
        if live is not None and info.records < live.records * MIN_FRACTION:
            raise RegistryError(f"refusing to switch {info.id}: the new list has {info.records} numbers, "
                                f"the loaded one {live.records} (use --force if this is right)")

    def _switch(self, live: RegistryInfo | None, info: RegistryInfo) -> None:
        old_names = []
        if live is not None:
            old_names = [_text(n) for n in self.client.smembers(storage.shards_key(info.id, live.generation))]
        pipe = self._pointing(storage.current_key(info.id), info.to_json())
        pipe.sadd(storage.INDEX_KEY, info.id)
        self._remember(pipe, info, "import")
        if live is not None:
            self._retire(pipe, info.id, live.generation, old_names)
        pipe.execute()
        self.client.publish(storage.EVENTS_CHANNEL, info.id)

    def _pointing(self, pointer: str, value: str | None) -> Any:
        """A write pipeline that starts by setting (or, for None, deleting) a registry's pointer.

        On one server the pointer and the bookkeeping queued after it (index, history, the TTL of
        the generation it no longer names) are one MULTI/EXEC. On a cluster they lie in several
        slots: the pointer is written first, alone, so no generation is retired while the pointer
        still names it — the bookkeeping follows once readers have moved."""
        pipe = write_pipeline(self.client)
        if is_cluster_client(self.client):
            target: Any = self.client
        else:
            target = pipe
        if value is None:
            target.delete(pointer)
        else:
            target.set(pointer, value)
        return pipe

    def _is_live(self, registry_id: str, generation: int) -> bool:
        """Whether the pointer names ``generation``; when the store cannot say, it is kept (the next
        import retires it if nothing points at it)."""
        try:
            live = self.get(registry_id)
        except STORE_ERRORS:
            return True
        return live is not None and live.generation == generation

    def _remember(self, pipe: Any, info: RegistryInfo, action: str, **extra: Any) -> None:
        entry = {"action": action, "at": _iso(self.clock()), "version": info.version,
                 "generation": info.generation, "records": info.records, **extra}
        if action == "import":
            entry.update(checksum=info.checksum, bad_lines=info.bad_lines, source=info.source)
        pipe.lpush(storage.history_key(info.id), json.dumps(entry, sort_keys=True))
        pipe.ltrim(storage.history_key(info.id), 0, HISTORY - 1)

    def _retire(self, pipe: Any, registry_id: str, generation: int, names: list[str]) -> None:
        """Queue a TTL of ``grace_seconds`` on every key of a generation."""
        for name in names:
            pipe.expire(storage.shard_key(registry_id, generation, name), self.grace_seconds)
        pipe.expire(storage.shards_key(registry_id, generation), self.grace_seconds)

    def _delete_generation(self, registry_id: str, generation: int) -> None:
        members = storage.shards_key(registry_id, generation)
        names = [_text(n) for n in self.client.smembers(members)]
        for start in range(0, len(names), 512):
            self.client.delete(*[storage.shard_key(registry_id, generation, n) for n in names[start:start + 512]])
        self.client.delete(members)

    def _expire_orphans(self, registry_id: str) -> None:
        """Retire generations left behind by an interrupted import (no pointer, no TTL)."""
        live = self.get(registry_id)
        pattern = f"{storage.PREFIX}{registry_id}:v*:shards"
        for key in self.client.scan_iter(match=pattern, count=1000):
            text = _text(key)
            generation = int(text.rsplit(":v", 1)[1].split(":", 1)[0])
            if (live is None or generation != live.generation) and self.client.ttl(text) == -1:
                names = [_text(n) for n in self.client.smembers(text)]
                pipe = write_pipeline(self.client)
                self._retire(pipe, registry_id, generation, names)
                pipe.execute()

    # --- change lists ---------------------------------------------------------------------------

    def apply_changes(self, registry_id: str, path: str | Path | Source, *, fmt: str = "ftc-changes", version: str = "",
                      column: str | None = None, progress: Progress | None = None,
                      bad_limit: int = 1000) -> ImportReport:
        """Apply additions and deletions to the live generation, in place (see module doc).

        A number both added and deleted by the same change list ends up listed (the side that
        blocks calls). Formats other than ``ftc-changes`` hold additions only.
        """
        started = time.perf_counter()
        file = _source(path)
        with self._locked(registry_id) as lock:
            live = self._require(registry_id)
            scheme = _scheme(live.country)
            report = ImportReport(info=None)
            additions: set[int] = set()
            deletions: set[int] = set()
            for batch in read_batches(file, fmt, scheme, column=column, bad_limit=bad_limit):
                self._count(report, batch, bad_limit)
                additions.update(batch.keys.tolist())
                deletions.update(batch.deletions)
                lock.renew()
                if progress:
                    progress(batch.position, report.accepted)
            wanted = dict.fromkeys(deletions - additions, 0)
            wanted.update(dict.fromkeys(additions, 1))
            report.added, report.removed, new_shards = self._apply_bits(registry_id, live.generation, scheme, wanted)
            now = self.clock()
            info = replace(
                live, version=version or f"{live.version}+{now:%Y-%m-%dT%H:%M}", loaded_at=now,
                records=live.records + report.added - report.removed,
                changes_applied=live.changes_applied + 1, shards=live.shards + new_shards,
            )
            pipe = write_pipeline(self.client)
            pipe.set(storage.current_key(registry_id), info.to_json())
            self._remember(pipe, info, "changes", added=report.added, removed=report.removed,
                           bad_lines=report.bad_count, checksum=file.checksum, source=file.path.name)
            pipe.execute()
            self.client.publish(storage.EVENTS_CHANNEL, registry_id)
        report.info = info
        report.switched = True
        report.seconds = time.perf_counter() - started
        return report

    def _apply_bits(self, registry_id: str, generation: int, scheme: Scheme,
                    wanted: dict[int, int]) -> tuple[int, int, int]:
        by_shard: dict[str, list[tuple[int, int]]] = {}
        unit = 10**scheme.tail
        for key, bit in wanted.items():
            shard_id, rest = divmod(key, unit)
            by_shard.setdefault(scheme.shard_name(shard_id), []).append((rest - scheme.base, bit))
        members = storage.shards_key(registry_id, generation)
        known = {_text(n) for n in self.client.smembers(members)}
        added = removed = 0
        pipe = self.client.pipeline(transaction=False)
        plan: list[list[int]] = []
        for name, changes in sorted(by_shard.items()):
            key = storage.shard_key(registry_id, generation, name)
            if name not in known and any(bit for _o, bit in changes):
                pipe.sadd(members, name)
                plan.append([])
            for start in range(0, len(changes), _BITFIELD_OPS):
                part = changes[start:start + _BITFIELD_OPS]
                args: list[Any] = []
                for offset, bit in part:
                    args += ["SET", "u1", offset, bit]
                pipe.execute_command("BITFIELD", key, *args)
                plan.append([bit for _o, bit in part])
            if len(pipe) >= 64:
                added, removed = self._settle(pipe.execute(), plan, added, removed)
                plan = []
        added, removed = self._settle(pipe.execute(), plan, added, removed)
        new_shards = len({n for n, ch in by_shard.items() if n not in known and any(b for _o, b in ch)})
        return added, removed, new_shards

    @staticmethod
    def _settle(replies: list[Any], plan: list[list[int]], added: int, removed: int) -> tuple[int, int]:
        for reply, bits in zip(replies, plan, strict=True):
            for old, new in zip(reply if bits else (), bits, strict=True):
                if new and not old:
                    added += 1
                elif old and not new:
                    removed += 1
        return added, removed

    # --- drop ----------------------------------------------------------------------------------

    def drop(self, registry_id: str) -> RegistryInfo:
        """Unload a registry: readers see it as not loaded at once; its keys expire after the grace."""
        with self._locked(registry_id):
            live = self._require(registry_id)
            names = [_text(n) for n in self.client.smembers(storage.shards_key(registry_id, live.generation))]
            pipe = self._pointing(storage.current_key(registry_id), None)
            pipe.srem(storage.INDEX_KEY, registry_id)
            self._remember(pipe, live, "drop")
            self._retire(pipe, registry_id, live.generation, names)
            pipe.execute()
        self.client.publish(storage.EVENTS_CHANNEL, registry_id)
        return live

    # --- diff ------------------------------------------------------------------------------------

    def diff(self, left: str | Path, right: str | Path | None = None, *, fmt: str, country: str | None = None,
             registry_id: str | None = None, column: str | None = None, samples: int = 5) -> DiffReport:
        """Compare file ``left`` with file ``right``, or with the live ``registry_id``."""
        if right is None:
            if registry_id is None:
                raise RegistryError("diff needs a second file or a registry id")
            live, right_maps = self.shard_bitmaps(registry_id)
            country = live.country
        elif country is None:
            raise RegistryError("diff of two files needs --country")
        scheme = _scheme(country)
        left_maps = self._file_bitmaps(left, fmt, scheme, column)
        if right is not None:
            right_maps = self._file_bitmaps(right, fmt, scheme, column)
        return compare(scheme, left_maps, right_maps, samples)

    def _file_bitmaps(self, path: str | Path, fmt: str, scheme: Scheme, column: str | None) -> dict[str, bytes]:
        builder = storage.BitmapBuilder(scheme, self.memory_bytes)
        for batch in read_batches(_source(path), fmt, scheme, column=column):
            builder.add(batch.keys)
        return {scheme.shard_name(shard_id): bitmap for shard_id, bitmap in builder.shards()}

    # --- locking ---------------------------------------------------------------------------------

    def _locked(self, registry_id: str) -> _Lock:
        return _Lock(self, registry_id)


class _Lock:
    def __init__(self, manager: RegistryManager, registry_id: str) -> None:
        self.manager = manager
        self.key = storage.lock_key(registry_id)
        self.registry_id = registry_id
        self.token = secrets.token_hex(8)

    def __enter__(self) -> _Lock:
        if not self.manager.client.set(self.key, self.token, nx=True, ex=LOCK_SECONDS):
            raise RegistryError(f"another import, change list or drop of {self.registry_id} is running "
                                f"(or one crashed less than {LOCK_SECONDS // 60} minutes ago: lock {self.key})")
        return self

    def renew(self) -> None:
        """Keep the lock while a long import makes progress (it expires soon after a crash)."""
        self.manager.client.expire(self.key, LOCK_SECONDS)

    def __exit__(self, *exc: object) -> None:
        self.manager._release(keys=[self.key], args=[self.token])


def compare(scheme: Scheme, left: dict[str, bytes], right: dict[str, bytes], samples: int = 5) -> DiffReport:
    """Counts of numbers only in ``left``, only in ``right`` and in both, with samples (E.164)."""
    report = DiffReport()
    for name in sorted(set(left) | set(right)):
        a_bytes, b_bytes = left.get(name, b""), right.get(name, b"")
        size = max(len(a_bytes), len(b_bytes))
        a = int.from_bytes(a_bytes.ljust(size, b"\0"), "big")
        b = int.from_bytes(b_bytes.ljust(size, b"\0"), "big")
        only_a, only_b = a & ~b, b & ~a
        report.both += (a & b).bit_count()
        report.only_left += only_a.bit_count()
        report.only_right += only_b.bit_count()
        shard_id = scheme.shard_id(name)
        for value, out in ((only_a, report.left_samples), (only_b, report.right_samples)):
            if value and len(out) < samples:
                bitmap = value.to_bytes(size, "big")
                out.extend(scheme.e164(shard_id, o) for o in storage.offsets(bitmap, samples - len(out)))
    return report


def check_id(registry_id: str) -> str:
    if not _ID.match(registry_id):
        raise RegistryError(f"registry id {registry_id!r}: use lower-case letters, digits, '-' or '_'")
    return registry_id


def _scheme(country: str) -> Scheme:
    try:
        return scheme_for_country(country)
    except ValueError as exc:
        raise RegistryError(str(exc)) from exc


def _source(path: str | Path | Source) -> Source:
    return path if isinstance(path, Source) else Source(path)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def registry_ages(client: redis.Redis, now: datetime | None = None) -> list[tuple[str, float, int]]:
    """Metrics hook: (registry id, age in seconds, record count) for each loaded registry."""
    return RegistryManager(client).ages(now)
