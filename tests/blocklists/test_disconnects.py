"""Reassigned numbers: the disconnect list loads through the real store, reports bad rows by line,
keeps the latest date per number, and stores no number in clear."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest

from blocklists.disconnects import import_disconnects, last_import
from callscreen.numbers import normalize
from callscreen.store import FactQuery, run_pipeline

pytestmark = pytest.mark.also_cluster


def disconnected_at(store, raw: str) -> datetime | None:
    number = normalize(raw, "US")
    query = FactQuery(number, store.vault.digest(number.e164), datetime(2026, 11, 18, tzinfo=UTC), attempt_limit=0)
    return query.parse(run_pipeline(store.client, query.commands())).disconnected_at


def test_disconnect_dates_reach_the_facts_and_bad_rows_are_reported_by_line(store, tmp_path) -> None:
    path = tmp_path / "rnd.csv"
    path.write_text("number,date\n"
                    "(212) 555-0100,2026-03-31\n"
                    "not a number,2026-03-31\n"
                    "+1 305 555 0123,20260415\n"
                    "2125550199\n"
                    "212-555-0101,31/03/2026\n"
                    "\n", encoding="utf-8")
    report = import_disconnects(store, str(path), country="US")
    assert (report.numbers, report.updated, report.bad_count) == (2, 2, 3)
    assert [bad.line for bad in report.bad] == [3, 5, 6]
    assert "expected number,date" in report.bad[1].reason and "not a date" in report.bad[2].reason
    assert disconnected_at(store, "+12125550100") == datetime(2026, 3, 31, tzinfo=UTC)
    assert disconnected_at(store, "+13055550123") == datetime(2026, 4, 15, tzinfo=UTC)
    assert disconnected_at(store, "+12125550101") is None
    assert last_import(store.client)["numbers"] == 2
    dump = b"".join(store.client.dump(key) or b"" for key in store.client.scan_iter("*"))
    assert b"2125550100" not in dump and b"3055550123" not in dump


def test_a_later_date_replaces_an_earlier_one_and_never_the_reverse(store, tmp_path) -> None:
    newer, older = tmp_path / "newer.csv.gz", tmp_path / "older.csv"
    with gzip.open(newer, "wt", encoding="utf-8") as handle:
        handle.write("2125550100,2026-06-01\n")
    older.write_text("2125550100,2025-01-01\n", encoding="utf-8")
    assert import_disconnects(store, str(newer), country="US").updated == 1
    assert import_disconnects(store, str(older), country="US").updated == 0
    assert disconnected_at(store, "+12125550100") == datetime(2026, 6, 1, tzinfo=UTC)
