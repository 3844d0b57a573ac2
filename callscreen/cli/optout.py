"""``callscreen optout add|remove`` and ``callscreen objection add``."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from callscreen.cli.consent import _number
from callscreen.cli.context import EXIT_OK, CliContext, CliError
from callscreen.models import OPT_OUT_SOURCES, Objection, OptOut
from callscreen.numbers import mask


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("optout", help="company-wide and per-campaign opt-outs")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    for action, handler in (("add", add_opt_out), ("remove", remove_opt_out)):
        sub = commands.add_parser(action, help=f"{action} an opt-out")
        sub.add_argument("number")
        sub.add_argument("--campaign", help="only this campaign (default: company-wide)")
        sub.add_argument("--region")
        if action == "add":
            sub.add_argument("--source", default="supervisor", choices=OPT_OUT_SOURCES)
            sub.add_argument("--note", default="")
        sub.set_defaults(handler=handler)

    objection = subparsers.add_parser("objection", help="GDPR art. 21 objections")
    commands = objection.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    add = commands.add_parser("add", help="record an objection (absolute for direct marketing)")
    add.add_argument("number")
    add.add_argument("--scope", default="direct_marketing", choices=("direct_marketing", "all"))
    add.add_argument("--source", default="supervisor", choices=OPT_OUT_SOURCES)
    add.add_argument("--region")
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
