"""``callscreen campaign add|list|show``."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callscreen import codec
from callscreen.cli.context import EXIT_OK, CliContext, CliError
from callscreen.models import Campaign

CAMPAIGN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PURPOSE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("campaign", help="manage campaigns")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True
    add = commands.add_parser("add", help="add a campaign (an existing id needs --replace)")
    add.add_argument("id", help="campaign id: 1-64 letters, digits, '_', '-' or '.'")
    add.add_argument("--purpose", required=True, help="e.g. promotions, appointment_reminders")
    add.add_argument("--jurisdiction", required=True, help="policy pack: RU, US, GB, EU, BG")
    add.add_argument("--region", help="default region for national numbers (ISO 3166, e.g. RU)")
    add.add_argument("--timezone", help="IANA zone used when a number's zone is unknown")
    add.add_argument("--name", default="", help="a human name shown on the dashboard")
    add.add_argument("--replace", action="store_true", help="replace the campaign if the id exists")
    kind = add.add_mutually_exclusive_group()
    kind.add_argument("--advertising", dest="advertising", action="store_true", default=True,
                      help="an advertising campaign (default)")
    kind.add_argument("--not-advertising", dest="advertising", action="store_false",
                      help="informational calls, e.g. appointment reminders")
    add.add_argument("--automatic-dialing", action="store_true",
                     help="calls are dialed without a human (predictive or robo dialing)")
    add.set_defaults(handler=add_campaign)
    listing = commands.add_parser("list", help="list campaigns")
    listing.add_argument("--json", action="store_true", help="print the campaigns as JSON")
    listing.set_defaults(handler=list_campaigns)
    show = commands.add_parser("show", help="show one campaign")
    show.add_argument("id", help="campaign id")
    show.set_defaults(handler=show_campaign)


def validate_campaign(campaign: Campaign, jurisdictions: list[str]) -> None:
    """Raise CliError naming the first bad field."""
    if not CAMPAIGN_ID.match(campaign.id):
        raise CliError(f"campaign id {campaign.id!r}: use 1-64 letters, digits, '_', '-' or '.'")
    if not PURPOSE.match(campaign.purpose):
        raise CliError(f"purpose {campaign.purpose!r}: use lower-case words joined by '_'")
    if campaign.jurisdiction not in jurisdictions:
        raise CliError(f"jurisdiction {campaign.jurisdiction!r}: no policy pack (have {', '.join(jurisdictions)})")
    if len(campaign.default_region) != 2 or not campaign.default_region.isalpha():
        raise CliError(f"region {campaign.default_region!r}: not an ISO 3166 alpha-2 code")
    try:
        ZoneInfo(campaign.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CliError(f"timezone {campaign.timezone!r}: not an IANA time zone") from exc


def add_campaign(args: argparse.Namespace, context: CliContext) -> int:
    jurisdiction = args.jurisdiction.upper()
    settings = context.settings
    region = (args.region or (jurisdiction if len(jurisdiction) == 2 and jurisdiction != "EU"
                              else settings.default_region)).upper()
    campaign = Campaign(
        id=args.id, purpose=args.purpose, jurisdiction=jurisdiction, default_region=region,
        timezone=args.timezone or settings.default_timezone, advertising=args.advertising,
        automatic_dialing=args.automatic_dialing, name=args.name,
    )
    validate_campaign(campaign, context.screener.policies.jurisdictions())
    if not args.replace and context.store.get_campaign(campaign.id) is not None:
        raise CliError(f"campaign {campaign.id!r} exists; add --replace to replace it "
                       f"(callscreen campaign show {campaign.id} shows it)")
    context.store.put_campaign(campaign)
    print(f"campaign {campaign.id} saved ({campaign.purpose}, {campaign.jurisdiction}, "
          f"{'advertising' if campaign.advertising else 'not advertising'}"
          f"{', automatic dialing' if campaign.automatic_dialing else ''})")
    return EXIT_OK


def list_campaigns(args: argparse.Namespace, context: CliContext) -> int:
    campaigns = context.store.list_campaigns()
    if args.json:
        print(json.dumps([codec.to_dict(c) for c in campaigns], ensure_ascii=False, indent=2))
        return EXIT_OK
    for c in campaigns:
        flags = ("ad" if c.advertising else "info") + (",auto" if c.automatic_dialing else "")
        print(f"{c.id:24} {c.purpose:24} {c.jurisdiction:3} {c.default_region:3} {c.timezone:20} {flags}")
    return EXIT_OK


def show_campaign(args: argparse.Namespace, context: CliContext) -> int:
    campaign = context.store.get_campaign(args.id)
    if campaign is None:
        raise CliError(f"no campaign {args.id!r}")
    print(json.dumps(codec.to_dict(campaign), ensure_ascii=False, indent=2))
    return EXIT_OK
