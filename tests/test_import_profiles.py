"""CRM exports as Bitrix24 and amoCRM write them: encodings, BOM, CRLF, Russian headers, several
phone columns, «Да»/«Нет» flags, local times, quoted multi-line text and broken rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from callscreen.consent_import import import_consents
from callscreen.crypto import NumberVault
from callscreen.import_profiles import ProfileError, builtin_profiles, load_profile
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY

VAULT = NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY)
NOW = datetime(2026, 11, 20, tzinfo=UTC)
FORM = "Я согласен получать\nрекламные звонки клиники"
BITRIX_HEADER = ["ID", "Имя", "Фамилия", "Мобильный телефон", "Рабочий телефон", "Согласие на звонки",
                 "Дата согласия", "Источник согласия", "IP-адрес", "Версия формы", "Текст согласия"]
BITRIX_ROWS = [
    ["101", "Анна", "Иванова", "8 (916) 123-45-67", "+7 495 123-45-67", "Да", "01.05.2026 10:00",
     "Форма на сайте", "203.0.113.7", "ru-2026-03", FORM],
    ["102", "Борис", "Петров", "+7 903 123-45-67", "", "Нет", "02.05.2026 11:30", "Форма на сайте", "", "", ""],
    ["103", "Вера", "Сидорова", "89261234567", "", "Да", "03.05.2026 09:15", "СМС подтверждение", "", "sms-1", ""],
    ["104", "Глеб", "Смирнов", "12345", "", "Да", "03.05.2026 09:15", "Форма на сайте", "", "", ""],
    ["105", "Дарья", "Кузнецова", "+7 916 765-43-21", "", "Да", "31.02.2026 10:00", "Форма на сайте", "", "", ""],
    ["106", "Егор", "Попов", "+7 916 111-22-33", "", "Да", "04.05.2026 12:00", "Голубиная почта", "", "", ""],
]


def csv_text(header: list[str], rows: list[list[str]], delimiter: str = ";") -> str:
    def cell(value: str) -> str:
        return f'"{value}"' if any(c in value for c in (delimiter, '"', "\n")) else value

    return "".join(delimiter.join(cell(v) for v in row) + "\r\n" for row in [header, *rows])


def write(path: Path, text: str, encoding: str) -> Path:
    data = text.encode("utf-8-sig" if encoding == "utf-8-sig" else encoding)
    path.write_bytes(data)
    return path


def run(path: Path, profile: str = "bitrix24", **options):
    saved = []
    report = import_consents(path, saved.extend, "RU", VAULT, now=NOW, profile=load_profile(profile), **options)
    return report, saved


@pytest.mark.parametrize("encoding", ["cp1251", "utf-8-sig"])
def test_a_bitrix24_export_loads_with_its_profile_in_either_encoding(tmp_path, encoding) -> None:
    path = write(tmp_path / "contacts.csv", csv_text(BITRIX_HEADER, BITRIX_ROWS), encoding)
    report, saved = run(path)
    # 101 has two phones: one consent each; 103 is a double opt-in; 102 said «Нет».
    assert [(s.number.e164, s.consent.source) for s in saved] == [
        ("+79161234567", "web_form"), ("+74951234567", "web_form"), ("+79261234567", "sms_double_opt_in")]
    assert (report.imported, report.records) == (3, 2)
    first = saved[0].consent
    assert first.captured_at == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)  # 10:00 in Moscow
    assert first.purposes == ("promotions",) and first.proof.form_text == FORM
    assert first.proof.ip == "203.0.113.7" and first.proof.form_version == "ru-2026-03"
    assert saved[0].consent.id != saved[1].consent.id
    assert [(s.line, s.record_id) for s in report.skipped] == [(4, "102")]
    assert [(b.line, b.record_id) for b in report.bad] == [(6, "104"), (7, "105"), (8, "106")]
    problems = [b.problem for b in report.bad]
    assert problems[0].startswith("number:") and "matches none of the formats" in problems[1]
    assert "'Голубиная почта' is not a label this profile knows" in problems[2]
    assert str(report.bad[0]).startswith("6 (CRM record 104): number:")


def test_one_bad_phone_makes_the_whole_record_bad_so_nothing_is_half_written(tmp_path) -> None:
    row = ["201", "Ия", "Ли", "+7 916 123-45-67", "555", "Да", "01.05.2026 10:00", "Форма на сайте", "", "", ""]
    report, saved = run(write(tmp_path / "c.csv", csv_text(BITRIX_HEADER, [row]), "cp1251"))
    assert saved == []
    assert report.bad[0].record_id == "201" and report.bad[0].problem.startswith("рабочий телефон: number:")


@pytest.mark.parametrize(
    ("last_field_of_302", "problem"),
    [
        pytest.param('ok"', "unclosed quote swallowed line 5 into one field", id="the-stray-quote-closes-at-a-row-end"),
        pytest.param("ok", "unreadable CSV in lines 4-6", id="text-follows-the-stray-closing-quote"),
    ],
)
def test_an_unclosed_quote_is_reported_with_its_record_not_merged_silently(tmp_path, last_field_of_302,
                                                                              problem) -> None:
    text = csv_text(BITRIX_HEADER, BITRIX_ROWS[:1])
    text += '301;Юлия;Орлова;+7 916 000-00-01;;Да;01.05.2026 10:00;Форма на сайте;;v1;"Согласна\r\n'
    text += f"302;Яна;Белова;+7 916 000-00-02;;Да;01.05.2026 10:00;Форма на сайте;;v1;{last_field_of_302}\r\n"
    if not last_field_of_302.endswith('"'):
        text += '303;Ян;Белов;+7 916 000-00-03;;Да;01.05.2026 10:00;Форма на сайте;;v1;"конец"\r\n'
    report, saved = run(write(tmp_path / "c.csv", text, "utf-8-sig"))
    assert [s.consent.proof.form_version for s in saved] == ["ru-2026-03", "ru-2026-03"]  # record 101 only
    assert [(bad.line, bad.record_id) for bad in report.bad] == [(4, "301")]
    assert problem in report.bad[0].problem


def test_an_amocrm_export_with_commas_and_an_iso_date_loads(tmp_path) -> None:
    header = ["ID", "Полное имя контакта", "Мобильный телефон", "Рабочий прямой телефон", "Согласие на звонки",
              "Дата согласия", "Источник согласия", "Версия формы"]
    rows = [["9001", "Анна", "+7 916 123-45-67", "", "Да", "2026-05-01 10:00:00", "Заявка с сайта", "amo-1"],
            ["9002", "Борис", "", "8 495 765-43-21", "да", "01.05.2026", "СМС подтверждение", ""]]
    report, saved = run(write(tmp_path / "amo.csv", csv_text(header, rows, ","), "utf-8"), "amocrm")
    assert report.bad == [] and [s.consent.source for s in saved] == ["web_form", "sms_double_opt_in"]
    assert saved[1].consent.captured_at == datetime(2026, 4, 30, 21, 0, tzinfo=UTC)


def test_a_file_in_neither_utf8_nor_cp1251_is_refused_with_a_clear_error(tmp_path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(csv_text(BITRIX_HEADER, []).encode("utf-8-sig")[3:] + b"\x98\xff;\r\n")
    with pytest.raises(ProfileError, match="neither UTF-8 nor cp1251"):
        run(path)


def test_a_header_without_the_profile_columns_names_what_is_missing(tmp_path) -> None:
    path = write(tmp_path / "c.csv", "ID;Имя;Телефон клиента\r\n1;Анна;+79161234567\r\n", "cp1251")
    with pytest.raises(ProfileError, match="header lacks number") as caught:
        run(path)
    assert "мобильный телефон" in str(caught.value) and "телефон клиента" in str(caught.value)


def test_a_mapping_file_of_your_own_is_validated_field_by_field(tmp_path) -> None:
    mapping = tmp_path / "mine.toml"
    mapping.write_text('[profile]\nencoding = "utf-8"\n[columns]\nnumber = ["Tel"]\ncaptured_at = "When"\n'
                       '[constants]\npurposes = "reminders"\nsource = "paper"\n', encoding="utf-8")
    path = write(tmp_path / "c.csv", "Tel,When\r\n+79161234567,2026-05-01 10:00\r\n", "utf-8")
    report, saved = run(path, str(mapping))
    assert report.bad == [] and saved[0].consent.purposes == ("reminders",)
    assert saved[0].consent.captured_at == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)  # naive times: UTC
    mapping.write_text('[profile]\n[columns]\nnumber = "Tel"\nwhen = "When"\n', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"columns\.when: not a field"):
        load_profile(mapping)


def test_every_builtin_profile_loads() -> None:
    assert {"generic", "bitrix24", "amocrm"} <= set(builtin_profiles())
    for name in builtin_profiles():
        assert load_profile(name).name == name


# --- through the command line -------------------------------------------------------------------------

def test_dry_run_shows_the_stored_form_and_writes_nothing_then_reimport_adds_nothing_new(cli, tmp_path,
                                                                                           redis_client) -> None:
    path = write(tmp_path / "contacts.csv", csv_text(BITRIX_HEADER, BITRIX_ROWS), "cp1251")
    code, out, err = cli("consent", "import", str(path), "--profile", "bitrix24", "--dry-run", "--no-progress")
    assert code == 3 and redis_client.dbsize() == 0
    assert "+7 916 ***-**-67" in out and "79161234567" not in out and "captured 2026-05-01T07:00:00Z" in out
    assert "would import 3 consents from 2 records (3 new" in out
    assert f"{path}:6 (CRM record 104): number:" in err
    code, out, _ = cli("consent", "import", str(path), "--profile", "bitrix24", "--no-progress")
    assert "imported 3 consents from 2 records (3 new, 0 already on file)" in out
    code, out, _ = cli("consent", "import", str(path), "--profile", "bitrix24", "--no-progress")
    assert "imported 3 consents from 2 records (0 new, 3 already on file)" in out


def test_the_timezone_option_reads_naive_times_in_the_account_zone(cli, tmp_path) -> None:
    path = write(tmp_path / "contacts.csv", csv_text(BITRIX_HEADER, BITRIX_ROWS[:1]), "cp1251")
    cli("consent", "import", str(path), "--profile", "bitrix24", "--timezone", "Asia/Vladivostok", "--no-progress")
    _code, out, _ = cli("consent", "show", "+79161234567", "--json")
    assert json.loads(out)[0]["captured_at"].startswith("2026-05-01T00:00:00")


def test_the_declined_rows_of_the_same_export_load_as_opt_outs(cli, tmp_path) -> None:
    path = write(tmp_path / "contacts.csv", csv_text(BITRIX_HEADER, BITRIX_ROWS), "cp1251")
    code, out, _ = cli("optout", "import", str(path), "--profile", "bitrix24")
    assert code == 0 and "recorded 1 company-wide opt-outs; 0 bad rows skipped" in out
    cli("campaign", "add", "spring", "--purpose", "promotions", "--jurisdiction", "RU")
    code, out, _ = cli("check", "+7 903 123-45-67", "--campaign", "spring", "--json", "--dry-run")
    assert json.loads(out)["reason"] == "opted_out"


def test_a_crm_do_not_call_list_loads_as_an_internal_registry_through_the_same_profile(cli, tmp_path) -> None:
    path = write(tmp_path / "contacts.csv", csv_text(BITRIX_HEADER, BITRIX_ROWS), "cp1251")
    code, out, err = cli("registry", "import", str(path), "--id", "own-refusals", "--country", "RU", "--kind",
                         "internal", "--profile", "bitrix24", "--quiet")
    assert code == 0 and "own-refusals: loaded 1 numbers" in out and err == ""
    code, out, _ = cli("registry", "list", "--json")
    assert json.loads(out)[0]["source"] == "contacts.csv"
