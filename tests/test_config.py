from pathlib import Path

import pytest

from callscreen.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callscreen.toml"
    path.write_text(text)
    return path


def test_toml_values_are_typed_and_environment_overrides_them(tmp_path):
    path = write(tmp_path, 'agi_port = 4600\ndefault_region = "US"\nagi_allowed_hosts = ["10.0.0.5"]\n')
    settings = load_settings(path, {"CALLSCREEN_AGI_PORT": "4700", "CALLSCREEN_AGI_ALLOWED_HOSTS": "a, b"})
    assert settings.agi_port == 4700
    assert settings.default_region == "US"
    assert settings.agi_allowed_hosts == ("a", "b")


def test_a_bad_value_fails_loudly_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="CALLSCREEN_AGI_PORT"):
        load_settings(write(tmp_path, ""), {"CALLSCREEN_AGI_PORT": "many"})
    with pytest.raises(ConfigError, match="agi_port"):
        load_settings(write(tmp_path, 'agi_port = "x"\n'), {})
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(write(tmp_path, "agi_prot = 1\n"), {})
    with pytest.raises(ConfigError, match="default_region"):
        load_settings(write(tmp_path, 'default_region = "Russia"\n'), {})


def test_secrets_are_refused_in_the_config_file(tmp_path):
    with pytest.raises(ConfigError, match="secrets belong in the environment"):
        load_settings(write(tmp_path, 'hash_key = "00"\n'), {})


def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    key_file = tmp_path / "enc.key"
    key_file.write_text("ab" * 32 + "\n")
    settings = load_settings(write(tmp_path, ""), {
        "CALLSCREEN_HASH_KEY": "01" * 32,
        "CALLSCREEN_ENCRYPTION_KEY_FILE": str(key_file),
        "CALLSCREEN_LOG_KEY": "02" * 32,
        "CALLSCREEN_DATA_DIR": str(tmp_path),
    })
    assert settings.hash_key == bytes([1]) * 32
    assert settings.encryption_key == bytes([0xAB]) * 32
    settings.require_secrets()
    assert "01" * 32 not in repr(settings)


def test_missing_or_weak_keys_are_reported_before_any_number_is_touched(tmp_path):
    settings = load_settings(write(tmp_path, ""), {"CALLSCREEN_HASH_KEY": "01" * 8,
                                                   "CALLSCREEN_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="hash_key"):
        settings.require_secrets()
    with pytest.raises(ConfigError, match="not hex or base64"):
        load_settings(write(tmp_path, ""), {"CALLSCREEN_HASH_KEY": "zz not a key"})


def test_an_unreadable_secret_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(write(tmp_path, ""), {"CALLSCREEN_HASH_KEY_FILE": str(tmp_path / "missing")})


def test_a_key_ring_lists_versions_oldest_first_and_the_oldest_is_in_force_until_a_rotation(tmp_path):
    ring_file = tmp_path / "log.keys"
    ring_file.write_text("# log keys\n2026a:" + "03" * 32 + "\n2026b:" + "04" * 32 + "\n")
    settings = load_settings(write(tmp_path, ""), {
        "CALLSCREEN_HASH_KEY": "01" * 32 + "," + "05" * 32,  # bare keys are named by their fingerprint
        "CALLSCREEN_ENCRYPTION_KEY": "02" * 32,
        "CALLSCREEN_LOG_KEY_FILE": str(ring_file),
        "CALLSCREEN_DATA_DIR": str(tmp_path),
    })
    assert settings.keyring("log_key").ids == ("2026a", "2026b")
    assert settings.log_key == bytes([3]) * 32
    hash_ring = settings.keyring("hash_key")
    assert len(hash_ring.ids) == 2 and all(kid.startswith("k") for kid in hash_ring.ids)
    assert settings.hash_key == bytes([1]) * 32
    settings.require_secrets()
    assert "03" * 32 not in repr(settings)


@pytest.mark.parametrize(
    ("value", "message"),
    [("a:" + "01" * 32 + ",a:" + "02" * 32, "same key id appears twice"),
     ("bad id:" + "01" * 32, "key id 'bad id'"),
     ("a:zz", "not hex or base64")],
)
def test_a_malformed_key_ring_is_a_clear_error(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, ""), {"CALLSCREEN_LOG_KEY": value, "CALLSCREEN_DATA_DIR": str(tmp_path)})


def test_every_key_of_a_ring_must_be_strong_enough(tmp_path):
    settings = load_settings(write(tmp_path, ""), {
        "CALLSCREEN_HASH_KEY": "01" * 32, "CALLSCREEN_ENCRYPTION_KEY": "02" * 32,
        "CALLSCREEN_LOG_KEY": "a:" + "03" * 32 + ",b:" + "04" * 8, "CALLSCREEN_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"log_key.*got 8 for key b"):
        settings.require_secrets()


def test_durability_settings_are_typed_and_a_vague_boolean_is_refused(tmp_path):
    assert load_settings(write(tmp_path, ""), {}).allow_without_durability is False
    path = write(tmp_path, "allow_without_durability = true\ndurable_replicas = 1\n")
    settings = load_settings(path, {})
    assert settings.allow_without_durability is True and settings.durable_replicas == 1
    assert load_settings(path, {"CALLSCREEN_ALLOW_WITHOUT_DURABILITY": "no"}).allow_without_durability is False
    with pytest.raises(ConfigError, match="CALLSCREEN_ALLOW_WITHOUT_DURABILITY"):
        load_settings(write(tmp_path, ""), {"CALLSCREEN_ALLOW_WITHOUT_DURABILITY": "maybe"})
    with pytest.raises(ConfigError, match="allow_without_durability"):
        load_settings(write(tmp_path, 'allow_without_durability = "sure"\n'), {})
    with pytest.raises(ConfigError, match="durable_replicas"):
        load_settings(write(tmp_path, "durable_replicas = -1\n"), {})


def test_log_shards_is_a_positive_bounded_number(tmp_path):
    assert load_settings(write(tmp_path, "log_shards = 12\n"), {}).log_shards == 12
    assert load_settings(None, {"CALLSCREEN_LOG_SHARDS": "4"}).log_shards == 4
    for bad in ("0", "1025"):
        with pytest.raises(ConfigError, match="log_shards"):
            load_settings(write(tmp_path, f"log_shards = {bad}\n"), {})
