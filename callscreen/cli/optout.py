"""``callscreen optout add|remove`` and ``callscreen objection add``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callscreen.cli.consent import _number, add_profile_options, profile_from
from callscreen.cli.context import EXIT_INPUT, EXIT_OK, CliContext, CliError
from callscreen.consent_import import BadRow
from callscreen.import_profiles import ProfileError, declining_numbers
from callscreen.models import OPT_OUT_SOURCES, Objection, OptOut
from callscreen.numbers import mask


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("optout", help="company-wide and per-campaign opt-outs")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    for action, handler in (("add", add_opt_out), ("remove", remove_opt_out)):
        sub = commands.add_parser(action, help=f"{action} an opt-out")
        sub.add_argument("number", help="the number in any common spelling")
        sub.add_argument("--campaign", help="only this campaign (default: company-wide)")
        sub.add_argument("--region", help="region for national numbers (default: settings)")
        if action == "add":
            sub.add_argument("--source", default="supervisor", choices=OPT_OUT_SOURCES,
                             help="how the opt-out reached us (default supervisor)")
            sub.add_argument("--note", default="", help="a free-text note kept with it")
        sub.set_defaults(handler=handler)

    imp = commands.add_parser("import", help="opt-outs from a CRM export: the rows whose consent flag says no "
                                              "(every row when the profile has no flag); see docs/import.md")
    imp.add_argument("file", type=Path, help="CSV file (see docs/import.md)")
    add_profile_options(imp)
    imp.add_argument("--campaign", help="only this campaign (default: company-wide)")
    imp.add_argument("--region", help="region for national numbers (default: settings)")
    imp.add_argument("--dry-run", action="store_true", help="report what would be recorded; write nothing")
    imp.set_defaults(handler=import_opt_outs)

    objection = subparsers.add_parser("objection", help="GDPR art. 21 objections")
    commands = objection.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    add = commands.add_parser("add", help="record an objection (absolute for direct marketing)")
    add.add_argument("number", help="the number in any common spelling")
    add.add_argument("--scope", default="direct_marketing", choices=("direct_marketing", "all"),
                     help="what the person objects to (default direct_marketing)")
    add.add_argument("--source", default="supervisor", choices=OPT_OUT_SOURCES,
                     help="how the objection reached us (default supervisor)")
    add.add_argument("--region", help="region for national numbers (default: settings)")
    add.set_defaults(handler=add_objection)


def add_opt_out(args: argparse.Namespace, context: CliContext) -> int:
    number = _number(args.number, args.region or context.settings.default_region)
    if args.campaign and context.store.get_campaign(args.campaign) is None:
        raise CliError(f"no campaign {args.campaign!r}")
    context.store.add_opt_out(number, OptOut(args.campaign, args.source, datetime.now(UTC), args.note))
    print(f"opted out {mask(number.e164)} ({'campaign ' + args.campaign if args.campaign else 'company-wide'})")
    return EXIT_OK


def remove_opt_out(args: argparse.Namespace, context: CliContext) -> int:
    number = _number(args.number, args.region or context.settings.default_region)
    if not context.store.remove_opt_out(number, args.campaign):
        raise CliError("no such opt-out on record")
    print(f"removed the opt-out of {mask(number.e164)}")
    return EXIT_OK


def add_objection(args: argparse.Namespace, context: CliContext) -> int:
    number = _number(args.number, args.region or context.settings.default_region)
    context.store.add_objection(number, Objection(datetime.now(UTC), args.source, args.scope))
    print(f"objection ({args.scope}) recorded for {mask(number.e164)}")
    return EXIT_OK


def import_opt_outs(args: argparse.Namespace, context: CliContext) -> int:
    """Every phone of a declining record becomes an opt-out (source ``import``, note: the CRM record)."""
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    if args.campaign and context.store.get_campaign(args.campaign) is None:
        raise CliError(f"no campaign {args.campaign!r}")
    region = args.region or context.settings.default_region
    now, recorded, bad = datetime.now(UTC), 0, []
    try:
        for record, numbers, problem in declining_numbers(args.file, profile_from(args), region):
            if problem:
                bad.append(BadRow(record.line, problem, record.record_id))
            note = f"CRM record {record.record_id}" if record.record_id else f"{args.file.name}:{record.line}"
            for number in numbers:
                if not args.dry_run:
                    context.store.add_opt_out(number, OptOut(args.campaign, "import", now, note))
                recorded += 1
    except ProfileError as exc:
        raise CliError(f"{args.file}: {exc}") from exc
    for row in bad[:200]:
        print(f"{args.file}:{row}", file=sys.stderr)
    scope = f"campaign {args.campaign}" if args.campaign else "company-wide"
    print(f"{'would record' if args.dry_run else 'recorded'} {recorded} {scope} opt-outs; {len(bad)} bad rows skipped")
    return EXIT_OK if not bad else EXIT_INPUT
