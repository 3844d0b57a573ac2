"""Public-holiday calendars: a cached year is exactly the library's, a later process reads it
without importing the library, and a damaged or unwritable cache changes nothing but speed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from importlib import metadata
from pathlib import Path

import holidays
import pytest

from callscreen import calendars


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "calendars"
    calendars.use_cache(folder)
    calendars.holidays_in.cache_clear()
    yield folder
    calendars.use_cache(None)
    calendars.holidays_in.cache_clear()


def _file(folder: Path, code: str, year: int) -> Path:
    return folder / f"holidays-{metadata.version('holidays')}" / f"{code}-{year}.json"


def test_a_cached_year_is_exactly_what_the_library_computes(cache: Path) -> None:
    days = calendars.holidays_in("GB-ENG", 2026)
    assert days == frozenset(holidays.country_holidays("GB", subdiv="ENG", years=2026))
    stored = json.loads(_file(cache, "GB-ENG", 2026).read_text(encoding="utf-8"))
    assert sorted(stored) == sorted(day.isoformat() for day in days)


def test_a_later_process_reads_the_year_without_importing_the_library(cache: Path) -> None:
    calendars.holidays_in("RU", 2026)
    program = (
        "import sys; from datetime import date; from pathlib import Path; from callscreen import calendars; "
        f"calendars.use_cache(Path({str(cache)!r})); days = calendars.holidays_in('RU', 2026); "
        "print(date(2026, 1, 9) in days, date(2026, 1, 12) in days, 'holidays' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False", "False"]  # 9 Jan 2026 is a decreed day off


@pytest.mark.parametrize("damage", ["not json", '{"2026-01-01": 1}', '["2025-01-01"]', '["01-01"]', "[1]"])
def test_a_damaged_cache_file_is_recomputed_and_replaced(cache: Path, damage: str) -> None:
    path = _file(cache, "RU", 2026)
    path.parent.mkdir(parents=True)
    path.write_text(damage, encoding="utf-8")
    days = calendars.holidays_in("RU", 2026)
    assert days == frozenset(holidays.country_holidays("RU", years=2026))
    assert json.loads(path.read_text(encoding="utf-8")) == sorted(day.isoformat() for day in days)


def test_an_unwritable_cache_changes_nothing_but_speed(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    calendars.use_cache(blocker / "calendars")  # cannot be created under a file
    calendars.holidays_in.cache_clear()
    try:
        assert date(2026, 1, 9) in calendars.holidays_in("RU", 2026)
    finally:
        calendars.use_cache(None)
        calendars.holidays_in.cache_clear()


def test_an_unknown_calendar_is_refused_and_not_cached(cache: Path) -> None:
    with pytest.raises(calendars.UnknownCalendar):
        calendars.check("XQ")
    with pytest.raises(calendars.UnknownCalendar):
        calendars.holidays_in("GB-NOWHERE", 2026)
    assert not any(cache.rglob("*.json"))


def test_a_code_unfit_for_a_file_name_is_computed_but_never_cached(cache: Path) -> None:
    with pytest.raises(calendars.UnknownCalendar):
        calendars.holidays_in("../RU", 2026)
    assert not cache.exists()
