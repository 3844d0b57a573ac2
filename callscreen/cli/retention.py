"""``callscreen retention run [--dry-run]|status``: apply the policy packs' retention periods."""

from __future__ import annotations

import argparse
import json
from typing import Any

from callscreen.cli.context import EXIT_BUSY, EXIT_OK, CliContext, CliError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("retention", help="delete what the policy packs no longer let us keep")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    run = commands.add_parser("run", help="delete records past their retention period (one run at a time)")
    run.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
    run.add_argument("--json", action="store_true", help="print the counts as JSON")
    run.set_defaults(handler=run_retention)
    status = commands.add_parser("status", help="the last completed run")
    status.add_argument("--json", action="store_true", help="print the last run as JSON")
    status.set_defaults(handler=retention_status)


def build_job(context: CliContext) -> Any:
    from callscreen.retention import RetentionJob

    return RetentionJob(context.store, context.log, context.screener.policies, context.settings.default_region)


def run_retention(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.retention import KINDS, RetentionBusy

    try:
        report = build_job(context).run(dry_run=args.dry_run)
    except RetentionBusy as exc:
        raise CliError(f"{exc}; try again later", EXIT_BUSY) from exc
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    for kind in KINDS:
        per = ", ".join(f"{j} {n}" for (k, j), n in sorted(report.by_jurisdiction.items()) if k == kind)
        print(f"{kind:20} {verb} {report.deleted.get(kind, 0):8}" + (f"  ({per})" if per else ""))
    print(f"{'dry run' if args.dry_run else 'retention run'} took {report.duration_seconds:.2f} s")
    return EXIT_OK


def retention_status(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.retention import last_run

    last = last_run(context.client)
    if args.json:
        print(json.dumps(last))
    elif last is None:
        print("retention has never run")
    else:
        deleted = ", ".join(f"{k} {n}" for k, n in last["deleted"].items())
        print(f"last run finished {last['finished_at']} on {last.get('host', '?')} in "
              f"{last['duration_seconds']} s: {deleted}")
    return EXIT_OK
