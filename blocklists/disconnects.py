"""Reassigned numbers: when each number was last permanently disconnected.

A consent is given by a subscriber, not by a number: once the number is permanently
disconnected and handed to someone else, a consent captured before that date is void
(47 CFR 64.1200(m), the FCC Reassigned Numbers Database). The list is a CSV of
``number,date`` rows (a header row is recognised and skipped; the date is ``YYYY-MM-DD``,
``YYYYMMDD`` or an ISO 8601 time); plain, gzip or zip files as for the registries.

Each date is kept in the number's contact hash (``disconnected_at``, under its keyed digest)
so the decision's one-round-trip fact query reads it for free; a later date replaces an
earlier one, never the reverse, so re-importing an older list changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from blocklists.formats import BadLine, Source
from callscreen.numbers import InvalidNumber, normalize
from callscreen.store import PREFIX, Store, StoreError, number_key, run_pipeline, script

STATUS_KEY = PREFIX + "reg:disconnects"
BATCH_ROWS = 5_000

# Keep the later of the stored and the offered date (ISO 8601 UTC strings sort as times).
KEEP_LATER_SHA = script("""
local current = redis.call('HGET', KEYS[1], 'disconnected_at')
if current and current >= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'disconnected_at', ARGV[1])
return 1
""")


class DisconnectError(ValueError):
    """The file cannot be read as a disconnect list."""


@dataclass(slots=True)
class DisconnectReport:
    lines: int = 0
    numbers: int = 0
    updated: int = 0  # numbers whose stored date moved later
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    seconds: float = 0.0
    checksum: str = ""


def parse_date(text: str) -> datetime:
    """``YYYY-MM-DD``, ``YYYYMMDD`` or an ISO 8601 time (naive times are UTC) → UTC midnight-or-time."""
    text = text.strip()
    if len(text) == 8 and text.isdigit():
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise DisconnectError(f"{text!r} is not a date like 2026-03-31") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_rows(source: Source, country: str, bad_limit: int = 1000
              ) -> Iterator[tuple[list[tuple[str, datetime]], list[BadLine], int, int]]:
    """Yield (good rows as (E.164, date), bad lines, lines read, bad count) in batches."""
    for where, stream in source.members():
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text)
        good: list[tuple[str, datetime]] = []
        bad: list[BadLine] = []
        lines = bad_count = 0
        for row in reader:
            lines += 1
            if not any(cell.strip() for cell in row):
                continue
            try:
                if len(row) < 2:
                    raise DisconnectError(f"row has {len(row)} column(s); expected number,date")
                good.append((normalize(row[0], country).e164, parse_date(row[1])))
            except (InvalidNumber, DisconnectError) as exc:
                if reader.line_num == 1 and not any(ch.isdigit() for ch in row[0]):
                    continue  # a header row
                bad_count += 1
                if len(bad) < bad_limit:
                    bad.append(BadLine(where, reader.line_num, str(exc), ",".join(row)[:80]))
            if len(good) >= BATCH_ROWS:
                yield good, bad, lines, bad_count
                good, bad, lines, bad_count = [], [], 0, 0
        yield good, bad, lines, bad_count
        text.detach()


def import_disconnects(store: Store, path: str, *, country: str, source_label: str = "",
                       progress: Callable[[int, int], None] | None = None) -> DisconnectReport:
    """Record every row's disconnect date; bad rows are reported and skipped, never stop the load."""
    started = time.perf_counter()
    source = Source(path)
    report = DisconnectReport()
    client: redis.Redis = store.client
    for good, bad, lines, bad_count in read_rows(source, country):
        report.lines += lines
        report.bad_count += bad_count
        report.bad.extend(bad[: max(0, 1000 - len(report.bad))])
        if good:
            replies = run_pipeline(client, [
                ("EVALSHA", KEEP_LATER_SHA, 1, number_key(store.vault.digest(e164), "contact"), moment.isoformat())
                for e164, moment in good
            ])
            failed = next((r for r in replies if isinstance(r, Exception)), None)
            if failed is not None:
                raise StoreError(f"store refused a disconnect date: {failed}")
            report.numbers += len(good)
            report.updated += sum(1 for r in replies if r == 1)
        if progress is not None:
            progress(source.position(), report.numbers)
    report.seconds = time.perf_counter() - started
    report.checksum = source.checksum
    client.set(STATUS_KEY, json.dumps({
        "loaded_at": datetime.now(UTC).isoformat(), "source": source_label or str(path), "country": country,
        "numbers": report.numbers, "updated": report.updated, "bad_lines": report.bad_count,
        "checksum": report.checksum,
    }))
    return report


def last_import(client: redis.Redis) -> dict | None:
    raw = client.get(STATUS_KEY)
    return None if raw is None else json.loads(raw)
