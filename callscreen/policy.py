"""Policy packs: what each jurisdiction's law asks of a marketing call, as data.

A pack is a TOML file in ``callscreen/policy/packs/`` (or in ``Settings.policy_dir``, where a
file of the same id replaces the built-in one). Each default in a shipped pack cites its
source in a comment. Loading validates every field and fails with :class:`PolicyError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta

from callscreen import calendars
from callscreen.files import write_atomically
from callscreen.models import DOUBLE_OPT_IN_SOURCES, PROOF_FIELDS, Campaign, LegalBasis

BUILTIN_DIR = Path(__file__).with_name("policy") / "packs"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
AUTOMATIC_DIALING_RULES = ("allowed", "consent_only", "forbidden")
EU_MEMBERS = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT",
    "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})


class PolicyError(ValueError):
    """A policy pack is missing, malformed or self-contradictory."""


@dataclass(frozen=True, slots=True)
class Window:
    """A daily calling window ``[start, end)`` in the callee's local time."""

    start: time
    end: time

    def contains(self, moment: time) -> bool:
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def check_calendar(code: str) -> str:
    """``code`` names a calendar of the ``holidays`` library (``RU``, ``GB-ENG``…) or PolicyError."""
    try:
        return calendars.check(code)
    except calendars.UnknownCalendar as exc:
        raise PolicyError(f"{code!r} is not a holiday calendar the holidays library knows: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CallingHours:
    """Windows per weekday (Monday = 0) and for public holidays; ``None`` means no calls.

    A day is a holiday when the named ``calendar`` (a country, or country-subdivision, of the
    ``holidays`` library: Easter, observed days and decreed transfers included) or the pack's own
    ``holidays`` list says so."""

    by_weekday: tuple[Window | None, ...]
    holiday: Window | None
    holidays: frozenset[str] = frozenset()  # "MM-DD" every year, or "YYYY-MM-DD" once
    calendar: str = ""

    def is_holiday(self, day: date) -> bool:
        if day.strftime("%m-%d") in self.holidays or day.isoformat() in self.holidays:
            return True
        return bool(self.calendar) and day in calendars.holidays_in(self.calendar, day.year)

    def window_for(self, day: date) -> tuple[Window | None, str]:
        if self.is_holiday(day):
            return self.holiday, "holiday"
        return self.by_weekday[day.weekday()], DAYS[day.weekday()]


@dataclass(frozen=True, slots=True)
class Period:
    """A span counted in calendar months and days: 18 months after 31 August is 28 February."""

    months: int = 0
    days: int = 0

    def after(self, start: datetime) -> datetime:
        return start + relativedelta(months=self.months, days=self.days)

    def __str__(self) -> str:
        parts = [f"{self.months} months" if self.months else "", f"{self.days} days" if self.days else ""]
        return " ".join(p for p in parts if p) or "0 days"


@dataclass(frozen=True, slots=True)
class AttemptCap:
    max_attempts: int
    window: timedelta


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of record is kept, in days (see ``docs/privacy.md``).

    ``consents_days`` runs from a consent's withdrawal or expiry; ``unverified_consents_days``
    from the capture of a consent still awaiting the confirmation the pack requires
    (``None`` when the pack requires none); ``complaints_days`` from a complaint's resolution;
    the others from the moment the record was written.
    """

    decisions_days: int
    outcomes_days: int
    consents_days: int
    unverified_consents_days: int | None
    complaints_days: int
    journal_days: int


@dataclass(frozen=True, slots=True)
class PolicyPack:
    """One jurisdiction's rules. See ``docs/policy.md`` for each field's meaning."""

    id: str
    version: str
    jurisdiction: str
    name: str
    advertising_bases: tuple[LegalBasis, ...]
    other_bases: tuple[LegalBasis, ...]
    verification_required_for: tuple[str, ...]  # the pack's own confirmation rule (retention keys on it)
    proof_required: dict[str, tuple[str, ...]]
    automatic_dialing: str
    ebr_after_purchase: Period
    ebr_after_inquiry: Period
    registries: tuple[str, ...]
    registry_max_age_days: int
    registry_exempt_bases: tuple[LegalBasis, ...]
    hours: CallingHours
    retention: Retention
    subdivision_hours: dict[str, CallingHours] = field(default_factory=dict)
    attempt_cap: AttemptCap | None = None
    subdivision_attempt_caps: dict[str, AttemptCap] = field(default_factory=dict)
    subdivision_registries: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reassigned_numbers: bool = False

    def accepted_bases(self, campaign: Campaign) -> tuple[LegalBasis, ...]:
        return self.advertising_bases if campaign.advertising else self.other_bases

    def proof_for(self, source: str) -> tuple[str, ...]:
        """The proof fields a consent from ``source`` must carry before it is a basis."""
        return self.proof_required.get(source, ())

    def all_registries(self) -> tuple[str, ...]:
        """Every registry a call may need: the national ones, then each subdivision's."""
        scoped = (r for ids in self.subdivision_registries.values() for r in ids)
        return tuple(dict.fromkeys((*self.registries, *scoped)))

    def registries_for(self, subdivision: str | None) -> tuple[str, ...]:
        """The national registries plus the subdivision's (every subdivision's when unknown)."""
        if subdivision:
            return tuple(dict.fromkeys((*self.registries, *self.subdivision_registries.get(subdivision, ()))))
        return self.all_registries()

    def hours_for(self, subdivision: str | None) -> list[CallingHours]:
        """Every hours table that may apply: the subdivision's if known; if it is not
        known and the pack has subdivision rules, the default and all of them (strictest)."""
        if subdivision and subdivision in self.subdivision_hours:
            return [self.subdivision_hours[subdivision]]
        if subdivision or not self.subdivision_hours:
            return [self.hours]
        return [self.hours, *self.subdivision_hours.values()]

    @property
    def attempt_read_limit(self) -> int:
        """How many of a number's newest attempts decide every cap of this pack (0: no cap).

        A cap of N calls in a window is reached iff the N-th newest attempt up to now lies in
        the window, so the newest ``max(N)`` attempts decide every cap exactly, however many
        calls the number has had; one more keeps the count a record shows exact up to the
        cap (beyond it, the record says "at least"). The store reads no more than that."""
        caps = [self.attempt_cap] if self.attempt_cap else []
        caps.extend(self.subdivision_attempt_caps.values())
        return max((cap.max_attempts + 1 for cap in caps), default=0)

    def attempt_caps_for(self, subdivision: str | None) -> list[AttemptCap]:
        caps = [self.attempt_cap] if self.attempt_cap else []
        if subdivision and subdivision in self.subdivision_attempt_caps:
            caps.append(self.subdivision_attempt_caps[subdivision])
        elif not subdivision:
            caps.extend(self.subdivision_attempt_caps.values())
        return caps


# --- parsing -----------------------------------------------------------------------------

def _window(where: str, text: Any) -> Window | None:
    if text in ("", None, "closed"):
        return None
    try:
        start_text, end_text = str(text).split("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError as exc:
        raise PolicyError(f"{where}: {text!r} is not a window like '08:00-21:00'") from exc
    if start >= end:
        raise PolicyError(f"{where}: window {text!r} ends before it starts")
    return Window(start, end)


def _hours(where: str, table: dict[str, Any], base: CallingHours | None = None) -> CallingHours:
    unknown = set(table) - {*DAYS, "holiday", "holidays", "every_day", "calendar"}
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
    every = table.get("every_day")
    by_day = []
    for index, day in enumerate(DAYS):
        if day in table:
            by_day.append(_window(f"{where}.{day}", table[day]))
        elif every is not None:
            by_day.append(_window(f"{where}.every_day", every))
        elif base is not None:
            by_day.append(base.by_weekday[index])
        else:
            raise PolicyError(f"{where}: no window for {day}")
    if "holiday" in table:
        holiday = _window(f"{where}.holiday", table["holiday"])
    elif every is not None:
        holiday = _window(f"{where}.every_day", every)
    else:
        holiday = base.holiday if base else None
    holidays = frozenset(table.get("holidays", base.holidays if base else ()))
    for entry in holidays:
        try:
            date.fromisoformat(entry if len(entry) == 10 else f"2000-{entry}")
        except ValueError as exc:
            raise PolicyError(f"{where}.holidays: {entry!r} is not MM-DD or YYYY-MM-DD") from exc
    calendar = table.get("calendar", base.calendar if base else "")
    if not isinstance(calendar, str):
        raise PolicyError(f"{where}.calendar: {calendar!r} is not a calendar name like \"RU\" or \"GB-ENG\"")
    if calendar:
        try:
            check_calendar(calendar)
        except PolicyError as exc:
            raise PolicyError(f"{where}.calendar: {exc}") from exc
    return CallingHours(tuple(by_day), holiday, holidays, calendar)


def _bases(where: str, values: Iterable[str]) -> tuple[LegalBasis, ...]:
    try:
        return tuple(LegalBasis(v) for v in values)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from exc


def _int(where: str, table: dict[str, Any], name: str, default: int = 0) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyError(f"{where}.{name}: {value!r} is not a whole number")
    return value


def _period(where: str, table: dict[str, Any], name: str) -> Period:
    """``after_<name>_months`` (calendar months, as the US rules count) or ``after_<name>_days``."""
    months_key, days_key = f"after_{name}_months", f"after_{name}_days"
    if months_key in table and days_key in table:
        raise PolicyError(f"{where}: give {months_key} or {days_key}, not both")
    if months_key in table:
        return Period(months=_int(where, table, months_key))
    return Period(days=_int(where, table, days_key))


def _proof(where: str, table: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Required proof per consent source. ``verification_required_for`` is shorthand for
    ``verified_at``; a source that claims a double opt-in always needs its confirmation time."""
    required: dict[str, list[str]] = {s: ["verified_at"] for s in DOUBLE_OPT_IN_SOURCES}
    for source in _strings(where, table, "verification_required_for"):
        required.setdefault(source, []).append("verified_at")
    proof = table.get("proof", {})
    if not isinstance(proof, dict):
        raise PolicyError(f"{where}.proof: {proof!r} is not a table of source = [fields]")
    for source in proof:
        for name in _strings(f"{where}.proof", proof, source):
            if name not in PROOF_FIELDS:
                raise PolicyError(f"{where}.proof.{source}: {name!r} is not one of {list(PROOF_FIELDS)}")
            required.setdefault(source, []).append(name)
    return {source: tuple(dict.fromkeys(fields)) for source, fields in required.items()}


def _subdivision_registries(where: str, table: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    return {code: _strings(f"{where}.{code}", sub, "required")
            for code, sub in table.items() if isinstance(sub, dict)}


def _strings(where: str, table: dict[str, Any], name: str, required: bool = False) -> tuple[str, ...]:
    if required and name not in table:
        raise KeyError(name)
    value = table.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}.{name}: {value!r} is not a list of strings like [\"a\", \"b\"]")
    return tuple(value)


def _flag(where: str, table: dict[str, Any], name: str) -> bool:
    value = table.get(name, False)
    if not isinstance(value, bool):
        raise PolicyError(f"{where}.{name}: {value!r} is not true or false")
    return value


def _cap(where: str, table: dict[str, Any]) -> AttemptCap:
    try:
        cap = AttemptCap(int(table["max"]), timedelta(hours=float(table["window_hours"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"{where}: needs integer 'max' and number 'window_hours'") from exc
    if cap.max_attempts < 1 or cap.window <= timedelta(0):
        raise PolicyError(f"{where}: cap must be positive")
    return cap


RETENTION_FIELDS = ("decisions_days", "outcomes_days", "consents_days", "complaints_days", "journal_days")


def _retention(where: str, table: dict[str, Any], verification: tuple[str, ...]) -> Retention:
    """Every period is required and at least a day; ``unverified_consents_days`` only (and then
    necessarily) when the pack requires consents to be confirmed."""
    unknown = set(table) - {*RETENTION_FIELDS, "unverified_consents_days"}
    if unknown:
        raise PolicyError(f"{where}: unknown keys {sorted(unknown)}")
    days = {}
    for name in RETENTION_FIELDS:
        if name not in table:
            raise PolicyError(f"{where}.{name}: missing (days to keep, with its source cited)")
        days[name] = _int(where, table, name)
        if days[name] < 1:
            raise PolicyError(f"{where}.{name}: must be at least 1 day")
    unverified = None
    if verification:
        if "unverified_consents_days" not in table:
            raise PolicyError(f"{where}.unverified_consents_days: missing (consent.verification_required_for "
                              "is set, so unconfirmed consents need a period)")
        unverified = _int(where, table, "unverified_consents_days")
        if unverified < 1:
            raise PolicyError(f"{where}.unverified_consents_days: must be at least 1 day")
    return Retention(unverified_consents_days=unverified, **days)


def parse_pack(data: dict[str, Any], source: str) -> PolicyPack:
    """Build a pack from TOML data (with its ``extends`` ancestors already merged in)."""
    where = source
    try:
        pack = data["pack"]
        bases = data["bases"]
        hours = _hours(f"{where}: hours", {k: v for k, v in data["hours"].items() if not isinstance(v, dict)})
        subdivision_hours = {
            code: _hours(f"{where}: hours.{code}", table, hours)
            for code, table in data["hours"].items()
            if isinstance(table, dict)
        }
        attempts = data.get("attempts", {})
        automatic = data["automatic_dialing"]["advertising"]
        if automatic not in AUTOMATIC_DIALING_RULES:
            raise PolicyError(f"{where}: automatic_dialing.advertising must be one of {AUTOMATIC_DIALING_RULES}")
        registries = data.get("registries", {})
        ebr = data.get("existing_relationship", {})
        verification = _strings(f"{where}: consent", data.get("consent", {}), "verification_required_for")
        return PolicyPack(
            id=str(pack["id"]),
            version=str(pack["version"]),
            jurisdiction=str(pack["jurisdiction"]).upper(),
            name=str(pack.get("name", pack["id"])),
            advertising_bases=_bases(f"{where}: bases.advertising",
                                     _strings(f"{where}: bases", bases, "advertising", True)),
            other_bases=_bases(f"{where}: bases.other", _strings(f"{where}: bases", bases, "other", True)),
            verification_required_for=verification,
            proof_required=_proof(f"{where}: consent", data.get("consent", {})),
            automatic_dialing=automatic,
            ebr_after_purchase=_period(f"{where}: existing_relationship", ebr, "purchase"),
            ebr_after_inquiry=_period(f"{where}: existing_relationship", ebr, "inquiry"),
            registries=_strings(f"{where}: registries", registries, "required"),
            registry_max_age_days=_int(f"{where}: registries", registries, "max_age_days"),
            registry_exempt_bases=_bases(f"{where}: registries.exempt_bases",
                                         _strings(f"{where}: registries", registries, "exempt_bases")),
            hours=hours,
            retention=_retention(f"{where}: retention", data["retention"], verification),
            subdivision_hours=subdivision_hours,
            attempt_cap=_cap(f"{where}: attempts", attempts) if "max" in attempts else None,
            subdivision_attempt_caps={
                code: _cap(f"{where}: attempts.{code}", table)
                for code, table in attempts.items()
                if isinstance(table, dict)
            },
            subdivision_registries=_subdivision_registries(f"{where}: registries", registries),
            reassigned_numbers=_flag(f"{where}: consent", data.get("consent", {}), "void_after_reassignment"),
        )
    except KeyError as exc:
        raise PolicyError(f"{where}: missing {exc.args[0]!r}") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"{where}: {exc}") from exc


def _merge(parent: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """A child pack replaces its parent's fields section by section (hours table by table)."""
    merged = {**parent, **data}
    for section, value in parent.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            merged[section] = {**value, **data[section]}
    return merged


def _resolved(stem: str, raw: dict[str, tuple[dict[str, Any], str]],
              seen: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    """A pack's data with every ancestor named by ``extends`` merged in, parents first."""
    data, source = raw[stem]
    parent_id = data.get("pack", {}).get("extends")
    if not parent_id:
        return data, source
    if parent_id in seen or parent_id == stem:
        raise PolicyError(f"{source}: extends forms a cycle through {parent_id!r}")
    if parent_id not in raw:
        raise PolicyError(f"{source}: extends unknown pack {parent_id!r}")
    parent, _ = _resolved(parent_id, raw, (*seen, stem))
    return _merge(parent, data), source


_Source = tuple[dict[str, Any], str]  # a pack's TOML data (ancestors merged in) and its file


class PolicyBook:
    """All loaded packs, by jurisdiction code (``RU``, ``US``, ``GB``, ``EU``, ``BG``…).

    :meth:`load` validates every pack at once (the server, the CLI). :meth:`load_lazily` reads
    every file (so a TOML error or an ``extends`` cycle still fails at once) but builds and
    validates a pack only when it is first asked for: a process that decides one call (the
    classic AGI script) pays for its campaign's pack alone, and imports a holiday calendar only
    if that pack names one. Either way a pack, once built, is the same object for the same files.
    """

    def __init__(self, packs: Iterable[PolicyPack], pending: dict[str, _Source] | None = None) -> None:
        self._by_jurisdiction = {p.jurisdiction: p for p in packs}
        self._pending = pending or {}  # jurisdiction -> (resolved data, source), built on first use

    @classmethod
    def load(cls, override_dir: Path | None = None) -> PolicyBook:
        raw = _read_packs(override_dir)
        packs = [parse_pack(*_resolved(stem, raw, ())) for stem in raw]
        return cls(packs)

    @classmethod
    def load_lazily(cls, override_dir: Path | None = None, cache_dir: Path | None = None) -> PolicyBook:
        """Like :meth:`load`, but each pack is built (and validated) on its first :meth:`get`.
        With ``cache_dir`` the files' TOML is parsed once per content (see :func:`_read_packs`)."""
        raw = _read_packs(override_dir, cache_dir)
        pending: dict[str, _Source] = {}
        for stem in raw:  # same order as load(): a later file of the same jurisdiction wins
            data, source = _resolved(stem, raw, ())
            pack_table = data.get("pack")
            jurisdiction = pack_table.get("jurisdiction") if isinstance(pack_table, dict) else None
            if jurisdiction is None:
                parse_pack(data, source)  # raises the PolicyError load() would
            pending[str(jurisdiction).upper()] = (data, source)
        return cls((), pending)

    def jurisdictions(self) -> list[str]:
        return sorted({*self._by_jurisdiction, *self._pending})

    def get(self, jurisdiction: str) -> PolicyPack | None:
        key = jurisdiction.upper()
        pack = self._by_jurisdiction.get(key)
        if pack is None and key in self._pending:
            pack = self._by_jurisdiction[key] = parse_pack(*self._pending[key])
            del self._pending[key]
        return pack

    def for_campaign(self, campaign: Campaign) -> PolicyPack | None:
        return self.get(campaign.jurisdiction)

    def for_region(self, region: str) -> PolicyPack | None:
        """The pack for a number's country: its own, else the EU baseline for a member state."""
        return self.get(region) if region and self.get(region) else (
            self.get("EU") if region.upper() in EU_MEMBERS else None)

    def packs(self) -> list[PolicyPack]:
        return [pack for pack in map(self.get, self.jurisdictions()) if pack is not None]


def _read_packs(override_dir: Path | None, cache_dir: Path | None = None) -> dict[str, _Source]:
    """Every pack file's TOML by file stem: the built-in ones, then the override folder's (a file
    of the same stem replaces the built-in one in place).

    With ``cache_dir`` (the classic script, one process per call) what the files parse to is
    kept in ``cache_dir/packs.json`` under a SHA-256 of every file's path and text, and read
    from there while the files are unchanged: no TOML parser is imported or run. Invariants: a
    cache entry is exactly what ``tomllib`` made of those very texts (data that JSON would not
    give back as it was is not cached); a missing, stale or unreadable file is ignored and
    written anew; the cache changes nothing but speed (an unwritable folder included)."""
    files: list[tuple[Path, str]] = []
    for folder in [BUILTIN_DIR] + ([override_dir] if override_dir else []):
        if not folder.is_dir():
            raise PolicyError(f"policy folder {folder} does not exist")
        files.extend((path, path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.toml")))
    key = hashlib.sha256(json.dumps([[str(path), text] for path, text in files]).encode()).hexdigest()
    cache = cache_dir / "packs.json" if cache_dir is not None else None
    if cache is not None:
        cached = _read_cache(cache, key)
        if cached is not None:
            return cached
    import tomllib  # only when the files changed (or nothing is cached): most calls never need it

    raw: dict[str, _Source] = {}
    for path, text in files:
        try:
            raw[path.stem] = (tomllib.loads(text), str(path))
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path}: {exc}") from exc
    if cache is not None:
        _write_cache(cache, key, raw)
    return raw


def _read_cache(cache: Path, key: str) -> dict[str, _Source] | None:
    try:
        stored = json.loads(cache.read_text(encoding="utf-8"))
        if stored["key"] != key:
            return None
        raw = {stem: (data, source) for stem, (data, source) in stored["packs"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # absent, unreadable, not this shape
        return None
    return raw if all(isinstance(data, dict) and isinstance(source, str) for data, source in raw.values()) else None


def _write_cache(cache: Path, key: str, raw: dict[str, _Source]) -> None:
    packs = {stem: [data, source] for stem, (data, source) in raw.items()}
    try:
        text = json.dumps({"key": key, "packs": packs}, allow_nan=False)
    except (TypeError, ValueError):  # a TOML date or time, an inf or nan: JSON would not give it back
        return
    if json.loads(text)["packs"] != packs:
        return
    with contextlib.suppress(OSError):  # a cache: an unwritable folder changes nothing but speed
        write_atomically(cache, text)
