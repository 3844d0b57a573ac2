"""CRM consent import: good rows kept, bad rows reported with line numbers, nothing lost."""

from datetime import UTC, datetime

import pytest

from callscreen.consent_import import RowError, import_consents, legacy_derived_id, parse_row
from callscreen.crypto import NumberVault
from callscreen.import_profiles import ProfileError
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY

VAULT = NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY)
NOW = datetime(2026, 11, 20, tzinfo=UTC)
HEADER = "number,purposes,basis,source,captured_at,verified_at,form_text,form_version,timezone,relationship\n"


def run_import(tmp_path, body: str, header: str = HEADER, encoding: str = "utf-8"):
    path = tmp_path / "crm.csv"
    path.write_bytes((header + body).encode(encoding) if isinstance(body, str) else body)
    saved = []
    report = import_consents(path, saved.extend, "RU", VAULT, now=NOW)
    return report, saved


def test_good_rows_are_kept_and_bad_rows_reported_with_their_line_numbers(tmp_path):
    body = (
        "8 (999) 123-45-67,promotions,consent,web_form,2026-05-01T10:00:00Z,,Согласен,v3,Europe/Moscow,\n"
        "12345,promotions,consent,web_form,2026-05-01T10:00:00Z,,,,,\n"
        "+79161234567,promotions;appointment_reminders,consent,paper,2026-05-02,,,,,\n"
        "+79161234568,promotions,consent,carrier_pigeon,2026-05-02,,,,,\n"
        "+79161234569,promotions,consent,paper,yesterday,,,,,\n"
        "\"+7 916 123-45-60\",\"promotions\",consent,paper,2026-05-02,,\"multi\nline text\",,,\n"
        "+79161234561,promotions,consent,paper,2026-05-02,,,,Mars/Olympus,\n"
        "+79161234562,promotions,existing_relationship,crm_import,2026-05-02,,,,,\n"
        "+79161234563,promotions,consent,paper\n"
    )
    report, saved = run_import(tmp_path, body)
    assert report.imported == 3 == len(saved)
    assert [bad.line for bad in report.bad] == [3, 5, 6, 9, 10, 11]
    problems = {bad.line: bad.problem for bad in report.bad}
    assert problems[3].startswith("number:")
    assert "carrier_pigeon" in problems[5]
    assert "captured_at" in problems[6]
    assert "timezone" in problems[9]
    assert "relationship" in problems[10]
    assert "fields" in problems[11]
    assert saved[0].consent.proof.form_text == "Согласен" and saved[0].contact.timezone == "Europe/Moscow"
    assert saved[1].consent.purposes == ("promotions", "appointment_reminders")


def test_reimporting_the_same_file_derives_the_same_ids(tmp_path):
    body = "+79991234567,promotions,consent,web_form,2026-05-01T10:00:00Z,,,,,\n"
    _, first = run_import(tmp_path, body)
    _, second = run_import(tmp_path, body)
    assert first[0].consent.id == second[0].consent.id


def test_a_file_without_the_required_columns_is_refused_as_a_whole(tmp_path):
    with pytest.raises(ProfileError, match="header lacks"):
        run_import(tmp_path, "x\n", header="phone,date\n")


def test_bytes_that_are_not_utf8_spoil_only_their_row(tmp_path):
    body = (HEADER + "+79991234567,promotions,consent,web_form,2026-05-01,,ok,,,\n").encode() + (
        b"+79991234568,promotions,consent,web_form,2026-05-01,,\xff\xfe,,,\n")
    report, saved = run_import(tmp_path, body, header="")
    assert len(saved) == 1 and report.bad == [(3, "form_text: not valid UTF-8", "")]


@pytest.mark.parametrize("field,value,message", [
    ("number", "+7999\x001234567", "NUL"),
    ("form_text", "x" * 20_001, "longer than"),
    ("purposes", "Promotions!", "purpose"),
    ("captured_at", "2030-01-01", "future"),
    ("verified_at", "2026-01-01", "before captured_at"),
])
def test_hostile_or_inconsistent_fields_are_rejected_with_a_clear_message(field, value, message):
    row = {"number": "+79991234567", "purposes": "promotions", "source": "web_form",
           "captured_at": "2026-05-01T00:00:00Z", field: value}
    with pytest.raises(RowError, match=message):
        parse_row(row, "RU", NOW, VAULT)


def test_a_derived_id_is_keyed_so_the_number_cannot_be_brute_forced_from_it(tmp_path):
    _report, saved = run_import(tmp_path, "+79991234567,promotions,consent,web_form,2026-05-01T10:00:00Z,,,,,\n")
    row = saved[0]
    assert row.consent.id != legacy_derived_id(row.number, row.consent.purposes, row.consent.source,
                                               row.consent.captured_at)
    other_key = NumberVault(b"x" * 32, TEST_ENCRYPTION_KEY)
    other = parse_row({"number": "+79991234567", "purposes": "promotions", "source": "web_form",
                       "captured_at": "2026-05-01T10:00:00Z"}, "RU", NOW, other_key)
    assert other.consent.id != row.consent.id and row.consent.id.startswith("c-")
