"""Consent records from a CRM export (CSV): validate each row, keep the good, report the bad.

Invariant: a bad row never stops the import and never writes anything; it is reported with
its line number and the first problem found. Re-importing the same file changes nothing:
a row without an ``id`` gets one derived from its content — keyed (HMAC under a subkey of
``hash_key``), so the id cannot be reversed to the number by trying candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callscreen.codec import iso, parse_time
from callscreen.crypto import NumberVault
from callscreen.import_profiles import ImportProfile, ProfileReader, Record, load_profile
from callscreen.models import CONSENT_SOURCES, Consent, Contact, LegalBasis, Proof
from callscreen.numbers import InvalidNumber, PhoneNumber, normalize

PURPOSE = re.compile(r"^(\*|[a-z][a-z0-9_]{0,63})$")
MAX_FIELD = {"form_text": 20_000, "user_agent": 1_000}
DEFAULT_MAX_FIELD = 500
FUTURE_TOLERANCE = timedelta(minutes=5)
REQUIRED = ("number", "purposes", "source", "captured_at")


class RowError(ValueError):
    """One row's first problem, worded for the person fixing the file."""


@dataclass(frozen=True, slots=True)
class ConsentRow:
    number: PhoneNumber
    consent: Consent
    contact: Contact


class BadRow(NamedTuple):
    """A row not imported: its physical line, why, and the CRM's record id when the file has one."""

    line: int
    problem: str
    record_id: str = ""

    def __str__(self) -> str:
        record = f" (CRM record {self.record_id})" if self.record_id else ""
        return f"{self.line}{record}: {self.problem}"


@dataclass
class ImportReport:
    imported: int = 0  # consents written (one per phone number of a good record)
    new: int = 0  # of which were not on file before (a re-import adds none)
    records: int = 0  # good CRM records
    bad: list[BadRow] = field(default_factory=list)
    skipped: list[BadRow] = field(default_factory=list)  # e.g. the consent flag says no

    @property
    def bad_count(self) -> int:
        return len(self.bad)


def _field(row: Mapping[str, str | None], name: str) -> str:
    value = (row.get(name) or "").strip()
    if "\x00" in value:
        raise RowError(f"{name}: contains a NUL character")
    if any("\udc80" <= c <= "\udcff" for c in value):
        raise RowError(f"{name}: not valid UTF-8")
    limit = MAX_FIELD.get(name, DEFAULT_MAX_FIELD)
    if len(value) > limit:
        raise RowError(f"{name}: longer than {limit} characters")
    return value


def _time(row: Mapping[str, str | None], name: str) -> datetime | None:
    text = _field(row, name)
    try:
        return parse_time(text)
    except ValueError as exc:
        raise RowError(f"{name}: {text!r} is not an ISO 8601 time") from exc


def parse_row(row: Mapping[str, str | None], default_region: str, now: datetime, vault: NumberVault) -> ConsentRow:
    """Validate one CSV row into a consent; raises RowError. ``vault`` keys derived ids."""
    for name in REQUIRED:
        if not _field(row, name):
            raise RowError(f"{name}: required")
    try:
        number = normalize(_field(row, "number"), default_region)
    except InvalidNumber as exc:
        raise RowError(f"number: {exc}") from exc
    purposes = tuple(p.strip() for p in re.split(r"[;,|]", _field(row, "purposes")) if p.strip())
    bad = [p for p in purposes if not PURPOSE.match(p)]
    if bad or not purposes:
        raise RowError(f"purposes: {bad[0] if bad else ''!r} is not a purpose like 'promotions'")
    try:
        basis = LegalBasis(_field(row, "basis") or "consent")
    except ValueError as exc:
        raise RowError(f"basis: use one of {', '.join(b.value for b in LegalBasis)}") from exc
    source = _field(row, "source")
    if source not in CONSENT_SOURCES:
        raise RowError(f"source: {source!r} is not one of {', '.join(CONSENT_SOURCES)}")
    captured = _time(row, "captured_at")
    assert captured is not None
    if captured > now + FUTURE_TOLERANCE:
        raise RowError("captured_at: in the future")
    verified, expires = _time(row, "verified_at"), _time(row, "expires_at")
    if verified is not None and verified < captured:
        raise RowError("verified_at: before captured_at")
    if expires is not None and expires <= captured:
        raise RowError("expires_at: not after captured_at")
    relationship = _field(row, "relationship")
    if basis is LegalBasis.EXISTING_RELATIONSHIP and relationship not in ("purchase", "inquiry"):
        raise RowError("relationship: 'purchase' or 'inquiry' is required for existing_relationship")
    zone = _field(row, "timezone")
    if zone:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise RowError(f"timezone: {zone!r} is not an IANA time zone") from exc
    subdivision = _field(row, "subdivision").upper()
    if subdivision and not re.match(r"^[A-Z]{2}-[A-Z0-9]{1,3}$", subdivision):
        raise RowError(f"subdivision: {subdivision!r} is not an ISO 3166-2 code like US-FL")
    proof = Proof(**{name: _field(row, name) for name in Proof.__dataclass_fields__})
    consent_id = _field(row, "id") or derived_id(vault, number, purposes, source, captured)
    if not re.match(r"^[A-Za-z0-9_.:-]{1,80}$", consent_id):
        raise RowError(f"id: {consent_id!r} may only hold letters, digits and _ . : -")
    consent = Consent(
        id=consent_id, number_digest="", purposes=purposes, basis=basis, source=source, captured_at=captured,
        proof=proof, verified_at=verified, expires_at=expires, relationship=relationship,
    )
    return ConsentRow(number, consent, Contact(zone, subdivision))


def derived_id(vault: NumberVault, number: PhoneNumber, purposes: tuple[str, ...], source: str,
               captured: datetime) -> str:
    """The id of a consent given without one: keyed over its content (stable across re-imports)."""
    return vault.keyed_id("c", number.e164, ",".join(sorted(purposes)), source, iso(captured) or "")


def legacy_derived_id(number: PhoneNumber, purposes: tuple[str, ...], source: str, captured: datetime) -> str:
    """The unkeyed id earlier versions derived (reversible by brute force): only ``callscreen
    migrate`` computes it, to find and retire such ids."""
    import hashlib

    text = "|".join((number.e164, ",".join(sorted(purposes)), source, captured.isoformat()))
    return "c-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def import_consents(path: Path, save: Callable[[list[ConsentRow]], int | None], default_region: str,
                    vault: NumberVault, progress: Callable[[int], None] = lambda n: None, batch: int = 500,
                    now: datetime | None = None, profile: ImportProfile | None = None) -> ImportReport:
    """Import every good record of ``path`` through ``save`` (called with batches; it may return how
    many of them were new). A record with several phone numbers gives one consent per number, all
    or none: one bad number makes the whole record bad. Raises ProfileError when the file as a whole
    cannot be read as the profile says (encoding, header)."""
    report = ImportReport()
    now = now or datetime.now(UTC)
    pending: list[ConsentRow] = []

    def flush() -> None:
        new = save(pending)
        report.imported += len(pending)
        report.new += len(pending) if new is None else new
        pending.clear()

    for _record, rows in parse_records(path, profile or load_profile("generic"), default_region, now, vault,
                                       report):
        progress(1)
        if rows:
            pending.extend(rows)
            report.records += 1
            if len(pending) >= batch:
                flush()
    if pending:
        flush()
    return report


def parse_records(path: Path, profile: ImportProfile, default_region: str, now: datetime, vault: NumberVault,
                  report: ImportReport) -> Iterator[tuple[Record, list[ConsentRow]]]:
    """Each record of ``path`` with its validated consents (empty when skipped or bad: then it is
    counted in ``report``)."""
    for record in ProfileReader(profile).records(path):
        rows: list[ConsentRow] = []
        if record.skipped:
            report.skipped.append(BadRow(record.line, record.skipped, record.record_id))
        elif record.problem:
            report.bad.append(BadRow(record.line, record.problem, record.record_id))
        else:
            try:
                for column, row in record.rows:
                    try:
                        rows.append(parse_row(row, default_region, now, vault))
                    except RowError as exc:
                        raise RowError(f"{column}: {exc}" if len(record.rows) > 1 else str(exc)) from exc
            except RowError as exc:
                rows = []
                report.bad.append(BadRow(record.line, str(exc), record.record_id))
        yield record, rows
