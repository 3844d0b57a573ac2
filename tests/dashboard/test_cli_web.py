from __future__ import annotations

import io

import pytest

from callscreen.cli.main import main
from dashboard.tokens import TokenStore
from dashboard.users import UserStore
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY


@pytest.fixture
def cli_env(monkeypatch, tmp_path, valkey_server, redis_client):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLSCREEN_CONFIG", raising=False)
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", valkey_server.url)
    monkeypatch.setenv("CALLSCREEN_HASH_KEY", TEST_HASH_KEY.hex())
    monkeypatch.setenv("CALLSCREEN_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY.hex())
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", TEST_LOG_KEY.hex())
    return redis_client


def run(monkeypatch, argv, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_user_add_passwd_disable(cli_env, monkeypatch, capsys):
    assert run(monkeypatch, ["user", "add", "olga", "--role", "compliance", "--password-stdin"],
               "a long enough password\n") == 0
    users = UserStore(cli_env)
    assert users.authenticate("olga", "a long enough password").role == "compliance"
    assert run(monkeypatch, ["user", "passwd", "olga", "--password-stdin"], "another long password\n") == 0
    assert users.authenticate("olga", "a long enough password") is None
    assert users.authenticate("olga", "another long password") is not None
    assert run(monkeypatch, ["user", "disable", "olga"]) == 0
    assert users.authenticate("olga", "another long password") is None
    assert run(monkeypatch, ["user", "list"]) == 0
    assert "olga\tcompliance\tdisabled" in capsys.readouterr().out


def test_user_add_refuses_a_short_password_or_a_duplicate(cli_env, monkeypatch, capsys):
    assert run(monkeypatch, ["user", "add", "ivan", "--role", "admin", "--password-stdin"], "short\n") == 3
    assert "at least 12" in capsys.readouterr().err
    assert run(monkeypatch, ["user", "add", "ivan", "--role", "admin", "--password-stdin"], "long enough pass\n") == 0
    assert run(monkeypatch, ["user", "add", "ivan", "--role", "admin", "--password-stdin"], "long enough pass\n") == 3
    assert run(monkeypatch, ["user", "passwd", "ghost", "--password-stdin"], "long enough pass\n") == 3


def test_token_add_list_revoke(cli_env, monkeypatch, capsys):
    assert run(monkeypatch, ["token", "add", "crm"]) == 0
    secret = capsys.readouterr().out.strip()
    tokens = TokenStore(cli_env)
    record = tokens.verify(secret)
    assert record.client == "crm"
    assert run(monkeypatch, ["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert record.id in listing and secret not in listing
    assert run(monkeypatch, ["token", "revoke", record.id]) == 0
    assert tokens.verify(secret) is None
    assert run(monkeypatch, ["token", "revoke", record.id]) == 3
    assert run(monkeypatch, ["token", "add", "bad name\n"]) == 3


def test_a_short_password_is_refused_before_it_is_asked_again(cli_env, monkeypatch, capsys):
    prompts = []

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return "short"

    monkeypatch.setattr("getpass.getpass", typed)
    assert run(monkeypatch, ["user", "add", "olga", "--role", "compliance"]) == 3
    assert len(prompts) == 1 and "at least 12 characters" in prompts[0]
    assert "password: at least 12 characters" in capsys.readouterr().err
