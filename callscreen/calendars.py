"""Public-holiday calendars: the ``holidays`` library's, by country or ``country-subdivision`` code.

Computing any calendar makes the library import its table of every country (0.1-0.2 s), which a
process that decides one call and exits (the classic AGI script) would pay on every call.
:func:`use_cache` gives such a process a folder where each computed year is kept as a small JSON
file under the library's version, so the next process reads the year instead of importing the
library. Invariants: a cached year is exactly what the library computed for that code, year and
library version; a file that does not read back as a list of dates of that year is ignored and
recomputed; the cache is an optimisation only (an unwritable folder changes nothing but speed).
Long-running processes need no folder: every year is kept in memory once computed.
"""

from __future__ import annotations

import contextlib
import json
import re
from datetime import date
from functools import cache, lru_cache
from pathlib import Path

from callscreen.files import write_atomically

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,31}$")  # a code or version fit for a file name
_cache_dir: Path | None = None


class UnknownCalendar(ValueError):
    """The ``holidays`` library has no calendar for this country or subdivision."""


def use_cache(folder: Path | None) -> None:
    """Keep computed years in ``folder`` (None: in memory only) for the processes that follow."""
    global _cache_dir
    _cache_dir = folder


def check(code: str) -> str:
    """``code`` names a calendar the library knows (``RU``, ``GB-ENG``…), else UnknownCalendar."""
    holidays_in(code, date.today().year)
    return code


@lru_cache(maxsize=256)
def holidays_in(code: str, year: int) -> frozenset[date]:
    """The public holidays (observed days and decreed transfers included) of ``code`` in ``year``."""
    path = _cache_file(code, year)
    if path is not None:
        cached = _read(path, year)
        if cached is not None:
            return cached
    days = _compute(code, year)
    if path is not None:
        _write(path, days)
    return days


def _compute(code: str, year: int) -> frozenset[date]:
    import holidays  # the maintained public-holiday calendars (moving feasts, decreed transfers)

    country, _, subdivision = code.partition("-")
    try:
        return frozenset(holidays.country_holidays(country, subdiv=subdivision or None, years=year))
    except NotImplementedError as exc:
        raise UnknownCalendar(str(exc)) from exc


@cache
def _library_version() -> str | None:
    """The installed ``holidays`` version, found without importing the library: from the name of
    the ``holidays-<version>.dist-info`` folder an installed wheel leaves beside the package
    (``importlib.metadata`` would parse the library's metadata with the ``email`` package: ≈ 10 ms
    of a classic-script call), else from the metadata."""
    from importlib.util import find_spec

    spec = find_spec("holidays")
    if spec is None or spec.origin is None:
        return None
    found = list(Path(spec.origin).parent.parent.glob("holidays-*.dist-info"))
    if len(found) == 1:
        version = found[0].name.removeprefix("holidays-").removesuffix(".dist-info")
    else:  # not the standard layout (or leftovers of several installs): ask the metadata
        from importlib import metadata

        try:
            version = metadata.version("holidays")
        except metadata.PackageNotFoundError:
            return None
    return version if _SAFE_NAME.fullmatch(version) else None


def _cache_file(code: str, year: int) -> Path | None:
    if _cache_dir is None or not _SAFE_NAME.fullmatch(code):
        return None
    version = _library_version()
    return None if version is None else _cache_dir / f"holidays-{version}" / f"{code}-{year:04d}.json"


def _read(path: Path, year: int) -> frozenset[date] | None:
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
        days = frozenset(date.fromisoformat(text) for text in listed) if isinstance(listed, list) else None
    except (OSError, ValueError, TypeError):  # absent, unreadable, not JSON, not a list of dates
        return None
    return days if days is not None and all(day.year == year for day in days) else None


def _write(path: Path, days: frozenset[date]) -> None:
    with contextlib.suppress(OSError):  # a cache: an unwritable folder changes nothing but speed
        write_atomically(path, json.dumps(sorted(day.isoformat() for day in days)))
