"""The command line: add a campaign and a consent, ask, get an explained and logged answer."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callscreen.cli.main import main


def test_add_campaign_and_consent_then_check_explains_an_allow(cli):
    assert cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")[0] == 0
    code, out, _ = cli("consent", "add", "8 (999) 123-45-67", "--purpose", "promotions", "--source",
                       "sms_double_opt_in", "--captured-at", "2026-05-01T10:00:00Z", "--verified-at",
                       "2026-05-01T10:03:00Z", "--timezone", "Europe/Moscow", "--form-version", "v3",
                       "--form-text", "Согласен на звонки")
    assert code == 0 and "+7 999 ***-**-67" in out and "79991234567" not in out
    code, out, _ = cli("check", "+7 999 123-45-67", "--campaign", "spring-promo", "--at", "2026-11-20T10:00:00Z",
                       "--log")
    assert code == 0
    assert out.startswith("ALLOW consent") and "Europe/Moscow" in out and "decision id: d-" in out


def test_a_double_opt_in_without_its_confirmation_time_is_kept_but_warned_about_and_not_a_basis(cli):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    code, out, err = cli("consent", "add", "8 (999) 123-45-67", "--purpose", "promotions", "--source",
                         "sms_double_opt_in", "--captured-at", "2026-05-01T10:00:00Z", "--timezone", "Europe/Moscow")
    assert code == 0 and "recorded" in out
    assert "warning: sms_double_opt_in without the proof it needs" in err and "RU (needs verified_at)" in err
    code, out, _ = cli("check", "+7 999 123-45-67", "--campaign", "spring-promo", "--json", "--dry-run",
                       "--at", "2026-11-20T10:00:00Z")
    assert (code, json.loads(out)["reason"]) == (1, "consent_unverified")


def test_check_at_is_hypothetical_unless_asked_to_log_and_never_logs_the_future(cli):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    code, out, _ = cli("check", "+79991234567", "--campaign", "spring-promo", "--at", "2099-01-05T10:00:00+03:00")
    assert code == 1 and out.rstrip().endswith("not logged (hypothetical: --at)")
    code, _, err = cli("check", "+79991234567", "--campaign", "spring-promo", "--at", "2099-01-05T10:00:00Z",
                       "--log")
    assert code == 3 and "future" in err
    assert cli("log", "tail")[1] == ""


def test_times_without_an_offset_are_refused_not_guessed(cli):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    code, _, err = cli("check", "+79991234567", "--campaign", "spring-promo", "--at", "2026-11-20T10:00:00")
    assert code == 2 and "has no UTC offset" in err and "2026-11-20T10:00:00Z" in err
    code, _, err = cli("consent", "add", "+79991234567", "--purpose", "promotions", "--source", "paper",
                       "--captured-at", "2026-05-01 10:00")
    assert code == 2 and "has no UTC offset" in err


def test_campaign_add_refuses_to_replace_silently(cli):
    assert cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")[0] == 0
    code, _, err = cli("campaign", "add", "spring-promo", "--purpose", "appointment_reminders", "--jurisdiction", "RU")
    assert code == 3 and "--replace" in err
    assert cli("campaign", "add", "spring-promo", "--purpose", "appointment_reminders", "--jurisdiction", "RU",
               "--replace")[0] == 0


def test_check_json_has_the_documented_fields_and_block_exits_1(cli):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    code, out, _ = cli("check", "89991234567", "--campaign", "spring-promo", "--json", "--at", "2026-11-20T10:00:00Z")
    data = json.loads(out)
    assert code == 1
    assert {"result", "reason", "basis", "timezone", "checks", "id"} <= set(data)
    assert (data["result"], data["reason"]) == ("BLOCK", "no_basis")


def test_withdrawal_is_as_easy_as_consent(cli):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    cli("consent", "add", "+79991234567", "--purpose", "promotions", "--source", "paper", "--id", "c-paper",
        "--captured-at", "2026-05-01T10:00:00Z", "--timezone", "Europe/Moscow")
    assert cli("consent", "withdraw", "--number", "8 999 123 45 67", "--how", "phone call")[0] == 0
    code, out, _ = cli("check", "+79991234567", "--campaign", "spring-promo")  # now, after the withdrawal
    assert code == 1 and out.startswith("BLOCK consent_withdrawn")


def test_optout_blocks_and_removal_restores(cli):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    cli("consent", "add", "+79991234567", "--purpose", "promotions", "--source", "paper",
        "--captured-at", "2026-05-01T10:00:00Z", "--timezone", "Europe/Moscow")
    cli("optout", "add", "+79991234567", "--campaign", "spring-promo", "--source", "call")
    at = ("--at", "2026-11-20T10:00:00Z")
    assert cli("check", "+79991234567", "--campaign", "spring-promo", *at)[1].startswith("BLOCK opted_out")
    cli("optout", "remove", "+79991234567", "--campaign", "spring-promo")
    assert cli("check", "+79991234567", "--campaign", "spring-promo", *at)[1].startswith("ALLOW")


def test_log_tail_export_and_verify(cli, tmp_path):
    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    for _ in range(3):
        cli("check", "+79991234567", "--campaign", "spring-promo")
    header, *lines = cli("log", "tail", "-n", "2")[1].splitlines()
    assert header.split()[:7] == ["TIME", "(UTC)", "RECORD", "CAMPAIGN", "RESULT", "REASON", "BASIS"]
    assert len(lines) == 2
    assert {line.index("spring-promo") for line in lines} == {header.index("CAMPAIGN")}  # columns line up
    assert {line.index("BLOCK") for line in lines} == {header.index("RESULT")}
    assert cli("log", "export", "--out", str(tmp_path / "log.jsonl"))[0] == 0
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
    code, out, _ = cli("log", "verify")
    # each command writes its own chain, and the line says what a chain is
    assert code == 0 and "3 records in 3 chains (one per writing process" in out
    assert out.rstrip().endswith("intact")


def test_errors_are_one_clear_line_with_a_documented_exit_code(cli, tmp_path):
    code, _, err = cli("campaign", "add", "bad id!", "--purpose", "promotions", "--jurisdiction", "RU")
    assert code == 3 and err.strip().count("\n") == 0 and "campaign id" in err
    code, _, err = cli("campaign", "add", "x", "--purpose", "promotions", "--jurisdiction", "XX")
    assert code == 3 and "no policy pack" in err
    code, _, err = cli("consent", "add", "12", "--purpose", "promotions", "--source", "paper")
    assert code == 3 and err.startswith("callscreen: number:")
    code, _, err = cli("consent", "import", str(tmp_path / "missing.csv"))
    assert code == 3 and "no such file" in err
    with pytest.raises(SystemExit) as exc:
        main(["check", "+79991234567"])
    assert exc.value.code == 2


def test_consent_import_reports_bad_rows_and_keeps_good_ones(cli, tmp_path):
    path = tmp_path / "crm.csv"
    path.write_text("number,purposes,source,captured_at\n"
                    "+79991234567,promotions,paper,2026-05-01\n"
                    "garbage,promotions,paper,2026-05-01\n")
    code, out, err = cli("consent", "import", str(path), "--no-progress")
    assert code == 3
    assert "imported 1 consents from 1 records (1 new, 0 already on file); 1 bad rows skipped" in out
    assert f"{path}:3: number:" in err


def test_unreachable_store_exits_4(cli, monkeypatch):
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", "redis://127.0.0.1:1/0")
    code, _, err = cli("campaign", "list")
    assert code == 4 and "cannot reach the store" in err


def test_without_a_redis_url_the_cli_runs_on_the_embedded_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env["CALLSCREEN_DATA_DIR"] = str(tmp_path / "var")
    command = [sys.executable, "-m", "callscreen.cli.main"]
    subprocess.run([*command, "demo", "seed"], env=env, cwd=tmp_path, check=True, capture_output=True)
    result = subprocess.run([*command, "check", "+79995550101", "--campaign", "demo-spring-promo", "--json",
                             "--dry-run"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    assert json.loads(result.stdout)["reason"] in ("consent", "outside_calling_hours")
    assert (tmp_path / "var" / "secrets" / "hash_key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "var" / "valkey" / "appendonlydir").is_dir()


DOCS = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def documented_exit_codes() -> dict[int, str]:
    """The exit-code table of docs/cli.md: code -> meaning."""
    section = DOCS.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.+?) \|$", section, re.M)}


def test_exit_codes_are_the_ones_docs_cli_md_lists(cli, monkeypatch, tmp_path):
    table = documented_exit_codes()
    assert sorted(table) == list(range(9)), table

    def code_for(*words: str) -> int:
        rows = [code for code, meaning in table.items() if all(w in meaning for w in words)]
        assert len(rows) == 1, (words, table)
        return rows[0]

    cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")
    cli("consent", "add", "+79991234567", "--purpose", "promotions", "--source", "paper",
        "--captured-at", "2026-05-01T10:00:00Z", "--timezone", "Europe/Moscow")
    at = ("--at", "2026-11-20T13:00:00+03:00")
    assert cli("check", "+79991234567", "--campaign", "spring-promo", *at)[0] == code_for("ALLOW")
    assert cli("check", "+79161234567", "--campaign", "spring-promo", *at)[0] == code_for("answered BLOCK")
    assert cli("check", "--bogus")[0] == code_for("usage error")
    assert cli("check", "12", "--campaign", "spring-promo", *at)[0] == code_for("invalid number")
    assert cli("check", "+79991234567", "--campaign", "nope", *at)[0] == code_for("unknown id")
    assert cli("consent", "show", "--id", "nope")[0] == code_for("unknown id")
    (tmp_path / "bad.toml").write_text("agi_port = 'x'\n")
    assert cli("--config", str(tmp_path / "bad.toml"), "campaign", "list")[0] == code_for("configuration error")
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", "redis://127.0.0.1:1/0")
    assert cli("campaign", "list")[0] == code_for("store cannot be reached")


def test_every_option_of_every_command_says_what_it_does():
    import argparse

    from callscreen.cli.main import build_parser

    missing, stack = [], [("callscreen", build_parser())]
    while stack:
        name, parser = stack.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend((f"{name} {sub}", p) for sub, p in action.choices.items())
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing
