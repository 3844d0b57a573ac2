"""Batch pre-scrub: screen a whole lead list as the dial-time check would, without dialing.

One output row per input row: the input's columns unchanged, then ``result`` and ``reason``
(no number is added in any other spelling). Nothing is counted as a call attempt and the
decision log gets one summary record for the whole run, not one per number.

Speed comes from batching, never from a different decision:
- numbers are located as :func:`callscreen.numbers.normalize` would (:mod:`blocklists.lead_numbers`):
  plainly spelled NANP numbers with numpy over the whole batch, each area code + exchange
  answered once from phonenumbers' compiled metadata (:class:`callscreen.nanp.NanpExchanges`,
  equal to ``normalize`` by construction and by test); other spellings by ``normalize``;
- facts are probed for thousands of numbers per round trip: ``EXISTS`` over the numbers'
  fact keys, several numbers per command while few have records; only numbers that have any
  record get the full :class:`~callscreen.store.FactQuery`;
- registry bits are read in the same round trip from the live generation's shards — the same
  bits the dial-time ``GETBIT`` reads — with ``BITFIELD_RO``, or from a copy of a shard read
  often (:mod:`blocklists.registry_bits`);
- :func:`callscreen.decision.decide` is pure, so its answer for a number without records is
  reused for every number with the same geography and registry status;
- plain CSV lines (no quotes) travel as text: a worker splits them, and returns each line
  with ``,result,reason`` appended — what the csv module would write; other lines go through
  the csv module;
- ``workers`` > 1 spreads batches over processes (output order is kept).
"""

from __future__ import annotations

import csv
import functools
import io
import multiprocessing
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import chain
from pathlib import Path
from typing import Any

import hiredis
import numpy as np
import redis

from blocklists.lead_numbers import LeadNumbers, Located, is_nanp_region
from blocklists.lookup import RedisRegistryLookup
from blocklists.registry_bits import COPY_BUDGET, Planned, RegistryBits
from callscreen.cluster import is_cluster_client
from callscreen.crypto import NumberVault
from callscreen.decision import ScreeningRequest, decide
from callscreen.keys import Keyring
from callscreen.models import Campaign, Facts, Reason, Result
from callscreen.nanp import Exchange, NanpExchanges, deep_areas
from callscreen.numbers import PhoneNumber
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


class ScrubError(ValueError):
    """The scrub cannot start (unknown campaign, no policy, unreadable file, bad column)."""


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
_LINE_CHARS = 32  # a batch of n rows is read as n * 32 characters (then to the end of a line)
PROBE_GROUP = 8  # numbers per EXISTS while few numbers have records (one reply for the whole group)


def bulk(client: redis.Redis, commands: Sequence[Command], wire: bytes = b"", wire_count: int = 0) -> list[Any]:
    """Send many commands in one write and read every reply: the pipeline without its per-command
    Python bookkeeping (hiredis packs the commands). ``wire`` holds ``wire_count`` commands
    already in the protocol's form, sent first. Errors come back as exceptions in the list.
    A cluster client has no single connection: its commands go through :func:`run_pipeline`,
    which sends each node its share."""
    if not commands and not wire_count:
        return []
    if is_cluster_client(client):
        if wire_count:
            raise ValueError("a cluster client takes commands, not protocol bytes")
        return run_pipeline(client, commands)
    connection = client.connection_pool.get_connection()
    try:
        connection.send_packed_command([wire + b"".join(map(hiredis.pack_command, commands))], check_health=False)
        replies = []
        read = connection.read_response
        for _ in range(wire_count + len(commands)):
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


def _probe(digest: str) -> Command:
    """``EXISTS`` over one number's fact keys."""
    return ("EXISTS", *[number_key(digest, kind) for kind in _FACT_KINDS])


def _probe_wire(digests: Sequence[str], group: int) -> tuple[bytes, int]:
    """``EXISTS`` over the fact keys of ``group`` numbers at a time, in the protocol's form, built
    with numpy for the whole batch (each number's keys are a fixed template with its digest at
    fixed places); and the count of commands."""
    if not digests:
        return b"", 0
    count, width = len(digests), len(digests[0])
    rows = np.frombuffer("".join(digests).encode("ascii"), dtype=np.uint8)
    if len(rows) != count * width:
        raise ValueError("digests of different lengths")
    rows = rows.reshape(count, width)
    template, places = _probe_template(width)
    size = len(template)
    numbers = np.tile(template, (count, 1))
    for at in places:
        numbers[:, at:at + width] = rows
    full, rest = divmod(count, group)
    wire = []
    if full:
        head = np.frombuffer(_probe_head(group), dtype=np.uint8)
        grouped = numbers[:full * group].reshape(full, group * size)
        wire.append(np.hstack([np.broadcast_to(head, (full, len(head))), grouped]).tobytes())
    if rest:
        wire.append(_probe_head(rest) + numbers[full * group:].tobytes())
    return b"".join(wire), full + (rest > 0)


def _probe_head(numbers: int) -> bytes:
    return f"*{1 + len(_FACT_KINDS) * numbers}\r\n$6\r\nEXISTS\r\n".encode("ascii")


@functools.cache
def _probe_template(digest_length: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """One number's fact keys as ``EXISTS`` arguments in the protocol's form with the digest left
    blank (read-only), and the places the digest goes."""
    blank = "\0" * digest_length
    text = "".join(f"${len(key)}\r\n{key}\r\n" for key in (number_key(blank, kind) for kind in _FACT_KINDS))
    places, at = [], text.find(blank)
    while at >= 0:
        places.append(at)
        at = text.find(blank, at + digest_length)
    return np.frombuffer(text.encode("ascii"), dtype=np.uint8), tuple(places)


_ANSWERS = [(result, reason) for result in Result for reason in Reason]
_ANSWER_CODE = {answer: code for code, answer in enumerate(_ANSWERS)}
_ANSWER_TEXT = [f"{result},{reason}" for result, reason in _ANSWERS]  # as csv.writer writes them
_INVALID = _ANSWER_CODE[(Result.BLOCK, Reason.INVALID_NUMBER)]
_UNAVAILABLE = _ANSWER_CODE[(Result.BLOCK, Reason.SCREENING_UNAVAILABLE)]
if len(_ANSWERS) > 256:
    raise ImportError("scrub answers no longer fit in a byte")


class BatchScreener:
    """Decides a batch of raw numbers for one campaign at one moment (no logging, no attempts).

    Per batch: the numbers are located (:class:`~blocklists.lead_numbers.LeadNumbers`), hashed, and probed for
    records with ``EXISTS`` over their fact keys — :data:`PROBE_GROUP` numbers per command
    while few have records (a group answering 0 has none; the numbers of the other groups are
    probed one by one) — in the same round trip as the registry bits. A number with records
    gets the full :class:`~callscreen.store.FactQuery`; the answer for a number without records
    depends only on its geography and registry statuses, so it is decided once and reused.
    """

    def __init__(self, client: redis.Redis, vault: NumberVault, campaign: Campaign, pack: PolicyPack,
                 at: datetime, registries: RegistryLookup | None,
                 exchanges: dict[str, Exchange] | None = None, *, copy_budget: int = COPY_BUDGET) -> None:
        self.client = client
        self.vault = vault
        self.campaign = campaign
        self.pack = pack
        self.at = at
        self.registries = registries
        self.registry_ids = pack.all_registries() if campaign.advertising else ()
        self._attempt_limit = pack.attempt_read_limit  # (the pack is fixed for the screener's life)
        self.numbers = LeadNumbers(campaign.default_region, exchanges)
        self._memo: dict[Any, int] = {}  # (geography, registry statuses) -> answer
        self._bits: RegistryBits | None = None
        if isinstance(registries, RedisRegistryLookup) and self.registry_ids:
            self._bits = RegistryBits(registries, self.registry_ids, copy_budget=copy_budget)
        self._group = 1 if is_cluster_client(client) else PROBE_GROUP  # a cluster's EXISTS stays in one slot

    def screen(self, raws: Sequence[str]) -> list[tuple[Result, Reason]]:
        """(result, reason) per raw number, in order."""
        return [_ANSWERS[code] for code in self.screen_codes(raws)]

    def screen_codes(self, raws: Sequence[str]) -> bytearray:
        """The answers as one byte per raw number (an index into ``_ANSWERS``)."""
        if self.vault.hashes is not None and self.vault.hashes.current()[1] is not None:
            raise StoreError("the hash key is being rotated: scrub again once `callscreen keys status` shows it done")
        codes = bytearray([_INVALID]) * len(raws)
        located = self.numbers.locate_batch(raws)
        if not len(located.rows):
            return codes
        e164s = located.e164s
        digests = self.vault.digests(e164s)
        group = self._group
        wire, probe_count, probes = b"", 0, []
        if is_cluster_client(self.client):
            probes = [_probe(digest) for digest in digests]
            probe_count = len(probes)
        else:
            wire, probe_count = _probe_wire(digests, group)
        registry: list[Command] = []
        planned: Planned | None = None
        numbers: list[PhoneNumber] | None = None
        if self._bits is not None:
            registry, planned = self._bits.plan(e164s)
        elif self.registries is not None and self.registry_ids:
            numbers = [self._number(located, j) for j in range(len(e164s))]
            registry = [c for n in numbers for c in self.registries.commands(n, self.registry_ids)]
        replies = bulk(self.client, probes + registry, wire, 0 if probes else probe_count)
        with_records = self._with_records(digests, replies[:probe_count])
        read_with_batch: tuple[np.ndarray, Callable[[int], tuple[Any, ...]]] | None = None
        if self._bits is not None:
            assert planned is not None
            patterns = np.array(self._bits.read(planned, replies[probe_count:]), dtype=np.int64)
            self._decide_all(raws, located, patterns, self._bits.statuses, with_records, codes)
            read_with_batch = (patterns, self._bits.statuses)
        elif numbers is None:  # no registry to read: every number's statuses are ()
            self._decide_all(raws, located, np.zeros(len(e164s), dtype=np.int64), _no_statuses, with_records, codes)
        else:  # a registry lookup other than Redis's: statuses as it parses them
            statuses = self._statuses(numbers, len(e164s), replies[probe_count:])
            for j, row in enumerate(located.rows.tolist()):
                if j not in with_records:
                    key = (int(located.geographies[j]), statuses[j])
                    code = self._memo.get(key)
                    codes[row] = code if code is not None else self._decide_empty(
                        raws[row], self._number(located, j), statuses[j], key)
        if with_records:
            self._screen_full(raws, located, digests, sorted(with_records), codes, read_with_batch)
        return codes

    def _number(self, located: Located, j: int) -> PhoneNumber:
        return PhoneNumber(located.e164s[j], *self.numbers.geographies[int(located.geographies[j])])

    def _decide_all(self, raws: Sequence[str], located: Located, patterns: np.ndarray,
                    statuses_of: Callable[[int], tuple[Any, ...]], with_records: set[int], codes: bytearray) -> None:
        """The answers for the numbers without records: one decision per geography and registry
        pattern (all such a decision reads; ``statuses_of`` turns a pattern into statuses),
        remembered across batches."""
        keep = np.ones(len(patterns), dtype=bool)
        keep[list(with_records)] = False
        keys = located.geographies[keep] * (1 << len(self.registry_ids)) + patterns[keep]
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        places = np.flatnonzero(keep)
        answers = np.empty(len(unique), dtype=np.uint8)
        for u, (j, key) in enumerate(zip(places[first].tolist(), unique.tolist(), strict=True)):
            code = self._memo.get(key)
            if code is None:
                code = self._decide_empty(raws[int(located.rows[j])], self._number(located, j),
                                          statuses_of(int(patterns[j])), key)
            answers[u] = code
        np.frombuffer(codes, dtype=np.uint8)[located.rows[keep]] = answers[inverse]

    def _with_records(self, digests: list[str], probes: Sequence[Any]) -> set[int]:
        """Which numbers (by position) have any fact key; adapts the probe group size."""
        group = self._group
        found: set[int] = set()
        suspects: list[int] = []
        for g, reply in enumerate(probes):
            if isinstance(reply, Exception):
                raise StoreError(f"fact lookup failed: {reply}")
            if reply:
                suspects.extend(range(g * group, min(len(digests), (g + 1) * group)))
        if group == 1:
            found.update(suspects)
        elif suspects:
            replies = bulk(self.client, [_probe(digests[j]) for j in suspects])
            for j, reply in zip(suspects, replies, strict=True):
                if isinstance(reply, Exception):
                    raise StoreError(f"fact lookup failed: {reply}")
                if reply:
                    found.add(j)
        if not is_cluster_client(self.client):  # groups pay off only while few numbers have records
            self._group = PROBE_GROUP if len(found) * 20 < len(digests) else 1
        return found

    def _statuses(self, numbers: list[PhoneNumber] | None, count: int, replies: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Statuses through the registry lookup's own commands (a lookup other than Redis's)."""
        if numbers is None or self.registries is None:
            return [()] * count
        size = len(replies) // max(len(numbers), 1)
        return [self.registries.parse(n, self.registry_ids, replies[j * size:(j + 1) * size])
                for j, n in enumerate(numbers)]

    def _decide_empty(self, raw: str, number: PhoneNumber, statuses: tuple[Any, ...], key: Any) -> int:
        """The decision for a number without records; remembered under ``key`` (its geography
        and registry pattern: all that such a decision reads)."""
        decision = decide(ScreeningRequest(raw, number, self.campaign, self.at), Facts(registries=statuses), self.pack)
        if len(self._memo) > 100_000:
            self._memo.clear()
        code = self._memo[key] = _ANSWER_CODE[(decision.result, decision.reason)]
        return code

    def _screen_full(self, raws: Sequence[str], located: Located, digests: list[str], positions: list[int],
                     codes: bytearray,
                     read_with_batch: tuple[np.ndarray, Callable[[int], tuple[Any, ...]]] | None = None) -> None:
        """The full query and decision for the numbers at ``positions`` (those with records).

        ``read_with_batch`` holds the batch's registry patterns and what each stands for: then
        the registries are not read again per number, and these numbers are decided on the
        same registry answers as the batch's others."""
        registry_ids, registries = (self.registry_ids, self.registries) if read_with_batch is None else ((), None)
        queries = []
        commands: list[Any] = []
        for j in positions:
            number = self._number(located, j)
            query = FactQuery(number, digests[j], self.at, registry_ids, registries,
                              attempt_limit=self._attempt_limit, erasure=self.vault.erasure_digests(number.e164))
            planned = query.commands()
            queries.append((j, number, query, len(planned)))
            commands.extend(planned)
        replies = run_pipeline(self.client, commands)
        index = 0
        for j, number, query, size in queries:
            facts = query.parse(replies[index:index + size])
            index += size
            if read_with_batch is not None:
                patterns, statuses_of = read_with_batch
                facts = replace(facts, registries=statuses_of(int(patterns[j])))
            i = int(located.rows[j])
            decision = decide(ScreeningRequest(raws[i], number, self.campaign, self.at), facts, self.pack)
            codes[i] = _ANSWER_CODE[(decision.result, decision.reason)]


def _no_statuses(_pattern: int) -> tuple[()]:
    return ()


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
    copy_budget: int = COPY_BUDGET  # bytes of registry shard copies per process


@dataclass(frozen=True, slots=True)
class _Batch:
    """A run of input rows: ``text`` (lines without quotes or carriage returns, where a
    line is a row and its cells are split on commas) or, for the others, the parsed ``rows``."""

    first_line: int  # the line before the batch's first row
    text: str | None = None
    rows: list[list[str]] | None = None
    lines: list[int] | None = None  # the line each parsed row ends on


@dataclass(slots=True)
class _Screened:
    codes: bytes
    text: str | None  # the output rows of a text batch
    bad: list[tuple[int, bool]]  # (line, the cell is blank) of the first invalid rows
    learned: dict[str, Exchange]


def _screen_batch(screener: BatchScreener, batch: _Batch, index: int, bad_limit: int) -> _Screened:
    """One batch through the screener; a text batch comes back as output text, each line the
    input line unchanged plus ``,result,reason`` (what csv.writer writes for these rows)."""
    if batch.text is not None:
        lines = batch.text.split("\n")
        if lines[-1] == "":
            lines.pop()
        raws = [cells[index] if index < len(cells) else "" for cells in (line.split(",") for line in lines)]
        ends = range(batch.first_line + 1, batch.first_line + 1 + len(lines))
    else:
        assert batch.rows is not None and batch.lines is not None
        raws = [row[index] if index < len(row) else "" for row in batch.rows]
        ends = batch.lines
    codes = screener.screen_codes(raws)
    text = None
    if batch.text is not None:
        answers = _ANSWER_TEXT
        text = "".join([f"{line},{answers[code]}\n" if line else f"{answers[code]}\n"
                        for line, code in zip(lines, codes, strict=True)])
    bad = []
    if _INVALID in codes:
        for raw, line, code in zip(raws, ends, codes, strict=True):
            if code == _INVALID:
                bad.append((line, not raw.strip()))
                if len(bad) >= bad_limit:
                    break
    learned, screener.numbers.learned = screener.numbers.learned, {}
    return _Screened(bytes(codes), text, bad, learned)


_worker: BatchScreener | None = None


def _init_worker(job: ScrubJob) -> None:
    global _worker
    client = connect(job.redis_url, timeout=30)
    _worker = BatchScreener(client, vault_from_rings(job.hash_key, job.encryption_key, client), job.campaign, job.pack,
                            job.at, RedisRegistryLookup(client), job.exchanges, copy_budget=job.copy_budget)


def _work(batch: _Batch, index: int, bad_limit: int) -> _Screened:
    assert _worker is not None
    return _screen_batch(_worker, batch, index, bad_limit)


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


def _has_long_line(text: str) -> bool:
    """Whether a line is longer than the csv module's cell limit (it refuses such a cell)."""
    limit = csv.field_size_limit()
    return len(text) > limit and max(map(len, text.split("\n"))) > limit


def _batches(handle: Any, size: int, line: int) -> Iterator[_Batch]:
    """Batches of about ``size`` rows. Lines without a quote or lone carriage return are
    rows as they stand (the common lead list, ``\\n`` or ``\\r\\n`` line ends), sent as text; a
    batch with any of them is parsed by the csv module, following a quoted cell past the
    batch's last line if it runs on."""
    chars = max(size, 1) * _LINE_CHARS
    while text := handle.read(chars):
        if not text.endswith("\n"):
            text += handle.readline()  # the rest of the last line (or a quoted cell's line)
        plain = text.replace("\r\n", "\n") if "\r" in text else text
        if '"' not in plain and "\r" not in plain and not _has_long_line(plain):
            yield _Batch(line, text=plain)
            line += plain.count("\n") + (not plain.endswith("\n"))
            continue
        lines = list(io.StringIO(text, newline=""))  # the lines a file iterator gives
        reader = csv.reader(chain(lines, handle))
        rows: list[list[str]] = []
        ends: list[int] = []
        try:
            for row in reader:
                rows.append(row)
                ends.append(line + reader.line_num)
                if reader.line_num >= len(lines):
                    break
        except csv.Error as exc:
            raise ScrubError(f"line {line + reader.line_num}: {exc}") from exc
        yield _Batch(line, rows=rows, lines=ends)
        line += reader.line_num


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
        writer = csv.writer(out, lineterminator="\n")
        head = None
        line = 0
        if header:
            reader = csv.reader(handle)
            try:
                head = next(reader, None)
            except csv.Error as exc:
                raise ScrubError(f"line {reader.line_num}: {exc}") from exc
            line = reader.line_num
        index = _number_column(head, column)
        if head is not None:
            writer.writerow([*head, "result", "reason"])
        batches = _batches(handle, batch_rows, line)
        if isinstance(screener_or_job, ScrubJob) and workers > 1:
            if is_nanp_region(screener_or_job.campaign.default_region):
                NanpExchanges.shared().prepare_for_many()  # loaded once here, inherited by the forked workers
            deep_areas()  # (read from the patterns once, here too)
            context = multiprocessing.get_context("fork")
            with context.Pool(workers, _init_worker, (screener_or_job,)) as pool:
                pending = ((batch, pool.apply_async(_work, (batch, index, bad_limit))) for batch in batches)
                _drain(_lookahead(pending, workers * 2), writer, out, summary, index, bad_limit, progress)
        else:
            screener = screener_or_job
            if isinstance(screener, ScrubJob):
                _init_worker(screener)
                screener = _worker
            assert isinstance(screener, BatchScreener)
            done = ((batch, _Done(_screen_batch(screener, batch, index, bad_limit))) for batch in batches)
            _drain(done, writer, out, summary, index, bad_limit, progress)
    summary.seconds = time.perf_counter() - started
    return summary


class _Done:
    def __init__(self, value: _Screened) -> None:
        self.value = value

    def get(self) -> _Screened:
        return self.value


def _lookahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Keep ``depth`` batches in flight so the worker processes never wait for the reader."""
    queue: deque[Any] = deque()
    for item in items:
        queue.append(item)
        if len(queue) > depth:
            yield queue.popleft()
    yield from queue


def _drain(results: Iterator[tuple[_Batch, Any]], writer: Any, out: Any, summary: ScrubSummary, index: int,
           bad_limit: int, progress: Callable[[int], None] | None) -> None:
    for batch, pending in results:
        screened: _Screened = pending.get()
        if batch.text is not None:
            assert screened.text is not None
            out.write(screened.text)
        else:
            assert batch.rows is not None
            if len(screened.codes) != len(batch.rows):
                raise ScrubError("internal error: a batch came back with a different number of answers")
            # Result and Reason are StrEnums: the csv module writes their values
            writer.writerows([*row, *_ANSWERS[code]] for row, code in zip(batch.rows, screened.codes, strict=True))
        summary.learned_exchanges.update(screened.learned)
        summary.rows += len(screened.codes)
        for code, count in Counter(screened.codes).items():
            result, reason = _ANSWERS[code]
            summary.reasons[reason.value] += count
            if result is Result.ALLOW:
                summary.allowed += count
            else:
                summary.blocked += count
            if code == _INVALID:
                summary.bad_rows += count
        for line, blank in screened.bad:
            if len(summary.bad_samples) >= bad_limit:
                break
            why = f"no number in column {index + 1}" if blank else "not a valid phone number"
            summary.bad_samples.append((line, why))
        if progress:
            progress(len(screened.codes))
