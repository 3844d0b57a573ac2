"""``callscreen check``: may this number be called for this campaign now? Explained."""

from __future__ import annotations

import argparse
import json
from typing import Any

from callscreen import codec
from callscreen.cli.context import EXIT_BLOCKED, EXIT_OK, CliContext, CliError
from callscreen.models import Decision


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="screen one number for a campaign and explain the answer")
    parser.add_argument("number", help="the number in any common spelling, e.g. '8 (999) 123-45-67'")
    parser.add_argument("--campaign", required=True, help="campaign id")
    parser.add_argument("--at", type=parse_at, help="decide for this ISO 8601 time instead of now")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument("--dry-run", action="store_true", help="decide without logging or counting an attempt")
    parser.set_defaults(handler=run)


def parse_at(text: str) -> Any:
    try:
        return codec.parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc


def decision_json(decision: Decision) -> dict[str, Any]:
    data = codec.to_dict(decision)
    data["basis_short"] = decision.basis.short() if decision.basis else ""
    data["checks"] = [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in decision.checks]
    return data


def explain(decision: Decision, dry_run: bool = False) -> str:
    lines = [f"{decision.result.value} {decision.reason.value}"]
    if decision.basis:
        b = decision.basis
        lines.append(f"  basis: {b.kind.value} {b.consent_id} ({b.source}, captured {codec.iso(b.captured_at)}, "
                     f"purpose {b.purpose}{', form ' + b.form_version if b.form_version else ''})")
    if decision.policy_pack:
        lines.append(f"  policy: {decision.policy_pack} {decision.policy_version}; time zone: {decision.timezone}")
    for check in decision.checks:
        mark = "ok  " if check.passed else "FAIL"
        lines.append(f"  [{mark}] {check.name}: {check.detail}")
    if decision.id:
        lines.append(f"  decision id: {decision.id}")
    else:
        lines.append("  not logged (dry run)" if dry_run else "  not logged: the decision log was unavailable")
    return "\n".join(lines)


def run(args: argparse.Namespace, context: CliContext) -> int:
    if not args.campaign.strip():
        raise CliError("--campaign must not be empty")
    decision = context.screener.screen(args.number, args.campaign, args.at, origin="cli", dry_run=args.dry_run)
    if args.json:
        print(json.dumps(decision_json(decision), ensure_ascii=False, indent=2))
    else:
        print(explain(decision, args.dry_run))
    return EXIT_OK if decision.allowed else EXIT_BLOCKED
