"""Batch pre-scrub: screen a whole lead list as the dial-time check would, without dialing.

One output row per input row: the input's columns unchanged, then ``result`` and ``reason``
(no number is added in any other spelling). Nothing is counted as a call attempt and the
decision log gets one summary record for the whole run, not one per number.

Speed comes from batching, never from a different decision:
- numbers are normalized with :func:`callscreen.numbers.normalize`, except NANP numbers
  spelled as 10/11 digits or ``+1…``, whose validity and geography (region, time zones,
  state) depend only on the area code and exchange: those are computed once per area code +
  exchange by ``normalize`` itself and reused (:class:`PrefixNormalizer`);
- facts are probed for thousands of numbers per round trip: one ``EXISTS`` over the number's
  fact keys; only numbers that have any record get the full :class:`~callscreen.store.FactQuery`;
- registry bits are read from the live generation's shard bitmaps, fetched once per shard
  (:class:`RegistryBits`) — the same bits the dial-time ``GETBIT`` reads;
- :func:`callscreen.decision.decide` is pure, so its answer for a number without records is
  reused for every number with the same geography and registry status;
- ``workers`` > 1 spreads batches over processes (output order is kept).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import hiredis
import phonenumbers
import redis

from blocklists import storage
from blocklists.lookup import RedisRegistryLookup
from blocklists.numbering import NANP, locate_e164
from callscreen.cluster import is_cluster_client
from callscreen.crypto import NumberVault
from callscreen.decision import ScreeningRequest, decide
from callscreen.keys import Keyring
from callscreen.models import Campaign, Decision, Facts, Reason, RegistryStatus, Result
from callscreen.nanp import Exchange, NanpExchanges
from callscreen.numbers import MAX_INPUT_LENGTH, InvalidNumber, PhoneNumber, normalize
from callscreen.policy import PolicyPack
from callscreen.rotation import vault_from_rings
from callscreen.store import (
    STORE_ERRORS,
    Command,
    FactQuery,
    RegistryLookup,
    StoreError,
    connect,
    number_key,
    run_pipeline,
)

BATCH_ROWS = 5000
NUMBER_HEADERS = ("phone", "number", "phone_number", "msisdn", "tel", "telephone", "mobile", "e164")
_SEPARATORS = re.compile(r"[\s\-.()/\u00a0\u2010-\u2015]+")  # as callscreen.numbers cleans input
_ASCII_SEPARATORS = str.maketrans("", "", " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f-.()/")  # the ASCII part of it
_NANP_REGIONS = frozenset({
    "US", "CA", "AG", "AI", "AS", "BB", "BM", "BS", "DM", "DO", "GD", "GU", "JM", "KN", "KY", "LC",
    "MP", "MS", "PR", "SX", "TC", "TT", "VC", "VG", "VI",
})


class ScrubError(ValueError):
    """The scrub cannot start (unknown campaign, no policy, unreadable file, bad column)."""


Geography = tuple[str, tuple[str, ...], str | None]  # region, time zones, subdivision: all a decision reads


def exchange_table_path(folder: Path) -> Path:
    """Where the NANP exchange table is kept; the name carries the phonenumbers version, so an
    upgrade of its metadata starts a new table."""
    return folder / f"nanp-exchanges-{phonenumbers.__version__}.json"


def load_exchanges(path: Path) -> dict[str, Exchange]:
    """The persisted exchange table ({} if missing or unreadable: it is only a cache)."""
    try:
        data = json.loads(path.read_text())
        return {k: None if v is None else (v[0], tuple(v[1]), v[2]) for k, v in data.items()}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return {}


def save_exchanges(path: Path, table: dict[str, Exchange]) -> None:
    """Write the table atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({k: None if v is None else [v[0], list(v[1]), v[2]] for k, v in table.items()},
                                    separators=(",", ":")))
    os.replace(temporary, path)


class PrefixNormalizer:
    """:func:`normalize` with a per-exchange cache for plainly spelled NANP numbers.

    NANP validity (phonenumbers' patterns end in ``\\d{4}`` after the exchange), time zones
    and geocoding depend only on the first six national digits, so each area code + exchange
    is answered once, by :class:`callscreen.nanp.NanpExchanges` (``normalize``'s answer from
    the compiled metadata, without a full parse), and reused for the other numbers.
    """

    def __init__(self, default_region: str, known: dict[str, Exchange] | None = None) -> None:
        self.default_region = default_region
        self.nanp_default = default_region.upper() in _NANP_REGIONS
        self._cache: dict[str, Exchange] = dict(known or {})
        self.learned: dict[str, Exchange] = {}  # exchanges resolved here (to persist)
        self._exchanges: NanpExchanges | None = None

    def __call__(self, raw: str) -> PhoneNumber:
        found = self.locate(raw)
        if found is None:
            raise InvalidNumber(f"not a valid number: {raw!r}")
        return PhoneNumber(found[0], *found[1])

    def locate(self, raw: str) -> tuple[str, Geography] | None:
        """``(e164, (region, time zones, subdivision))`` as :func:`normalize` answers, or None
        for what it refuses (no PhoneNumber is built: the scrub needs only these)."""
        if len(raw) > MAX_INPUT_LENGTH:
            return None  # normalize refuses it
        text = raw.translate(_ASCII_SEPARATORS) if raw.isascii() else _SEPARATORS.sub("", raw.strip())
        nsn = None
        if text.startswith("+1") and len(text) == 12 and text[1:].isdigit():
            nsn = text[2:]
        elif self.nanp_default and text.isdigit() and text.isascii():
            if len(text) == 10:
                nsn = text
            elif len(text) == 11 and text[0] == "1":
                nsn = text[1:]
        if nsn is None or not nsn.isascii():
            try:
                number = normalize(raw, self.default_region)
            except InvalidNumber:
                return None
            return number.e164, (number.region, number.timezones, number.subdivision)
        prefix = nsn[:6]
        try:
            entry = self._cache[prefix]
        except KeyError:
            if self._exchanges is None:
                self._exchanges = NanpExchanges()
            entry = self._cache[prefix] = self.learned[prefix] = self._exchanges.exchange(nsn)
        return None if entry is None else ("+1" + nsn, entry)


@dataclass(slots=True)
class ScrubSummary:
    campaign_id: str
    at: datetime
    rows: int = 0
    allowed: int = 0
    blocked: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    bad_rows: int = 0
    bad_samples: list[tuple[int, str]] = field(default_factory=list)  # (line, why)
    seconds: float = 0.0
    learned_exchanges: dict[str, Exchange] = field(default_factory=dict)  # to persist (not logged)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def as_record(self, source: str) -> dict[str, Any]:
        """What the summary log record holds (no number, only counts)."""
        return {
            "source": source, "at": self.at.isoformat(), "rows": self.rows, "allowed": self.allowed,
            "blocked": self.blocked, "reasons": dict(sorted(self.reasons.items())),
            "bad_rows": self.bad_rows, "seconds": round(self.seconds, 3),
        }


_FACT_KINDS = (*FactQuery.KINDS, "attempts", "erased")  # an erased number must get its full query
if number_key("d", "") + "x" != number_key("d", "x"):  # the scrub builds fact keys as a prefix + kind
    raise ImportError("callscreen.store.number_key no longer ends with the kind")


class RegistryBits:
    """Registry answers for a scrub, read from the shard bitmaps of the live generation.

    The dial-time path asks Redis one ``GETBIT`` per number; a scrub of a million numbers asks
    for each *shard* once (at most ~330 for the US) and reads the bits locally — same
    generation, same answer. If the generation is retired and expires before a shard is
    fetched (a scrub running past the grace period of a reload), the scrub stops with an error
    rather than read a missing shard as "not listed".
    """

    def __init__(self, client: redis.Redis, lookup: RedisRegistryLookup, registry_ids: Sequence[str]) -> None:
        self.client = client
        self.registry_ids = tuple(registry_ids)
        self.snapshot = lookup.refresh()
        self._bitmaps: dict[tuple[str, int, str], bytes] = {}
        self._statuses: dict[tuple[bool, ...], tuple[RegistryStatus, ...]] = {}

    def statuses(self, e164: str) -> tuple[RegistryStatus, ...]:
        if len(e164) == 12 and e164[1] == "1":  # NANP, already validated: area code + 7 digits
            shard, offset = "1:" + e164[2:5], int(e164[5:]) - NANP.base
        else:
            shard, offset = locate_e164(e164)
        byte, mask = offset >> 3, 0x80 >> (offset & 7)
        flags = []
        for registry_id in self.registry_ids:
            entry = self.snapshot.registries.get(registry_id)
            if entry is None:
                flags.append(False)
                continue
            bitmap = self._bitmaps.get((registry_id, entry[0], shard))
            if bitmap is None:
                bitmap = self._fetch(registry_id, entry[0], shard)
            flags.append(byte < len(bitmap) and bool(bitmap[byte] & mask))
        pattern = tuple(flags)
        found = self._statuses.get(pattern)
        if found is None:
            found = self._statuses[pattern] = tuple(
                RegistryStatus(rid, listed, entry[1] if entry else None)
                for rid, listed, entry in zip(self.registry_ids, pattern,
                                              (self.snapshot.registries.get(r) for r in self.registry_ids),
                                              strict=True))
        return found

    def _fetch(self, registry_id: str, generation: int, shard: str) -> bytes:
        bitmap, alive = run_pipeline(self.client, [
            ("GET", storage.shard_key(registry_id, generation, shard)),
            ("EXISTS", storage.shards_key(registry_id, generation)),
        ])
        if isinstance(bitmap, Exception) or isinstance(alive, Exception):
            raise StoreError(f"registry {registry_id} unreadable: {bitmap if isinstance(bitmap, Exception) else alive}")
        if not alive:
            raise StoreError(f"registry {registry_id} was replaced while the scrub ran; run the scrub again")
        self._bitmaps[(registry_id, generation, shard)] = bitmap or b""
        return bitmap or b""


def bulk(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Send many commands in one write and read every reply: the pipeline without its per-command
    Python bookkeeping (hiredis packs the commands). Errors come back as exceptions in the list.
    A cluster client has no single connection: its commands go through :func:`run_pipeline`,
    which sends each node its share."""
    if is_cluster_client(client):
        return run_pipeline(client, commands)
    connection = client.connection_pool.get_connection()
    try:
        connection.send_packed_command([b"".join(map(hiredis.pack_command, commands))], check_health=False)
        replies = []
        read = connection.read_response
        for _ in range(len(commands)):
            try:
                replies.append(read(disable_decoding=True))
            except redis.ResponseError as exc:
                replies.append(exc)
        return replies
    except (*STORE_ERRORS, OSError) as exc:
        connection.disconnect()
        raise StoreError(f"store unavailable: {exc}") from exc
    finally:
        client.connection_pool.release(connection)


class BatchScreener:
    """Decides a batch of raw numbers for one campaign at one moment (no logging, no attempts)."""

    def __init__(self, client: redis.Redis, vault: NumberVault, campaign: Campaign, pack: PolicyPack,
                 at: datetime, registries: RegistryLookup | None,
                 exchanges: dict[str, Exchange] | None = None) -> None:
        self.client = client
        self.vault = vault
        self.campaign = campaign
        self.pack = pack
        self.at = at
        self.registries = registries
        self.registry_ids = pack.all_registries() if campaign.advertising else ()
        self.normalizer = PrefixNormalizer(campaign.default_region, exchanges)
        self._memo: dict[tuple[Any, ...], Decision] = {}
        self._bits: RegistryBits | None = None
        if isinstance(registries, RedisRegistryLookup) and self.registry_ids:
            self._bits = RegistryBits(client, registries, self.registry_ids)

    def screen(self, raws: Sequence[str]) -> list[tuple[Result, Reason]]:
        """(result, reason) per raw number, in order."""
        if self.vault.hashes is not None and self.vault.hashes.current()[1] is not None:
            raise StoreError("the hash key is being rotated: scrub again once `callscreen keys status` shows it done")
        numbers: list[PhoneNumber | None] = []
        normalizer = self.normalizer
        for raw in raws:
            try:
                numbers.append(normalizer(raw))
            except InvalidNumber:
                numbers.append(None)
        digest = self.vault.digest
        digests = [digest(n.e164) if n else "" for n in numbers]
        kinds = _FACT_KINDS
        commands: list[Command] = []
        per_number = 1
        for number, key in zip(numbers, digests, strict=True):
            if number is None:
                continue
            base = number_key(key, "")
            commands.append(("EXISTS", *[base + kind for kind in kinds]))
            if self._bits is None and self.registries is not None:
                planned = self.registries.commands(number, self.registry_ids)
                per_number = 1 + len(planned)
                commands.extend(planned)
        replies = bulk(self.client, commands) if commands else []
        out: list[tuple[Result, Reason]] = []
        index = 0
        full: list[int] = []
        for position, (raw, number) in enumerate(zip(raws, numbers, strict=True)):
            if number is None:
                out.append((Result.BLOCK, Reason.INVALID_NUMBER))
                continue
            mine = replies[index:index + per_number]
            index += per_number
            if isinstance(mine[0], Exception):
                raise StoreError(f"fact lookup failed: {mine[0]}")
            if mine[0]:  # the number has records: gather its facts in full below
                full.append(position)
                out.append((Result.BLOCK, Reason.SCREENING_UNAVAILABLE))
                continue
            if self._bits is not None:
                statuses = self._bits.statuses(number.e164)
            elif self.registries is not None:
                statuses = self.registries.parse(number, self.registry_ids, mine[1:])
            else:
                statuses = ()
            out.append(self._decide_empty(raw, number, statuses))
        if full:
            self._screen_full(raws, numbers, digests, full, out)
        return out

    def _decide_empty(self, raw: str, number: PhoneNumber, statuses: tuple[Any, ...]) -> tuple[Result, Reason]:
        key = (number.region, number.timezones, number.subdivision, statuses)
        decision = self._memo.get(key)
        if decision is None:
            facts = Facts(registries=statuses)
            decision = decide(ScreeningRequest(raw, number, self.campaign, self.at), facts, self.pack)
            if len(self._memo) > 100_000:
                self._memo.clear()
            self._memo[key] = decision
        return decision.result, decision.reason

    def _screen_full(self, raws: Sequence[str], numbers: Sequence[PhoneNumber | None], digests: Sequence[str],
                     positions: list[int], out: list[tuple[Result, Reason]]) -> None:
        queries = []
        commands: list[Any] = []
        for position in positions:
            number = numbers[position]
            assert number is not None
            query = FactQuery(number, digests[position], self.at, self.registry_ids, self.registries,
                              attempt_limit=self.pack.attempt_read_limit,
                              erasure=self.vault.erasure_digests(number.e164))
            planned = query.commands()
            queries.append((position, query, len(planned)))
            commands.extend(planned)
        replies = run_pipeline(self.client, commands)
        index = 0
        for position, query, size in queries:
            facts = query.parse(replies[index:index + size])
            index += size
            number = numbers[position]
            decision = decide(ScreeningRequest(raws[position], number, self.campaign, self.at), facts, self.pack)
            out[position] = (decision.result, decision.reason)


# --- the CSV run ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ScrubJob:
    """What a worker process needs to rebuild a BatchScreener."""

    redis_url: str
    hash_key: bytes | Keyring  # the rings, so workers follow key rotations too
    encryption_key: bytes | Keyring
    campaign: Campaign
    pack: PolicyPack
    at: datetime
    exchanges: dict[str, Exchange] = field(default_factory=dict)


_worker: BatchScreener | None = None


def _init_worker(job: ScrubJob) -> None:
    global _worker
    client = connect(job.redis_url, timeout=30)
    _worker = BatchScreener(client, vault_from_rings(job.hash_key, job.encryption_key, client), job.campaign, job.pack,
                            job.at, RedisRegistryLookup(client), job.exchanges)


_ANSWERS = [(result, reason) for result in Result for reason in Reason]
_ANSWER_CODE = {answer: code for code, answer in enumerate(_ANSWERS)}


def _work(raws: list[str]) -> tuple[bytes, dict[str, Exchange]]:
    """Answers of a batch as one byte each (cheap to send back from a worker process), and the
    exchanges the worker normalized for it."""
    assert _worker is not None
    answers = bytes(_ANSWER_CODE[answer] for answer in _worker.screen(raws))
    learned, _worker.normalizer.learned = _worker.normalizer.learned, {}
    return answers, learned


class _Decoded:
    def __init__(self, pending: Any, learned: dict[str, Exchange]) -> None:
        self.pending = pending
        self.learned = learned

    def get(self) -> list[tuple[Result, Reason]]:
        answers, learned = self.pending.get()
        self.learned.update(learned)
        return [_ANSWERS[code] for code in answers]


def _number_column(header: list[str] | None, column: str | None) -> int:
    if column is not None and column.strip().isdigit():
        index = int(column) - 1
        if index < 0:
            raise ScrubError("--column counts from 1")
        return index
    if header is None:
        if column is not None:
            raise ScrubError(f"--column {column!r} names a column, but the file has no header")
        return 0
    names = [h.strip().lower() for h in header]
    if column is not None:
        if column.strip().lower() not in names:
            raise ScrubError(f"no column named {column!r} in the header")
        return names.index(column.strip().lower())
    return next((names.index(n) for n in NUMBER_HEADERS if n in names), 0)


def _batches(reader: Any, index: int, size: int) -> Iterator[tuple[list[list[str]], list[str], list[int]]]:
    """Batches of (rows, the number cell of each, the line each row ends on)."""
    rows: list[list[str]] = []
    raws: list[str] = []
    lines: list[int] = []
    for row in reader:
        rows.append(row)
        raws.append(row[index] if index < len(row) else "")
        lines.append(reader.line_num)
        if len(rows) >= size:
            yield rows, raws, lines
            rows, raws, lines = [], [], []
    if rows:
        yield rows, raws, lines


def scrub_csv(screener_or_job: BatchScreener | ScrubJob, source: str | Path, out: io.TextIOBase | Any, *,
              column: str | None = None, header: bool = True, workers: int = 1, batch_rows: int = BATCH_ROWS,
              bad_limit: int = 100, progress: Callable[[int], None] | None = None) -> ScrubSummary:
    """Scrub ``source`` into the text stream ``out``; returns the counts (the caller logs them).

    ``screener_or_job`` is a ready BatchScreener (one process) or a ScrubJob (``workers``
    processes). Invalid numbers and rows without a number come out as BLOCK invalid_number and
    are counted in ``bad_rows`` with their line numbers.
    """
    started = time.perf_counter()
    summary = ScrubSummary(screener_or_job.campaign.id, screener_or_job.at)
    try:
        handle = open(source, encoding="utf-8-sig", errors="replace", newline="")  # noqa: SIM115
    except OSError as exc:
        raise ScrubError(f"cannot read {source}: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        writer = csv.writer(out, lineterminator="\n")
        head = next(reader, None) if header else None
        index = _number_column(head, column)
        if head is not None:
            writer.writerow([*head, "result", "reason"])
        batches = _batches(reader, index, batch_rows)
        if isinstance(screener_or_job, ScrubJob) and workers > 1:
            context = multiprocessing.get_context("fork")
            with context.Pool(workers, _init_worker, (screener_or_job,)) as pool:
                pending = ((rows, raws, lines, _Decoded(pool.apply_async(_work, (raws,)), summary.learned_exchanges))
                           for rows, raws, lines in batches)
                _drain(_lookahead(pending, workers * 2), writer, summary, index, bad_limit, progress)
        else:
            screener = screener_or_job
            if isinstance(screener, ScrubJob):
                _init_worker(screener)
                screener = _worker
            assert isinstance(screener, BatchScreener)
            done = ((rows, raws, lines, _Done(screener.screen(raws))) for rows, raws, lines in batches)
            _drain(done, writer, summary, index, bad_limit, progress)
            summary.learned_exchanges.update(screener.normalizer.learned)
    summary.seconds = time.perf_counter() - started
    return summary


class _Done:
    def __init__(self, value: list[tuple[Result, Reason]]) -> None:
        self.value = value

    def get(self) -> list[tuple[Result, Reason]]:
        return self.value


def _lookahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Keep ``depth`` batches in flight so the worker processes never wait for the reader."""
    queue: list[Any] = []
    for item in items:
        queue.append(item)
        if len(queue) > depth:
            yield queue.pop(0)
    yield from queue


def _drain(results: Iterator[tuple[list[list[str]], list[str], list[int], Any]], writer: Any,
           summary: ScrubSummary, index: int, bad_limit: int, progress: Callable[[int], None] | None) -> None:
    for rows, raws, lines, pending in results:
        answers = pending.get()
        if len(answers) != len(rows):
            raise ScrubError("internal error: a batch came back with a different number of answers")
        # Result and Reason are StrEnums: the csv module writes their values
        writer.writerows([*row, result, reason] for row, (result, reason) in zip(rows, answers, strict=True))
        summary.rows += len(rows)
        for (result, reason), count in Counter(answers).items():
            summary.reasons[reason.value] += count
            if result is Result.ALLOW:
                summary.allowed += count
            else:
                summary.blocked += count
            if reason is Reason.INVALID_NUMBER:
                summary.bad_rows += count
        if Reason.INVALID_NUMBER in summary.reasons and len(summary.bad_samples) < bad_limit:
            for raw, line, (_result, reason) in zip(raws, lines, answers, strict=True):
                if reason is Reason.INVALID_NUMBER and len(summary.bad_samples) < bad_limit:
                    why = "not a valid phone number" if raw.strip() else f"no number in column {index + 1}"
                    summary.bad_samples.append((line, why))
        if progress:
            progress(len(rows))
