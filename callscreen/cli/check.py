"""``callscreen check``: may this number be called for this campaign now? Explained."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from callscreen import codec
from callscreen.cli.context import EXIT_BLOCKED, EXIT_INPUT, EXIT_OK, EXIT_UNAVAILABLE, CliContext, CliError
from callscreen.models import Decision, Reason

# BLOCKs that say the question itself was wrong or could not be answered (docs/cli.md, exit codes)
EXIT_FOR_REASON = {
    Reason.INVALID_NUMBER: EXIT_INPUT,
    Reason.UNKNOWN_CAMPAIGN: EXIT_INPUT,
    Reason.SCREENING_UNAVAILABLE: EXIT_UNAVAILABLE,
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="screen one number for a campaign and explain the answer")
    parser.add_argument("number", help="the number in any common spelling, e.g. '8 (999) 123-45-67'")
    parser.add_argument("--campaign", required=True, help="campaign id")
    parser.add_argument("--at", type=parse_at,
                        help="a hypothetical question: decide for this time (ISO 8601 with its offset, e.g. "
                             "2026-06-01T13:00:00+03:00) without logging it or counting an attempt")
    parser.add_argument("--log", action="store_true",
                        help="with --at: log the decision too, dated --at (a past time only)")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument("--dry-run", action="store_true", help="decide without logging or counting an attempt")
    parser.set_defaults(handler=run)


def parse_at(text: str) -> Any:
    """An ISO 8601 time with its UTC offset (``Z`` or ``+03:00``); a time without one is refused
    rather than guessed."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-06-01T13:00:00+03:00)") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset: add one, e.g. {text}Z (UTC) or {text}+03:00")
    return moment.astimezone(UTC)


def decision_json(decision: Decision) -> dict[str, Any]:
    data = codec.to_dict(decision)
    data["basis_short"] = decision.basis.short() if decision.basis else ""
    data["checks"] = [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in decision.checks]
    return data


def explain(decision: Decision, why_not_logged: str = "") -> str:
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
    elif why_not_logged:
        lines.append(f"  not logged ({why_not_logged})")
    else:
        lines.append("  not logged: the decision log was unavailable")
    return "\n".join(lines)


def run(args: argparse.Namespace, context: CliContext) -> int:
    if not args.campaign.strip():
        raise CliError("--campaign must not be empty")
    if args.log and args.at is None:
        raise CliError("--log goes with --at (a check without --at is logged anyway)")
    if args.log and args.at > datetime.now(UTC):
        raise CliError("--log: refusing to log a decision dated in the future; drop --log to ask hypothetically")
    hypothetical = args.at is not None and not args.log
    decision = context.screener.screen(args.number, args.campaign, args.at, origin="cli",
                                       dry_run=args.dry_run or hypothetical)
    if args.json:
        print(json.dumps(decision_json(decision), ensure_ascii=False, indent=2))
    else:
        print(explain(decision, "dry run" if args.dry_run else "hypothetical: --at" if hypothetical else ""))
    if decision.allowed:
        return EXIT_OK
    return EXIT_FOR_REASON.get(decision.reason, EXIT_BLOCKED)
