"""``callscreen registry import|list|status|diff|drop`` and ``callscreen scrub``.

Do-not-call registries (see ``docs/registries.md``) and the batch pre-scrub of a lead list.
Errors are one line; exit codes as in ``docs/cli.md`` (``registry status`` exits 1 when a
registry a policy requires is missing or stale, so it can drive an alert).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from blocklists.disconnects import DisconnectError, import_disconnects
from blocklists.formats import FORMATS, FormatError
from blocklists.lead_numbers import exchange_table_path, load_exchanges, save_exchanges
from blocklists.registry import KINDS, ImportReport, RegistryError, RegistryInfo, RegistryManager
from blocklists.registry_bits import COPY_BUDGET
from blocklists.scrub import (
    BatchScreener,
    ScrubError,
    ScrubJob,
    scrub_csv,
)
from callscreen import codec
from callscreen.cli.check import parse_at
from callscreen.cli.consent import profile_from
from callscreen.cli.context import EXIT_BLOCKED, EXIT_INPUT, EXIT_OK, EXIT_UNAVAILABLE, CliContext, CliError
from callscreen.consent_import import BadRow
from callscreen.import_profiles import ProfileError, declining_numbers
from callscreen.policy import PolicyBook
from callscreen.rotation import build_vault
from callscreen.store import STORE_ERRORS, Store, StoreError


def register(subparsers: Any) -> None:
    registry = subparsers.add_parser("registry", help="load and inspect do-not-call registries")
    commands = registry.add_subparsers(dest="registry_command", metavar="ACTION")
    commands.required = True

    load = commands.add_parser("import", help="load a registry file (full list, or --changes)")
    load.add_argument("file", help="plain, .gz or .zip file")
    load.add_argument("--id", required=True, help="registry id, e.g. us-dnc, gb-tps, gb-ctps, own-list")
    load.add_argument("--format", choices=FORMATS, default=None,
                      help="file format (default: ftc for US, tps for GB, else lines; ftc-changes with --changes)")
    load.add_argument("--country", help="ISO country of the numbers (required for a new registry)")
    load.add_argument("--kind", choices=KINDS, default="national", help="kind of registry (default national)")
    load.add_argument("--source", default="", help="where the file came from (default: its name)")
    load.add_argument("--version", default="", help="the source's version label (default: today)")
    load.add_argument("--column", help="CSV: number column, 1-based index or header name")
    crm = load.add_mutually_exclusive_group()
    crm.add_argument("--profile", help="read a CRM export with this import profile (bitrix24, amocrm, …): the "
                                       "numbers of the rows whose consent flag says no, or of every row")
    crm.add_argument("--mapping", type=Path, help="read a CRM export with your own import profile (TOML)")
    load.add_argument("--timezone", help=argparse.SUPPRESS)
    load.add_argument("--changes", action="store_true", help="apply a change list to the loaded version")
    load.add_argument("--force", action="store_true", help="switch even if the new list is empty or much smaller")
    load.add_argument("--memory-mb", type=int, default=4096, help="memory for building bitmaps (default 4096)")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.set_defaults(handler=run_import)

    listing = commands.add_parser("list", help="loaded registries")
    listing.add_argument("--json", action="store_true", help="print as JSON")
    listing.set_defaults(handler=run_list)

    status = commands.add_parser("status", help="age of each registry against the policy limits")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=run_status)

    diff = commands.add_parser("diff", help="compare two files, or a file with the loaded registry")
    diff.add_argument("left", help="a registry file")
    diff.add_argument("right", nargs="?", help="a second file (default: the loaded registry --id)")
    diff.add_argument("--id", help="loaded registry to compare with")
    diff.add_argument("--format", choices=FORMATS, default="lines", help="file format (default lines)")
    diff.add_argument("--country", help="country of the numbers (two files)")
    diff.add_argument("--column", help="CSV: number column")
    diff.add_argument("--samples", type=int, default=5, help="numbers to show from each side")
    diff.add_argument("--json", action="store_true", help="print as JSON")
    diff.set_defaults(handler=run_diff)

    gone = commands.add_parser("disconnects", help="load a reassigned-numbers list: number,date of the last "
                                                   "permanent disconnection (voids older consents where "
                                                   "the pack says so)")
    gone.add_argument("file", help="CSV of number,date rows (plain, .gz or .zip; a header row is skipped)")
    gone.add_argument("--country", default="US", help="ISO country of numbers written without +CC (default US)")
    gone.add_argument("--source", default="", help="where the file came from (default: its name)")
    gone.add_argument("--quiet", action="store_true", help="no progress bar")
    gone.set_defaults(handler=run_disconnects)

    drop = commands.add_parser("drop", help="unload a registry (calls that require it then block)")
    drop.add_argument("id", help="registry id")
    drop.set_defaults(handler=run_drop)

    scrub = subparsers.add_parser("scrub", help="pre-screen a CSV lead list as the dial-time check would")
    scrub.add_argument("file", help="CSV file with a header row")
    scrub.add_argument("--campaign", required=True, help="campaign id")
    scrub.add_argument("--at", type=parse_at, help="decide for this ISO 8601 time with offset (default: now)")
    scrub.add_argument("--column", help="number column: 1-based index or header name (default: a column "
                                        "named phone/number/msisdn/tel…, else the first)")
    scrub.add_argument("--no-header", action="store_true", help="the file has no header row")
    scrub.add_argument("--out", help="output CSV (default: standard output)")
    scrub.add_argument("--workers", type=int, default=1, help="processes to screen with (default 1)")
    scrub.add_argument("--memory-mb", type=int, default=COPY_BUDGET >> 20,
                       help=f"registry shards each process may copy, in MiB (default {COPY_BUDGET >> 20}; 0: none)")
    scrub.add_argument("--quiet", action="store_true", help="no progress bar")
    scrub.set_defaults(handler=run_scrub)


# --- helpers -----------------------------------------------------------------------------------

def _manager(context: CliContext, memory_mb: int = 4096) -> RegistryManager:
    return RegistryManager(context.client, memory_bytes=memory_mb << 20)


def _bar(total: int | None, unit: str, quiet: bool, scale: bool = False) -> tqdm:
    return tqdm(total=total, unit=unit, unit_scale=scale, unit_divisor=1024 if scale else 1000,
                disable=True if quiet else None, file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


def _progress(bar: tqdm) -> Callable[[int, int], None]:
    started = datetime.now(UTC)

    def update(position: int, numbers: int) -> None:
        bar.update(max(0, position - bar.n))
        seconds = max((datetime.now(UTC) - started).total_seconds(), 1e-6)
        bar.set_postfix_str(f"{numbers:,} numbers, {numbers / seconds:,.0f}/s", refresh=False)

    return update


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _info_json(info: RegistryInfo) -> dict[str, Any]:
    return json.loads(info.to_json())


def _default_format(country: str | None, changes: bool) -> str:
    if changes:
        return "ftc-changes"
    return {"US": "ftc", "GB": "tps"}.get((country or "").upper(), "lines")


# --- handlers --------------------------------------------------------------------------------------

def run_import(args: argparse.Namespace, context: CliContext) -> int:
    manager = _manager(context, args.memory_mb)
    live = manager.get(args.id)
    country = args.country or (live.country if live else None)
    if not country:
        raise CliError(f"--country is needed for a new registry ({args.id} is not loaded)", EXIT_INPUT)
    fmt = args.format or _default_format(country, args.changes)
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file", EXIT_INPUT)
    if args.profile or args.mapping:
        if args.changes:
            raise CliError("--profile reads a whole CRM export; it cannot be a change list", EXIT_INPUT)
        with tempfile.TemporaryDirectory(prefix="callscreen-crm-") as folder:
            args.file, args.format = str(Path(folder) / "numbers.txt"), "lines"
            args.source = args.source or path.name
            _crm_numbers(args, path, Path(args.file), country)
            return run_import(args, context)
    bar = _bar(path.stat().st_size, "B", args.quiet, scale=True)
    try:
        with bar:
            if args.changes:
                report = manager.apply_changes(args.id, path, fmt=fmt, version=args.version, column=args.column,
                                               progress=_progress(bar))
            else:
                report = manager.import_file(args.id, path, fmt=fmt, country=country, kind=args.kind,
                                             source=args.source, version=args.version, column=args.column,
                                             force=args.force, progress=_progress(bar))
            bar.update(max(0, bar.total - bar.n))
    except (RegistryError, FormatError) as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(_import_summary(report, args.changes))
    return EXIT_OK


def _crm_numbers(args: argparse.Namespace, source: Path, target: Path, country: str) -> None:
    """Write the numbers a CRM export asks not to call, one E.164 per line; report its bad rows."""
    profile = profile_from(argparse.Namespace(profile=args.profile, mapping=args.mapping, timezone=None))
    bad = 0
    try:
        with open(target, "w", encoding="ascii") as out:
            for record, numbers, problem in declining_numbers(source, profile, country):
                if problem:
                    bad += 1
                    print(f"{source}:{BadRow(record.line, problem, record.record_id)}", file=sys.stderr)
                out.writelines(f"{number.e164}\n" for number in numbers)
    except ProfileError as exc:
        raise CliError(f"{source}: {exc}", EXIT_INPUT) from exc
    args.profile = args.mapping = None
    if bad:
        print(f"{source}: {bad} bad rows skipped", file=sys.stderr)


def _import_summary(report: ImportReport, changes: bool) -> str:
    info = report.info
    assert info is not None
    lines = []
    if changes:
        lines.append(f"{info.id}: applied change list: +{report.added:,} -{report.removed:,}, "
                     f"now {info.records:,} numbers (version {info.version})")
    else:
        previous = f", replaced generation {report.previous_generation}" if report.previous_generation else ""
        lines.append(f"{info.id}: loaded {info.records:,} numbers from {report.lines:,} lines "
                     f"(version {info.version}, generation {info.generation}{previous})")
        lines.append(f"  {info.shards:,} shards, {info.bytes / 1e6:,.1f} MB of bitmaps, checksum {info.checksum}")
    lines.append(f"  {report.seconds:,.1f} s, {report.rate:,.0f} numbers/s")
    if report.bad_count:
        lines.append(f"  {report.bad_count:,} bad lines skipped; the first ones:")
        lines.extend(f"    {bad}" for bad in report.bad[:20])
    return "\n".join(lines)


def run_disconnects(args: argparse.Namespace, context: CliContext) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file", EXIT_INPUT)
    store = context.store
    bar = _bar(path.stat().st_size, "B", args.quiet, scale=True)
    try:
        with bar:
            report = import_disconnects(store, str(path), country=args.country.upper(), source_label=args.source,
                                        progress=_progress(bar))
            bar.update(max(0, bar.total - bar.n))
    except (DisconnectError, FormatError) as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"disconnects: {report.numbers:,} numbers from {report.lines:,} lines, "
          f"{report.updated:,} with a newer disconnection date ({report.seconds:,.1f} s)")
    if report.bad_count:
        print(f"  {report.bad_count:,} bad lines skipped; the first ones:")
        print("\n".join(f"    {bad}" for bad in report.bad[:20]))
    return EXIT_OK


def run_list(args: argparse.Namespace, context: CliContext) -> int:
    infos = _manager(context).loaded()
    if args.json:
        print(json.dumps([_info_json(i) for i in infos], indent=2))
        return EXIT_OK
    if not infos:
        print("no registry loaded")
        return EXIT_OK
    print(f"{'id':<12} {'country':<7} {'kind':<9} {'records':>13} {'version':<22} {'loaded':<20} bad lines")
    for info in infos:
        print(f"{info.id:<12} {info.country:<7} {info.kind:<9} {info.records:>13,} {info.version:<22} "
              f"{codec.iso(info.loaded_at)[:19]:<20} {info.bad_lines:,}")
    return EXIT_OK


def _packs(context: CliContext) -> list[Any]:
    book = PolicyBook.load(context.settings.policy_dir)
    return [pack for j in book.jurisdictions() if (pack := book.get(j)) is not None]


def run_status(args: argparse.Namespace, context: CliContext) -> int:
    rows = _manager(context).status(_packs(context))
    if args.json:
        print(json.dumps([{
            "id": r.registry_id, "state": r.state, "age_seconds": r.age_seconds, "max_age_days": r.max_age_days,
            "required_by": list(r.required_by), "info": _info_json(r.info) if r.info else None,
        } for r in rows], indent=2))
    elif not rows:
        print("no registry loaded or required")
    else:
        print(f"{'id':<12} {'state':<8} {'age':>7} {'limit':>6} {'records':>13} required by")
        for r in rows:
            limit = f"{r.max_age_days}d" if r.max_age_days else "-"
            records = f"{r.info.records:,}" if r.info else "-"
            print(f"{r.registry_id:<12} {r.state:<8} {_age(r.age_seconds):>7} {limit:>6} {records:>13} "
                  f"{', '.join(r.required_by) or '-'}")
    return EXIT_BLOCKED if any(r.state in ("stale", "missing") for r in rows) else EXIT_OK


def run_diff(args: argparse.Namespace, context: CliContext) -> int:
    if args.right is None and not args.id:
        raise CliError("give a second file or --id of a loaded registry", EXIT_INPUT)
    try:
        report = _manager(context).diff(args.left, args.right, fmt=args.format, country=args.country,
                                        registry_id=args.id, column=args.column, samples=args.samples)
    except (RegistryError, FormatError) as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    right = args.right or f"registry {args.id}"
    if args.json:
        print(json.dumps({"left": args.left, "right": right, "only_left": report.only_left,
                          "only_right": report.only_right, "both": report.both,
                          "left_samples": report.left_samples, "right_samples": report.right_samples}, indent=2))
        return EXIT_OK
    print(f"only in {args.left}: {report.only_left:,}  {' '.join(report.left_samples)}")
    print(f"only in {right}: {report.only_right:,}  {' '.join(report.right_samples)}")
    print(f"in both: {report.both:,}")
    return EXIT_OK


def run_drop(args: argparse.Namespace, context: CliContext) -> int:
    try:
        info = _manager(context).drop(args.id)
    except RegistryError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"{info.id}: dropped ({info.records:,} numbers, version {info.version}); "
          f"campaigns that require it now block with registry_stale")
    return EXIT_OK


def run_scrub(args: argparse.Namespace, context: CliContext) -> int:
    settings = context.settings.require_secrets()
    vault = build_vault(settings, context.client)
    campaign = Store(context.client, vault).get_campaign(args.campaign)
    if campaign is None:
        raise CliError(f"no campaign {args.campaign!r}", EXIT_INPUT)
    pack = PolicyBook.load(settings.policy_dir).for_campaign(campaign)
    if pack is None:
        raise CliError(f"no policy pack for jurisdiction {campaign.jurisdiction!r}", EXIT_INPUT)
    if args.workers < 1:
        raise CliError("--workers must be at least 1", EXIT_INPUT)
    if args.memory_mb < 0:
        raise CliError("--memory-mb cannot be negative", EXIT_INPUT)
    source = Path(args.file)
    if not source.is_file():
        raise CliError(f"{source}: no such file", EXIT_INPUT)
    at = args.at or datetime.now(UTC)
    table_path = exchange_table_path(settings.data_dir / "cache")
    exchanges = load_exchanges(table_path)
    copy_budget = args.memory_mb << 20
    job = ScrubJob(context.redis_url, settings.keyring("hash_key"), settings.keyring("encryption_key"), campaign, pack,
                   at, exchanges, copy_budget)
    engine: BatchScreener | ScrubJob = job
    if args.workers == 1:
        engine = BatchScreener(context.client, vault, campaign, pack, at, context.registries, exchanges,
                               copy_budget=copy_budget)
    with open(source, "rb") as handle:
        total = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    # The lead list is only usable with its evidence: a file given with --out appears (atomically)
    # once the summary record is in the decision log, and not at all if it could not be written.
    target = Path(args.out) if args.out else None
    regular = target is not None and (target.is_file() or not target.exists())  # not /dev/stdout, a FIFO
    partial = target.with_name(f".{target.name}.partial") if target and regular else None
    written = partial or target
    out = open(written, "w", encoding="utf-8", newline="") if written else sys.stdout  # noqa: SIM115
    try:
        try:
            with _bar(max(total - (0 if args.no_header else 1), 0), "rows", args.quiet) as bar:
                summary = scrub_csv(engine, source, out, column=args.column, header=not args.no_header,
                                    workers=args.workers, progress=bar.update)
        except ScrubError as exc:
            raise CliError(str(exc), EXIT_INPUT) from exc
        finally:
            if out is not sys.stdout:
                out.close()
        if summary.learned_exchanges:
            try:
                save_exchanges(table_path, {**exchanges, **summary.learned_exchanges})
            except OSError as exc:
                print(f"callscreen: note: exchange table not saved ({exc.strerror})", file=sys.stderr)
        try:
            record = context.log.append_summary("scrub", summary.as_record(source.name), campaign_id=campaign.id,
                                                origin="cli")
        except (StoreError, *STORE_ERRORS) as exc:
            kept = "no output was written" if partial else "do not use the rows written"
            raise CliError(f"decision log unavailable, the scrub has no record ({kept}): {exc}",
                           EXIT_UNAVAILABLE) from exc
        if partial and target:
            os.replace(partial, target)
    finally:
        if partial:
            partial.unlink(missing_ok=True)
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(summary.reasons.items(), key=lambda kv: -kv[1]))
    print(f"scrubbed {summary.rows:,} rows for {campaign.id} at {codec.iso(at)}: {summary.allowed:,} ALLOW, "
          f"{summary.blocked:,} BLOCK ({reasons}); {summary.rate:,.0f} rows/s; summary record {record.id}",
          file=sys.stderr)
    for line, why in summary.bad_samples[:20]:
        print(f"  line {line}: {why}", file=sys.stderr)
    if summary.bad_rows > 20:
        print(f"  … {summary.bad_rows - 20:,} more rows without a valid number", file=sys.stderr)
    return EXIT_OK
