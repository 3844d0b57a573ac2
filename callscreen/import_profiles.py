"""Import profiles: how a CRM export maps onto callscreen's consent fields.

A profile is a TOML file (built-in ones live in ``callscreen/import_profiles/``: ``generic``,
``bitrix24``, ``amocrm``; ``--mapping FILE`` names your own). It says how to decode the file
(encoding, delimiter), which header holds each field (several phone columns give one consent
per number), constant values (the purpose), value maps (source labels, yes/no flags), the date
formats and the time zone of naive times, and which rows are no consent at all (a «Нет» flag).

Reading yields one :class:`Record` per CSV record: its physical line, the CRM's record id, and
either canonical rows (one per phone number, in the columns of :mod:`callscreen.consent_import`)
or the reason it was skipped or is bad. Nothing here writes; the caller validates and saves.
See ``docs/import.md``.
"""

from __future__ import annotations

import codecs
import csv
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callscreen.numbers import InvalidNumber, PhoneNumber, normalize

BUILTIN_DIR = Path(__file__).with_name("import_profiles")
FIELDS = (
    "number", "purposes", "basis", "source", "captured_at", "verified_at", "expires_at", "relationship",
    "ip", "user_agent", "form_text", "form_version", "page_url", "recording_id", "document_id",
    "timezone", "subdivision", "id",
)
TIME_FIELDS = ("captured_at", "verified_at", "expires_at")
NEEDED = ("purposes", "source", "captured_at")  # from a column or a constant; number from a column
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t", "|": "|"}
SAMPLE_BYTES = 64 << 10


class ProfileError(ValueError):
    """A profile is malformed, or a file cannot be read as the profile says."""


@dataclass(frozen=True, slots=True)
class ConsentFlag:
    """A yes/no column: ``no`` rows are not consents (they are opt-outs, for ``optout import``)."""

    columns: tuple[str, ...]
    yes: frozenset[str]
    no: frozenset[str]


@dataclass(frozen=True, slots=True)
class ImportProfile:
    name: str
    description: str
    encoding: str  # "auto" (BOM, else UTF-8, else cp1251) or a Python codec name
    delimiter: str | None  # None: detected among , ; tab
    columns: dict[str, tuple[str, ...]]  # field -> header names (casefolded); number: every phone column
    record_id: tuple[str, ...]
    constants: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> casefolded label -> value
    date_formats: tuple[str, ...] = ()  # strptime formats tried in order; ISO 8601 is always accepted
    timezone: str = "UTC"  # the zone of times written without an offset
    consent_flag: ConsentFlag | None = None

    def with_timezone(self, zone: str) -> ImportProfile:
        _zone(f"{self.name}: timezone", zone)
        return ImportProfile(self.name, self.description, self.encoding, self.delimiter, self.columns,
                             self.record_id, self.constants, self.values, self.date_formats, zone,
                             self.consent_flag)


@dataclass(slots=True)
class Record:
    """One CSV record: canonical ``rows`` (one per phone number), or why it is ``skipped`` or bad."""

    line: int
    record_id: str = ""
    phones: list[tuple[str, str]] = field(default_factory=list)  # (phone column, number as written)
    rows: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (phone column, row)
    problem: str = ""
    skipped: str = ""
    declined: bool = False  # the consent flag said no


# --- loading a profile ----------------------------------------------------------------------------

def builtin_profiles() -> list[str]:
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.toml"))


def load_profile(spec: str | Path) -> ImportProfile:
    """A built-in profile by name, or a TOML file by path; raises ProfileError naming the field."""
    path = Path(spec)
    if not path.suffix and not path.exists():
        path = BUILTIN_DIR / f"{spec}.toml"
        if not path.is_file():
            raise ProfileError(f"no import profile {str(spec)!r}; built-in: {', '.join(builtin_profiles())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: {exc}") from exc
    return parse_profile(data, str(path))


def _names(where: str, value: Any) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ProfileError(f"{where}: {value!r} is not a header name or a list of them")
    return tuple(n.strip().casefold() for n in names)


def _zone(where: str, name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ProfileError(f"{where}: {name!r} is not an IANA time zone") from exc
    return name


def parse_profile(data: dict[str, Any], source: str) -> ImportProfile:
    top = data.get("profile", {})
    unknown = set(data) - {"profile", "columns", "constants", "values", "consent_flag"}
    if unknown:
        raise ProfileError(f"{source}: unknown sections {sorted(unknown)}")
    encoding = str(top.get("encoding", "auto"))
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise ProfileError(f"{source}: profile.encoding: {encoding!r} is not a known encoding") from exc
    delimiter = top.get("delimiter", "auto")
    if delimiter != "auto" and delimiter not in DELIMITERS:
        raise ProfileError(f"{source}: profile.delimiter: use one of auto, {', '.join(map(repr, DELIMITERS))}")
    columns = {}
    for name, value in data.get("columns", {}).items():
        if name not in FIELDS:
            raise ProfileError(f"{source}: columns.{name}: not a field; fields: {', '.join(FIELDS)}")
        columns[name] = _names(f"{source}: columns.{name}", value)
    if "number" not in columns:
        raise ProfileError(f"{source}: columns.number: required (the phone column or columns)")
    constants = {}
    for name, value in data.get("constants", {}).items():
        if name not in FIELDS or name == "number":
            raise ProfileError(f"{source}: constants.{name}: not a field that can be constant")
        if not isinstance(value, str):
            raise ProfileError(f"{source}: constants.{name}: {value!r} is not a string")
        constants[name] = value
    values = {}
    for name, table in data.get("values", {}).items():
        if name not in FIELDS or not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ProfileError(f"{source}: values.{name}: not a table of label = value for a field")
        values[name] = {label.strip().casefold(): value for label, value in table.items()}
    missing = [f for f in NEEDED if f not in columns and f not in constants]
    if missing:
        raise ProfileError(f"{source}: no column or constant for {', '.join(missing)}")
    formats = top.get("date_formats", [])
    if not isinstance(formats, list) or not all(isinstance(f, str) and "%" in f for f in formats):
        raise ProfileError(f"{source}: profile.date_formats: {formats!r} is not a list of strptime formats")
    flag = None
    if "consent_flag" in data:
        table = data["consent_flag"]
        try:
            flag = ConsentFlag(_names(f"{source}: consent_flag.column", table["column"]),
                               frozenset(s.strip().casefold() for s in table["yes"]),
                               frozenset(s.strip().casefold() for s in table["no"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ProfileError(f"{source}: consent_flag: needs column, yes = [...] and no = [...]") from exc
    record_id = _names(f"{source}: profile.record_id", top["record_id"]) if "record_id" in top else ()
    return ImportProfile(
        name=str(top.get("name", Path(source).stem)), description=str(top.get("description", "")),
        encoding=encoding, delimiter=None if delimiter == "auto" else DELIMITERS[delimiter], columns=columns,
        record_id=record_id, constants=constants, values=values, date_formats=tuple(formats),
        timezone=_zone(f"{source}: profile.timezone", str(top.get("timezone", "UTC"))), consent_flag=flag,
    )


# --- reading a file -----------------------------------------------------------------------------------

def detect_encoding(path: Path, wanted: str) -> str:
    """The codec to read ``path`` with: ``auto`` is a UTF-8 BOM, else valid UTF-8, else cp1251."""
    if wanted != "auto":
        return wanted
    with open(path, "rb") as handle:
        if handle.read(3) == codecs.BOM_UTF8:
            return "utf-8-sig"
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass
        handle.seek(0)
        decoder = codecs.getincrementaldecoder("cp1251")()
        try:
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise ProfileError("the file is neither UTF-8 nor cp1251 (Windows Cyrillic): set the profile's "
                               "encoding") from exc
        return "cp1251"


def _dialect(sample: str, delimiter: str | None) -> csv.Dialect | type[csv.Dialect]:
    if delimiter is None:
        try:
            delimiter = csv.Sniffer().sniff(sample.split("\n", 1)[0] or sample, delimiters=",;\t").delimiter
        except csv.Error:
            delimiter = ","

    class Export(csv.excel):
        strict = True  # a stray quote is an error on its row, not a silent merge of fields

    Export.delimiter = delimiter
    return Export


class ProfileReader:
    """Reads a CRM export with a profile into canonical rows; see :class:`Record`."""

    def __init__(self, profile: ImportProfile) -> None:
        self.profile = profile

    def records(self, path: Path) -> Iterator[Record]:
        encoding = detect_encoding(path, self.profile.encoding)
        with open(path, encoding=encoding, errors="surrogateescape", newline="") as handle:
            dialect = _dialect(handle.read(SAMPLE_BYTES), self.profile.delimiter)
            handle.seek(0)
            raw: list[str] = []  # the physical lines of the record being read

            def lines() -> Iterator[str]:
                for text in handle:
                    raw.append(text)
                    yield text

            reader = csv.reader(lines(), dialect)
            header = [h.strip().lstrip("\ufeff").casefold() for h in next(reader, [])]
            places = self._places(header)
            width = len(header)
            line = reader.line_num
            while True:
                raw.clear()
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    start, line = line + 1, reader.line_num
                    where = f"lines {start}-{line}" if line > start else f"line {start}"
                    yield Record(start, record_id=self._raw_id(raw, places, dialect.delimiter),
                                 problem=f"unreadable CSV in {where} ({exc}): a quote is not closed, or text "
                                         "follows a closing quote")
                    continue
                start, line = line + 1, reader.line_num
                if not any(v.strip() for v in values):
                    continue
                yield self._record(start, line, values, width, places, dialect.delimiter)

    @staticmethod
    def _raw_id(raw: list[str], places: dict[str, list[tuple[int, str]]], delimiter: str) -> str:
        """The record id from the first physical line of a record the CSV reader could not parse."""
        if not raw or "__id" not in places:
            return ""
        cells = raw[0].rstrip("\r\n").split(delimiter)
        index = places["__id"][0][0]
        return cells[index].strip().strip('"') if index < len(cells) else ""

    def _places(self, header: list[str]) -> dict[str, list[tuple[int, str]]]:
        """Field -> [(column index, header as written)] for every mapped header present."""
        places: dict[str, list[tuple[int, str]]] = {}
        fields = {**self.profile.columns, "__id": self.profile.record_id}
        if self.profile.consent_flag:
            fields["__flag"] = self.profile.consent_flag.columns
        for name, wanted in fields.items():
            found = [(header.index(w), w) for w in wanted if w in header]
            if found:
                places[name] = found if name == "number" else found[:1]
        missing = [f for f in ("number", *NEEDED) if f not in places and f not in self.profile.constants]
        if self.profile.consent_flag and "__flag" not in places:
            missing.append("the consent flag")
        if missing:
            wanted_names = {f: self.profile.columns.get(f, ()) for f in missing}
            detail = "; ".join(f"{f} ({' or '.join(repr(n) for n in names) or 'no column named'})"
                               for f, names in wanted_names.items())
            raise ProfileError(f"line 1: the header lacks {detail} — profile {self.profile.name!r}; "
                               f"the header has: {', '.join(header) or 'nothing'}")
        return places

    def _record(self, start: int, end: int, values: list[str], width: int,
                places: dict[str, list[tuple[int, str]]], delimiter: str) -> Record:
        record = Record(start)
        if "__id" in places:
            index = places["__id"][0][0]
            record.record_id = values[index].strip() if index < len(values) else ""
        if end > start:
            swallowed = [i for i, v in enumerate(values) if "\n" in v and _looks_like_rows(v, delimiter, width)]
            if swallowed:
                lines = f"line {end}" if end == start + 1 else f"lines {start + 1}-{end}"
                record.problem = (f"an unclosed quote swallowed {lines} into one field; "
                                  "fix the quote and import again")
                return record
        if len(values) != width:
            record.problem = f"{len(values)} fields where the header has {width}"
            return record
        record.phones = [(column, values[i].strip()) for i, column in places["number"] if values[i].strip()]
        flag = self.profile.consent_flag
        if flag is not None:
            said = values[places["__flag"][0][0]].strip().casefold()
            if said in flag.no:
                record.skipped, record.declined = f"consent flag {said or 'empty'!r}: no consent", True
                return record
            if said not in flag.yes:
                record.problem = f"consent flag {said!r} is neither yes ({', '.join(sorted(flag.yes))}) nor no"
                return record
        try:
            base = {name: self._value(name, values, places) for name in FIELDS if name != "number"}
        except ProfileError as exc:
            record.problem = str(exc)
            return record
        record.rows = [(column, {**base, "number": phone}) for column, phone in record.phones]
        if not record.rows:
            columns = " or ".join(column for _i, column in places["number"])
            record.problem = f"no phone number in {columns}"
        return record

    def _value(self, name: str, values: list[str], places: dict[str, list[tuple[int, str]]]) -> str:
        text = values[places[name][0][0]].strip() if name in places else ""
        text = text or self.profile.constants.get(name, "")
        labels = self.profile.values.get(name)
        if labels is not None and text:
            mapped = labels.get(text.casefold())
            if mapped is None:
                raise ProfileError(f"{name}: {text!r} is not a label this profile knows "
                                   f"({', '.join(sorted(labels))})")
            text = mapped
        if name in TIME_FIELDS and text:
            text = self._time(name, text)
        return text

    def _time(self, name: str, text: str) -> str:
        """A time as ISO 8601 UTC: naive times are in the profile's zone (the CRM account's)."""
        moment = None
        for pattern in self.profile.date_formats:
            try:
                moment = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        if moment is None:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError as exc:
                formats = ", ".join(self.profile.date_formats) or "ISO 8601"
                raise ProfileError(f"{name}: {text!r} matches none of the formats {formats}") from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(self.profile.timezone))
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _looks_like_rows(value: str, delimiter: str, width: int) -> bool:
    """A field holding whole lines of the file: a quote was not closed before the next row."""
    return width > 2 and any(piece.count(delimiter) >= width - 2 for piece in value.split("\n")[1:])


def declining_numbers(path: Path, profile: ImportProfile, region: str
                      ) -> Iterator[tuple[Record, list[PhoneNumber], str]]:
    """The numbers a CRM export asks not to call: the phones of each record whose consent flag says
    no (of every record when the profile has no flag). Yields (record, numbers, problem); a record
    with one bad number yields none of its numbers and the problem."""
    declined_only = profile.consent_flag is not None
    for record in ProfileReader(profile).records(path):
        if declined_only and not record.declined:
            if record.problem.startswith("consent flag"):
                yield record, [], record.problem
            continue
        if not record.phones:
            yield record, [], record.problem or "no phone number"
            continue
        numbers = []
        try:
            for column, phone in record.phones:
                try:
                    numbers.append(normalize(phone, region))
                except InvalidNumber as exc:
                    raise InvalidNumber(f"{column}: number: {exc}") from exc
        except InvalidNumber as exc:
            yield record, [], str(exc)
            continue
        yield record, numbers, ""
