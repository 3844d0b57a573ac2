"""``callscreen erase``, ``migrate``, ``dsr export``, ``dossier`` and ``journal list|verify``.

Every command here that shows or writes personal data journals it first (who: the operating
system user, or ``--by``; why: ``--reason``), so a failure to journal means nothing is shown.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from contextlib import contextmanager
from typing import IO, Any

from callscreen import codec
from callscreen.cli.context import EXIT_INPUT, EXIT_OK, EXIT_TAMPERED, CliContext, CliError
from callscreen.numbers import InvalidNumber, mask, normalize

ROLE = "cli"


def register(subparsers: Any) -> None:
    erase = subparsers.add_parser("erase", help="erase a person's data (crypto-shredding) and never call them again")
    erase.add_argument("number", help="the number in any common spelling")
    erase.add_argument("--reason", required=True, help="the request's reference, e.g. 'DSR-2026-114 letter of 2 Dec'")
    erase.add_argument("--region", help="region for national numbers (default: settings)")
    erase.add_argument("--by", help="who carries it out (default: the operating system user)")
    erase.set_defaults(handler=erase_number)

    migrate = subparsers.add_parser("migrate", help="re-key and re-seal data written by earlier versions")
    migrate.add_argument("--status", action="store_true", help="show progress, change nothing")
    migrate.set_defaults(handler=run_migration)

    dsr = subparsers.add_parser("dsr", help="data subject requests")
    actions = dsr.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    export = actions.add_parser("export", help="everything held about a number, as JSON (journaled)")
    export.add_argument("number", help="the number in any common spelling")
    export.add_argument("--reason", required=True, help="the request's reference")
    export.add_argument("--region", help="region for national numbers (default: settings)")
    export.add_argument("--by", help="who asks, for the access journal")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(handler=export_subject)

    dossier = subparsers.add_parser("dossier", help="a complaint's dossier as JSON (journaled)")
    dossier.add_argument("complaint_id", help="complaint id")
    dossier.add_argument("--reason", required=True, help="why the dossier is exported (journaled)")
    dossier.add_argument("--by", help="who asks, for the access journal")
    dossier.add_argument("--out", help="file to write (default: standard output)")
    dossier.set_defaults(handler=export_dossier)

    journal = subparsers.add_parser("journal", help="the access journal: reveals, exports, erasures")
    actions = journal.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="the newest entries")
    listing.add_argument("-n", type=int, default=50, help="how many entries (default 50)")
    listing.add_argument("--json", action="store_true", help="one JSON object per entry")
    listing.set_defaults(handler=list_journal)
    verify = actions.add_parser("verify", help="check the journal's HMAC chain")
    verify.set_defaults(handler=verify_journal)


def journal_of(context: CliContext) -> Any:
    from callscreen.journal import AccessJournal

    return AccessJournal(context.client, context.settings.keyring("log_key"))


def complaints_of(context: CliContext) -> Any:
    from callscreen.complaints import ComplaintBook

    return ComplaintBook(context.store, context.log)


def operator(args: argparse.Namespace) -> str:
    return getattr(args, "by", None) or f"{getpass.getuser()}@cli"


def _number(raw: str, region: str) -> Any:
    try:
        return normalize(raw, region)
    except InvalidNumber as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc


@contextmanager
def output(path: str | None) -> Any:
    handle: IO[str] = open(path, "w", encoding="utf-8") if path else sys.stdout  # noqa: SIM115
    try:
        yield handle
    finally:
        if path:
            handle.close()


def erase_number(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.erasure import Eraser, ErasureError

    number = _number(args.number, args.region or context.settings.default_region)
    eraser = Eraser(context.store, context.log, journal_of(context), complaints_of(context))
    try:
        report = eraser.erase(number, reason=args.reason, by=operator(args), role=ROLE)
    except ErasureError as exc:
        raise CliError(str(exc), EXIT_INPUT) from exc
    print(f"erasure {report.erasure_id}: {mask(number.e164)} "
          f"{'was already erased; its records were checked again' if report.already_erased else 'erased'}: "
          f"{report.consents} consents and {report.complaints} complaints redacted, "
          f"{report.decisions} decision records shredded, {report.legacy_records_removed} legacy records removed; "
          "the number stays blocked (erased_subject)")
    return EXIT_OK


def run_migration(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.migrate import Migration

    migration = Migration(context.store, journal_of(context), complaints_of(context),
                          progress=lambda message: print(message, file=sys.stderr))
    if args.status:
        for step, state in migration.status().items():
            print(f"{step:12} {state}")
        return EXIT_OK
    report = migration.run()
    for step, count in report.changed.items():
        note = " (already done)" if step in report.skipped_steps else ""
        print(f"{step:12} {count} changed{note}")
    for problem in report.problems[:100]:
        print(f"problem: {problem}", file=sys.stderr)
    return EXIT_OK if not report.problems else EXIT_INPUT


def export_subject(args: argparse.Namespace, context: CliContext) -> int:
    from callscreen.records import gather

    number = _number(args.number, args.region or context.settings.default_region)
    digest = context.store.vault.digest(number.e164)
    journal_of(context).record(user=operator(args), role=ROLE, action="access_export", number_digest=digest,
                               reason=args.reason)
    data = {"number": number.e164,
            **gather(context.store, complaints_of(context), context.log, digest, decisions=10_000).to_dict()}
    with output(args.out) as out:
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    return EXIT_OK


def export_dossier(args: argparse.Namespace, context: CliContext) -> int:
    book = complaints_of(context)
    complaint = book.get(args.complaint_id)
    if complaint is None:
        raise CliError(f"no complaint {args.complaint_id!r}", EXIT_INPUT)
    journal_of(context).record(user=operator(args), role=ROLE, action="dossier_export",
                               number_digest=complaint.number_digest, reason=args.reason, subject=complaint.id)
    with output(args.out) as out:
        out.write(json.dumps(book.dossier(complaint.id), ensure_ascii=False, indent=2) + "\n")
    return EXIT_OK


def list_journal(args: argparse.Namespace, context: CliContext) -> int:
    for entry in reversed(journal_of(context).recent(max(1, min(args.n, 10_000)))):
        if args.json:
            print(json.dumps(codec.to_dict(entry), ensure_ascii=False))
        else:
            print(f"{codec.iso(entry.at)} {entry.user:20} {entry.role:11} {entry.action:18} "
                  f"{entry.number_digest[:12]:12} {entry.subject:20} {entry.reason}")
    return EXIT_OK


def verify_journal(args: argparse.Namespace, context: CliContext) -> int:
    report = journal_of(context).verify()
    for problem in report.problems[:100]:
        print(f"TAMPERED: {problem}")
    print(f"{report.entries} journal entries: {'intact' if report.ok else str(len(report.problems)) + ' problems'}")
    return EXIT_OK if report.ok else EXIT_TAMPERED
