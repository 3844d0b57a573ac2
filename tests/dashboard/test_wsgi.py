from __future__ import annotations

import pytest

from callscreen.config import ConfigError
from dashboard import create_app


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("CONFIG", "REDIS_URL", "HASH_KEY", "ENCRYPTION_KEY", "LOG_KEY", "DASHBOARD_SECRET"):
        monkeypatch.delenv(f"CALLSCREEN_{name}", raising=False)
    monkeypatch.setenv("CALLSCREEN_DATA_DIR", str(tmp_path / "var"))
    return monkeypatch


def test_a_configured_store_without_keys_refuses_to_start(env, valkey_server, redis_client):
    from dashboard.app import wsgi_settings

    env.setenv("CALLSCREEN_REDIS_URL", valkey_server.url)
    settings = wsgi_settings()
    assert settings.hash_key == b""  # no development keys made up for a configured store
    with pytest.raises(ConfigError, match="hash_key"):
        create_app(settings, client=redis_client)


def test_development_store_uses_the_data_folders_keys(env, valkey_server, tmp_path, redis_client):
    from dashboard.app import wsgi_settings

    url_file = tmp_path / "var" / "valkey" / "url"
    url_file.parent.mkdir(parents=True)
    url_file.write_text(valkey_server.url + "\n")
    env.setenv("CALLSCREEN_REDIS_URL", valkey_server.url)
    first = wsgi_settings()
    assert first.redis_url == valkey_server.url and len(first.dashboard_secret) == 32
    assert wsgi_settings().hash_key == first.hash_key  # the same keys on every start
    assert create_app(first, client=redis_client).config["SESSION_COOKIE_SECURE"] is True


def test_no_store_at_all_is_a_clear_error(env):
    from dashboard.app import wsgi_settings

    with pytest.raises(RuntimeError, match="no store"):
        wsgi_settings()
