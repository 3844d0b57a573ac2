"""``callscreen consent add|withdraw|show|import``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callscreen import codec
from callscreen.cli.check import parse_at
from callscreen.cli.context import EXIT_INPUT, EXIT_OK, CliContext, CliError
from callscreen.consent_import import ConsentRow, RowError, import_consents, parse_row
from callscreen.import_profiles import ImportProfile, ProfileError, builtin_profiles, load_profile
from callscreen.models import CONSENT_SOURCES, DOUBLE_OPT_IN_SOURCES, Consent, LegalBasis
from callscreen.numbers import InvalidNumber, mask, normalize
from callscreen.store import ErasedSubject


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("consent", help="record, withdraw, show and import consents")
    commands = parser.add_subparsers(dest="action", metavar="ACTION")
    commands.required = True

    add = commands.add_parser("add", help="record a consent or another legal basis with its proof")
    add.add_argument("number", help="the number in any common spelling, e.g. '8 (999) 123-45-67'")
    add.add_argument("--purpose", action="append", required=True, help="purpose covered (repeatable)")
    add.add_argument("--basis", default="consent", choices=[b.value for b in LegalBasis],
                     help="the legal basis (default consent); others only where the policy pack accepts them")
    add.add_argument("--source", required=True, choices=CONSENT_SOURCES, help="how it was collected")
    add.add_argument("--captured-at", type=parse_at, help="when it was given, ISO 8601 with offset (default: now)")
    add.add_argument("--verified-at", type=parse_at, help="double opt-in confirmation time (ISO 8601 with offset)")
    add.add_argument("--expires-at", type=parse_at, help="when it lapses, if it does (ISO 8601 with offset)")
    add.add_argument("--relationship", choices=("purchase", "inquiry"), help="for existing_relationship")
    add.add_argument("--ip", default="", help="proof: the address the form was submitted from")
    add.add_argument("--user-agent", default="", help="proof: the browser that submitted the form")
    add.add_argument("--form-text", default="", help="the exact consent wording shown")
    add.add_argument("--form-text-file", type=Path, help="read the exact consent wording from a file")
    add.add_argument("--form-version", default="", help="proof: version label of the form or script")
    add.add_argument("--page-url", default="", help="proof: the page the form was on")
    add.add_argument("--recording-id", default="", help="proof: id of a call recording")
    add.add_argument("--document-id", default="", help="proof: id of a signed paper or scanned document")
    add.add_argument("--timezone", default="", help="the contact's IANA time zone, if known")
    add.add_argument("--subdivision", default="", help="the contact's ISO 3166-2 region, e.g. US-FL")
    add.add_argument("--region", help="region for national numbers (default: settings)")
    add.add_argument("--id", default="", help="consent id (default: derived from the record)")
    add.set_defaults(handler=add_consent)

    withdraw = commands.add_parser("withdraw", help="withdraw a consent by id, or all of a number's")
    target = withdraw.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", help="consent id")
    target.add_argument("--number", help="withdraw every active consent of this number")
    withdraw.add_argument("--purpose", help="with --number: only consents covering this purpose")
    withdraw.add_argument("--how", required=True, help="how the withdrawal reached us, e.g. 'call 2026-11-21'")
    withdraw.add_argument("--region", help="region for national numbers (default: settings)")
    withdraw.set_defaults(handler=withdraw_consent)

    show = commands.add_parser("show", help="show a number's consents with their proof")
    show.add_argument("number", nargs="?", help="the number whose consents to show")
    show.add_argument("--id", help="show one consent by id")
    show.add_argument("--region", help="region for national numbers (default: settings)")
    show.add_argument("--json", action="store_true", help="print the consents as JSON")
    show.set_defaults(handler=show_consents)

    imp = commands.add_parser("import", help="import consents from a CRM export (CSV; see docs/import.md)")
    imp.add_argument("file", type=Path, help="CSV file (see docs/import.md)")
    add_profile_options(imp)
    imp.add_argument("--dry-run", action="store_true", help="check the whole file and show the first records as "
                                                            "they would be stored; write nothing")
    imp.add_argument("--region", help="region for national numbers (default: settings)")
    imp.add_argument("--no-progress", action="store_true", help="no progress bar")
    imp.set_defaults(handler=import_file)

    profiles = commands.add_parser("profiles", help="list the built-in import profiles")
    profiles.set_defaults(handler=list_profiles)


def _number(raw: str, region: str) -> Any:
    try:
        return normalize(raw, region)
    except InvalidNumber as exc:
        raise CliError(str(exc)) from exc


def add_consent(args: argparse.Namespace, context: CliContext) -> int:
    form_text = args.form_text
    if args.form_text_file:
        try:
            form_text = args.form_text_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"--form-text-file: {exc}") from exc
    row = {
        "number": args.number, "purposes": ";".join(args.purpose), "basis": args.basis, "source": args.source,
        "captured_at": codec.iso(args.captured_at or datetime.now(UTC)),
        "verified_at": codec.iso(args.verified_at) or "", "expires_at": codec.iso(args.expires_at) or "",
        "relationship": args.relationship or "", "ip": args.ip, "user_agent": args.user_agent,
        "form_text": form_text, "form_version": args.form_version, "page_url": args.page_url,
        "recording_id": args.recording_id, "document_id": args.document_id, "timezone": args.timezone,
        "subdivision": args.subdivision, "id": args.id,
    }
    try:
        parsed = parse_row(row, args.region or context.settings.default_region, datetime.now(UTC),
                           context.store.vault)
    except RowError as exc:
        raise CliError(str(exc)) from exc
    consent = context.store.add_consent(parsed.number, parsed.consent, parsed.contact)
    print(f"consent {consent.id} recorded for {mask(parsed.number.e164)} "
          f"({consent.basis.value}, {', '.join(consent.purposes)}, {consent.source})")
    _warn_missing_proof(consent, context)
    return EXIT_OK


def _warn_missing_proof(consent: Consent, context: CliContext) -> None:
    """Say at intake where the record is not yet a basis for lack of the proof its source needs."""
    if consent.basis is not LegalBasis.CONSENT:
        return
    policies = context.screener.policies
    lacking = []
    for code in policies.jurisdictions():
        missing = consent.missing_proof(policies.get(code).proof_for(consent.source), datetime.now(UTC))
        if missing:
            lacking.append(f"{code} (needs {', '.join(missing)})")
    if lacking:
        print(f"warning: {consent.source} without the proof it needs is not a basis for calls under "
              f"{'; '.join(lacking)}: checks answer consent_unverified until it is recorded", file=sys.stderr)


def withdraw_consent(args: argparse.Namespace, context: CliContext) -> int:
    if args.id:
        try:
            withdrawn = [context.store.withdraw_consent(args.id, args.how)]
        except KeyError as exc:
            raise CliError(f"no consent {args.id!r}") from exc
    else:
        number = _number(args.number, args.region or context.settings.default_region)
        withdrawn = context.store.withdraw_all(number, args.how, args.purpose)
    for consent in withdrawn:
        print(f"withdrawn {consent.id} ({', '.join(consent.purposes)}) at {codec.iso(consent.withdrawn_at)}")
    if not withdrawn:
        print("no active consent to withdraw")
    return EXIT_OK


def _describe(consent: Consent) -> str:
    state = "withdrawn " + codec.iso(consent.withdrawn_at) if consent.withdrawn_at else "active"
    lines = [
        f"{consent.id}: {consent.basis.value} for {', '.join(consent.purposes)} — {state}",
        f"  source {consent.source}, captured {codec.iso(consent.captured_at)}"
        + (f", verified {codec.iso(consent.verified_at)}" if consent.verified_at else ", not verified")
        + (f", expires {codec.iso(consent.expires_at)}" if consent.expires_at else ""),
    ]
    proof = consent.proof
    for label, value in (("ip", proof.ip), ("user agent", proof.user_agent), ("page", proof.page_url),
                         ("form version", proof.form_version), ("recording", proof.recording_id),
                         ("document", proof.document_id), ("withdrawn how", consent.withdrawn_how)):
        if value:
            lines.append(f"  {label}: {value}")
    if proof.form_text:
        lines.append(f"  form text: {proof.form_text}")
    return "\n".join(lines)


def show_consents(args: argparse.Namespace, context: CliContext) -> int:
    if args.id:
        consent = context.store.get_consent(args.id)
        consents = [consent] if consent else []
    elif args.number:
        number = _number(args.number, args.region or context.settings.default_region)
        consents = context.store.consents_for(context.store.vault.digest(number.e164))
    else:
        raise CliError("give a NUMBER or --id")
    if not consents:
        raise CliError("no consent on record")
    if args.json:
        print(json.dumps([codec.to_dict(c) for c in consents], ensure_ascii=False, indent=2))
    else:
        print("\n".join(_describe(c) for c in consents))
    return EXIT_OK


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """--profile / --mapping / --timezone, shared by every CRM import."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--profile", default="generic",
                       help=f"built-in import profile: {', '.join(builtin_profiles())} (default generic: "
                            "callscreen's own columns)")
    which.add_argument("--mapping", type=Path, help="your own import profile (TOML; see docs/import.md)")
    parser.add_argument("--timezone", help="IANA zone of times written without an offset (default: the profile's)")


def profile_from(args: argparse.Namespace) -> ImportProfile:
    try:
        profile = load_profile(args.mapping if args.mapping else args.profile)
        return profile.with_timezone(args.timezone) if args.timezone else profile
    except ProfileError as exc:
        raise CliError(str(exc)) from exc


def list_profiles(args: argparse.Namespace, context: CliContext) -> int:
    for name in builtin_profiles():
        profile = load_profile(name)
        print(f"{name:10} {profile.description}")
    return EXIT_OK


def import_file(args: argparse.Namespace, context: CliContext) -> int:
    from tqdm import tqdm

    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    profile = profile_from(args)
    with open(args.file, "rb") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    store = context.store
    region = args.region or context.settings.default_region
    shown: list[ConsentRow] = []

    def save(rows: list[ConsentRow]) -> int:
        if args.dry_run:
            shown.extend(rows[: max(0, DRY_RUN_SHOWN - len(shown))])
            return len(rows) - store.count_known_consents([r.consent.id for r in rows])
        known = store.count_known_consents([r.consent.id for r in rows])
        store.add_consents([(r.number, r.consent, r.contact) for r in rows])
        return len(rows) - known

    with tqdm(total=total, unit="lines", disable=args.no_progress, file=sys.stderr,
              desc="checking" if args.dry_run else "importing") as bar:
        try:
            report = import_consents(args.file, save, region, store.vault, bar.update, profile=profile)
        except (RowError, ProfileError) as exc:
            raise CliError(f"{args.file}: {exc}") from exc
        except ErasedSubject as exc:
            raise CliError(f"{args.file}: {exc}") from exc
    for bad in report.bad[:200]:
        print(f"{args.file}:{bad}", file=sys.stderr)
    if report.bad_count > 200:
        print(f"… and {report.bad_count - 200} more bad rows", file=sys.stderr)
    if args.dry_run:
        for row in shown:
            print(_stored_form(row))
    verb = "would import" if args.dry_run else "imported"
    print(f"{verb} {report.imported} consents from {report.records} records ({report.new} new, "
          f"{report.imported - report.new} already on file); {report.bad_count} bad rows skipped"
          + (f"; {len(report.skipped)} rows without consent skipped" if report.skipped else ""))
    unverified = sum(1 for row in shown if row.consent.source in DOUBLE_OPT_IN_SOURCES and not row.consent.verified_at)
    if unverified:
        print(f"note: {unverified} of the records shown claim a double opt-in without its confirmation time; "
              "checks answer consent_unverified for them", file=sys.stderr)
    return EXIT_OK if not report.bad else EXIT_INPUT


DRY_RUN_SHOWN = 5


def _stored_form(row: ConsentRow) -> str:
    """One record as it would be stored, the number masked."""
    consent, proof = row.consent, row.consent.proof
    held = ", ".join(name for name in ("ip", "user_agent", "form_text", "form_version", "page_url", "recording_id",
                                       "document_id") if getattr(proof, name))
    return (f"{consent.id}  {mask(row.number.e164)}  {consent.basis.value} for {', '.join(consent.purposes)} "
            f"via {consent.source}, captured {codec.iso(consent.captured_at)}"
            + (f", verified {codec.iso(consent.verified_at)}" if consent.verified_at else ", not verified")
            + (f"; zone {row.contact.timezone}" if row.contact.timezone else "")
            + (f"; proof: {held}" if held else "; no proof fields"))
