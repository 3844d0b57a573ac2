"""Typed settings: one TOML file, then ``CALLSCREEN_*`` environment overrides.

Invariants: every value is parsed into its declared type or loading fails with
:class:`ConfigError` naming the setting; secrets are read from the environment
or from a file named by ``CALLSCREEN_<NAME>_FILE`` and never from the TOML file,
so a config file can be committed without leaking anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from callscreen.cluster import parse_store_url
from callscreen.keys import Keyring, KeyringError, parse_key

ENV_PREFIX = "CALLSCREEN_"
SECRET_NAMES = ("hash_key", "encryption_key", "log_key", "dashboard_secret")
EVENT_LOOPS = ("auto", "uvloop", "asyncio")  # agi_event_loop
ROTATABLE = ("hash_key", "encryption_key", "log_key")  # may be key rings (callscreen.keys)
MAX_LOG_SHARDS = 1024  # every reader reads every shard: more would only slow reads down


class ConfigError(ValueError):
    """A setting is missing or has a value of the wrong shape."""


@dataclass(frozen=True)
class Settings:
    """Everything a callscreen process may be configured with."""

    redis_url: str | None = None  # redis://, rediss://, unix:// or a cluster's redis+cluster:// (docs/store.md)
    data_dir: Path = Path("var")
    default_region: str = "RU"
    default_timezone: str = "Europe/Moscow"
    retention_days: int = 1825
    retention_interval_hours: float = 24.0  # how often `serve` runs retention; 0 turns it off
    campaign_cache_seconds: float = 2.0
    policy_dir: Path | None = None
    # FastAGI server
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    agi_workers: int = 1
    agi_allowed_hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    agi_read_timeout: float = 5.0  # for the whole header
    agi_reply_timeout: float = 2.0  # for each reply to a command
    agi_stalled_reply_after: float = 0.5  # a reply this late marks the session stalled (evictable)
    agi_decision_deadline_ms: int = 250  # the whole decision: facts, log append, durability confirmation
    agi_max_connections: int = 512  # per worker
    # decisions one worker runs at once; more calls wait for a slot, before their deadline starts,
    # at most agi_decision_queue_timeout seconds (then BLOCK screening_unavailable)
    agi_max_deciding: int = 2
    agi_decision_queue_timeout: float = 5.0
    agi_max_connections_per_peer: int = 384  # one address's share once the server is full
    agi_backlog: int = 4096
    agi_event_loop: str = "auto"  # "uvloop", "asyncio", or "auto": uvloop where it is installed
    # decision log durability (docs/store.md): an ALLOW leaves only once its record is fsynced
    # by the store and by ``durable_replicas`` replicas; the opt-out answers ALLOW without it
    durable_replicas: int = 0
    allow_without_durability: bool = False
    # decision log shards (docs/store.md): each writing process appends to one of this many
    # streams, each in its own slot; 1 on a single server, about 4 per master in a cluster
    log_shards: int = 1
    # dashboard and metrics
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 8080
    metrics_port: int = 9464
    # process logs (see callscreen.logs): "text" or "json"; "info" adds a line per screening
    log_format: str = "text"
    log_level: str = "warning"
    # secrets (never read from the TOML file)
    hash_key: bytes = field(default=b"", repr=False)
    encryption_key: bytes = field(default=b"", repr=False)
    log_key: bytes = field(default=b"", repr=False)
    dashboard_secret: bytes = field(default=b"", repr=False)
    # every version of each rotatable secret (see callscreen.keys); ``hash_key`` and the like
    # above are the oldest of each ring, the key in force until a rotation
    keyrings: dict[str, Keyring] = field(default_factory=dict, repr=False, compare=False)

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def keyring(self, name: str) -> Keyring:
        """Every configured version of secret ``name`` (one key if no ring was given)."""
        ring = self.keyrings.get(name)
        return ring if ring is not None else Keyring.single(name, getattr(self, name))

    def require_secrets(self) -> Settings:
        """Fail loudly unless the keys that protect phone numbers are present and strong enough."""
        for name in ROTATABLE:
            ring = self.keyring(name)
            env = ENV_PREFIX + name.upper()
            if not ring:
                raise ConfigError(f"{name}: need at least 32 bytes of key material in {env} or {env}_FILE "
                                  f"(hex or base64); got 0")
            for kid, value in ring:
                if len(value) < 32:
                    raise ConfigError(
                        f"{name}: need at least 32 bytes of key material in {env} or {env}_FILE "
                        f"(hex or base64); got {len(value)} for key {kid}"
                    )
                if name == "encryption_key" and len(value) != 32:
                    raise ConfigError("encryption_key: AES-256-GCM needs exactly 32 bytes")
        return self


def _parse_key(name: str, text: str) -> bytes:
    if not text.strip():
        return b""
    try:
        return parse_key(name, text)
    except KeyringError as exc:
        raise ConfigError(str(exc)) from exc


def _parse_ring(name: str, text: str) -> Keyring:
    try:
        return Keyring.parse(name, text)
    except KeyringError as exc:
        raise ConfigError(str(exc)) from exc


def _coerce(name: str, kind: Any, value: Any) -> Any:
    """Turn a TOML or environment value into the declared type of ``name``."""
    text_kind = str(kind)
    try:
        if text_kind in ("str | None", "str"):
            if value in ("", None) and text_kind == "str | None":
                return None
            if not isinstance(value, str):
                raise TypeError("expected a string")
            return value
        if text_kind == "int":
            if isinstance(value, bool):
                raise TypeError("expected an integer")
            return int(value)
        if text_kind == "bool":
            return _parse_bool(value)
        if text_kind == "float":
            return float(value)
        if text_kind == "Path":
            return Path(value)
        if text_kind == "Path | None":
            return Path(value) if value not in ("", None) else None
        if text_kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
            raise TypeError("expected a list of strings")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {value!r} is not a valid {text_kind} ({exc})") from exc
    raise ConfigError(f"{name}: unsupported setting type {text_kind}")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _parse_bool(value: Any) -> bool:
    """TOML booleans, or (from the environment) true/false, yes/no, on/off, 1/0 — nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError("expected true or false")


def _secret_text(name: str, environ: Mapping[str, str], data_dir: Path) -> tuple[str, str]:
    """``CALLSCREEN_<NAME>``, else the file ``CALLSCREEN_<NAME>_FILE`` names, else the
    development key ``<data_dir>/secrets/<name>`` that ``callscreen run`` creates; with the
    name of the variable it came from, for errors."""
    env = ENV_PREFIX + name.upper()
    if env in environ:
        return environ[env], env
    file_env = env + "_FILE"
    path = Path(environ[file_env]) if file_env in environ else data_dir / "secrets" / name
    if file_env not in environ and not path.is_file():
        return "", env
    try:
        return path.read_text(), file_env
    except OSError as exc:
        raise ConfigError(f"{file_env}: cannot read {path}: {exc.strerror}") from exc


def secret_file(name: str, environ: Mapping[str, str], data_dir: Path) -> Path | None:
    """The file secret ``name`` is read from (``*_FILE`` or the development key), or None when
    the environment gives it directly."""
    env = ENV_PREFIX + name.upper()
    if env in environ:
        return None
    return Path(environ[env + "_FILE"]) if env + "_FILE" in environ else data_dir / "secrets" / name


def read_secrets(environ: Mapping[str, str], data_dir: Path) -> dict[str, Any]:
    """Every secret: plain keys, and for the rotatable ones the whole ring (``keyrings``) with
    the ring's oldest key, the one in force until a rotation, as the plain value."""
    values: dict[str, Any] = {}
    rings: dict[str, Keyring] = {}
    for name in SECRET_NAMES:
        text, source = _secret_text(name, environ, data_dir)
        if name in ROTATABLE:
            ring = _parse_ring(source, text)
            rings[name] = ring
            values[name] = ring.get(ring.oldest) if ring else b""
        else:
            values[name] = _parse_key(source, text)
    values["keyrings"] = rings
    return values


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``path`` (or ``$CALLSCREEN_CONFIG``, or ``./callscreen.toml`` if present)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get(ENV_PREFIX + "CONFIG")
    if path is None and Path("callscreen.toml").is_file():
        path = "callscreen.toml"
    raw: dict[str, Any] = {}
    if path is not None:
        import tomllib  # only with a config file: the classic script usually runs without one

        try:
            with open(path, "rb") as handle:
                raw = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
    known = {f.name: f for f in fields(Settings) if f.name != "keyrings"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known or key in SECRET_NAMES:
            hint = " (secrets belong in the environment)" if key in SECRET_NAMES else ""
            raise ConfigError(f"config file {path}: unknown setting {key!r}{hint}")
        values[key] = _coerce(key, known[key].type, value)
    for name, spec in known.items():
        env = ENV_PREFIX + name.upper()
        if name not in SECRET_NAMES and env in environ:
            values[name] = _coerce(env, spec.type, environ[env])
    values.update(read_secrets(environ, values.get("data_dir", Settings.data_dir)))
    settings = Settings(**values)
    if len(settings.default_region) != 2 or not settings.default_region.isupper():
        raise ConfigError(f"default_region: {settings.default_region!r} is not an ISO 3166 alpha-2 code")
    if settings.retention_interval_hours < 0:
        raise ConfigError("retention_interval_hours: must be 0 (off) or positive")
    if settings.agi_workers < 1 or settings.agi_decision_deadline_ms < 1:
        raise ConfigError("agi_workers and agi_decision_deadline_ms must be positive")
    if settings.agi_max_connections < 1 or settings.agi_max_connections_per_peer < 1:
        raise ConfigError("agi_max_connections and agi_max_connections_per_peer must be positive")
    if settings.agi_max_deciding < 1 or not settings.agi_decision_queue_timeout > 0:
        raise ConfigError("agi_max_deciding and agi_decision_queue_timeout must be positive")
    if not (settings.agi_read_timeout > 0 and settings.agi_reply_timeout > 0):
        raise ConfigError("agi_read_timeout and agi_reply_timeout must be positive")
    if settings.agi_stalled_reply_after < 0:
        raise ConfigError("agi_stalled_reply_after must not be negative")
    if settings.redis_url:
        try:
            parse_store_url(settings.redis_url)
        except ValueError as exc:
            raise ConfigError(f"redis_url: {exc}") from exc
    if settings.durable_replicas < 0:
        raise ConfigError("durable_replicas must be 0 or more")
    if not 1 <= settings.log_shards <= MAX_LOG_SHARDS:
        raise ConfigError(f"log_shards must be between 1 and {MAX_LOG_SHARDS}")
    if settings.agi_event_loop not in EVENT_LOOPS:
        raise ConfigError(f"agi_event_loop: {settings.agi_event_loop!r} is not one of {', '.join(EVENT_LOOPS)}")
    return settings
