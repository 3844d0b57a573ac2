"""``callscreen log tail|export|verify|purge``: read and prove the decision log.

Invariant: none of these stops at a damaged entry. ``tail``, ``export`` and ``verify`` name
each entry that cannot be read or whose MAC does not match (``TAMPERED: ...``), go on with the
rest, and then exit with the tampering code; ``export`` writes a damaged entry's raw fields
too, so the archive loses nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import UTC
from typing import Any

from callscreen import codec
from callscreen.cli.check import parse_at
from callscreen.cli.context import EXIT_OK, EXIT_TAMPERED, CliContext
from callscreen.decision_log import DamagedEntry, LogRecord


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("log", help="the tamper-evident decision log")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    tail = commands.add_parser("tail", help="the newest records")
    tail.add_argument("-n", type=int, default=20, help="how many records (default 20)")
    tail.add_argument("--json", action="store_true", help="one JSON object per record")
    tail.set_defaults(handler=tail_log)
    export = commands.add_parser("export", help="records as JSON lines (numbers stay encrypted)")
    export.add_argument("--since", type=parse_at, help="first time to include (ISO 8601 with offset)")
    export.add_argument("--until", type=parse_at, help="last time to include (ISO 8601 with offset)")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.add_argument("--reason", default="decision log archive", help="why (recorded in the access journal)")
    export.add_argument("--by", help="who exports (default: the operating system user)")
    export.set_defaults(handler=export_log)
    verify = commands.add_parser("verify", help="check every record's MAC and every chain's continuity")
    verify.set_defaults(handler=verify_log)
    purge = commands.add_parser("purge", help="drop records older than the retention period")
    purge.set_defaults(handler=purge_log)


def record_json(record: LogRecord) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    data["at"] = codec.iso(record.at)
    return data


TAIL_HEADER = ("TIME (UTC)", "RECORD", "CAMPAIGN", "RESULT", "REASON", "BASIS OR DETAIL")


def _row(record: LogRecord) -> tuple[str, ...]:
    basis = record.basis or {}
    at = record.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = record.result if record.kind == "decision" else record.kind
    if record.reason:
        basis_text = f"{basis.get('kind', '')}:{basis.get('source', '')}" if basis else "-"
        return (at, record.id, record.campaign_id or "-", what, record.reason, basis_text)
    return (at, record.id, record.campaign_id or "-", what, "-", json.dumps(record.extra, ensure_ascii=False)[:100])


def table(rows: list[tuple[str, ...]]) -> list[str]:
    """Rows as lines with every column as wide as its widest cell (the last one unpadded)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [" ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def tail_log(args: argparse.Namespace, context: CliContext) -> int:
    tampered = 0
    check = context.log.checker()
    rows: list[tuple[str, ...]] = []
    damaged: list[str] = []
    for entry in context.log.tail(max(1, min(args.n, 10_000))):
        problem = "; ".join(check(entry)) or None
        tampered += problem is not None
        if args.json:
            print(json.dumps(_entry_json(entry, problem), ensure_ascii=False))
        elif isinstance(entry, DamagedEntry):
            damaged.append(f"TAMPERED: {problem}")
        else:
            row = _row(entry)
            rows.append((*row[:-1], row[-1] + (f"  TAMPERED: {problem}" if problem else "")))
    if rows:
        print("\n".join(table([TAIL_HEADER, *rows])))
    for line in damaged:
        print(line)
    return _tamper_summary(tampered)


def export_log(args: argparse.Namespace, context: CliContext) -> int:
    """Records as JSON lines; journaled first (the sealed numbers in it are personal data)."""
    from callscreen.cli.privacy import ROLE, journal_of, operator

    span = f"{codec.iso(args.since) or 'start'} .. {codec.iso(args.until) or 'now'}"
    journal_of(context).record(user=operator(args), role=ROLE, action="log_export", number_digest="",
                               reason=args.reason, subject=span)
    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115
    count = tampered = 0
    check = context.log.checker()
    try:
        for entry in context.log.entries(args.since, args.until, newest_first=False, batch=2000):
            problem = "; ".join(check(entry)) or None
            if problem:
                tampered += 1
                print(f"TAMPERED: {problem}", file=sys.stderr)
            out.write(json.dumps(_entry_json(entry, problem), ensure_ascii=False) + "\n")
            count += 1
    finally:
        if args.out:
            out.close()
    print(f"exported {count} records", file=sys.stderr)
    return _tamper_summary(tampered)


def _entry_json(entry: LogRecord | DamagedEntry, problem: str | None) -> dict[str, Any]:
    """A record as JSON; a damaged entry as its raw fields and what is wrong with it."""
    if isinstance(entry, DamagedEntry):
        return entry.as_json()
    data = record_json(entry)
    if problem:
        data["tampered"] = problem
    return data


def _tamper_summary(tampered: int) -> int:
    if not tampered:
        return EXIT_OK
    print(f"{tampered} tampered records: run `callscreen log verify`", file=sys.stderr)
    return EXIT_TAMPERED


def verify_log(args: argparse.Namespace, context: CliContext) -> int:
    report = context.log.verify()
    for problem in report.problems[:100]:
        print(f"TAMPERED: {problem}")
    # a chain is the records one writer (a CLI command, a server process) linked by MACs in order
    shards = f" across {report.shards} shards" if report.shards > 1 else ""
    print(f"{report.records} records in {report.chains} chains{shards} (one per writing process, each record "
          f"linked to the one before): {'intact' if report.ok else str(len(report.problems)) + ' problems'}")
    return EXIT_OK if report.ok else EXIT_TAMPERED


def purge_log(args: argparse.Namespace, context: CliContext) -> int:
    removed = context.log.purge()
    print(f"purged {removed} records older than {context.settings.retention_days} days")
    return EXIT_OK
