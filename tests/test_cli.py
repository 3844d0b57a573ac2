"""The command line: add a campaign and a consent, ask, get an explained and logged answer."""

import json
import os
import subprocess
import sys

import pytest

from callscreen.cli.main import main


def test_add_campaign_and_consent_then_check_explains_an_allow(cli):
    assert cli("campaign", "add", "spring-promo", "--purpose", "promotions", "--jurisdiction", "RU")[0] == 0
    code, out, _ = cli("consent", "add", "8 (999) 123-45-67", "--purpose", "promotions", "--source",
                       "sms_double_opt_in", "--captured-at", "2026-05-01T10:00:00Z", "--verified-at",
                       "2026-05-01T10:03:00Z", "--timezone", "Europe/Moscow", "--form-version", "v3",
                       "--form-text", "Согласен на звонки")
    assert code == 0 and "+7 999 ***-**-67" in out and "79991234567" not in out
    code, out, _ = cli("check", "+7 999 123-45-67", "--campaign", "spring-promo", "--at", "2026-11-20T10:00:00Z")
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
    assert cli("log", "tail", "-n", "2")[1].count("\n") == 2
    assert cli("log", "export", "--out", str(tmp_path / "log.jsonl"))[0] == 0
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 3
    code, out, _ = cli("log", "verify")
    assert code == 0 and "3 records in 3 chains: intact" in out  # each command writes its own chain


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
