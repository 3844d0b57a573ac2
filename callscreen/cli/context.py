"""What every CLI command needs: settings, a store connection, the screening service.

Without ``CALLSCREEN_REDIS_URL`` the CLI uses the embedded server of the data folder: the
one ``callscreen run`` keeps (its address is in ``<data_dir>/valkey/url``) or, if none is
running, one it starts for the duration of the command.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from contextlib import suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import redis

from callscreen.config import SECRET_NAMES, Settings, read_secrets
from callscreen.embedded import EmbeddedServer
from callscreen.store import STORE_ERRORS, StoreError, connect


class CliError(Exception):
    """One clear line for the user, with the exit code to leave with."""

    def __init__(self, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.code = code


# Exit codes, documented in docs/cli.md.
EXIT_OK = 0
EXIT_BLOCKED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_UNAVAILABLE = 4
EXIT_CONFIG = 5
EXIT_TAMPERED = 6
EXIT_BUSY = 7
EXIT_SERVICE_FAILED = 8


def embedded_url_file(settings: Settings) -> Path:
    return settings.data_dir / "valkey" / "url"


def running_embedded_url(settings: Settings) -> str | None:
    """The URL of the data folder's embedded server if one answers."""
    path = embedded_url_file(settings)
    if not path.is_file():
        return None
    url = path.read_text().strip()
    with suppress(*STORE_ERRORS, ValueError):
        if connect(url, timeout=0.5).ping():
            return url
    return None


def ensure_dev_secrets(settings: Settings) -> Settings:
    """Create random development keys under ``<data_dir>/secrets`` for any key not configured."""
    missing = [n for n in SECRET_NAMES if not getattr(settings, n)]
    if not missing:
        return settings
    settings.secrets_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.secrets_dir, 0o700)
    for name in missing:
        path = settings.secrets_dir / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
    fresh = read_secrets({}, settings.data_dir)  # no environment: the files just made
    rings = {**settings.keyrings, **{n: fresh["keyrings"][n] for n in missing if n in fresh["keyrings"]}}
    return dataclasses.replace(settings, keyrings=rings, **{n: fresh[n] for n in missing})


@dataclass
class CliContext:
    settings: Settings
    _server: EmbeddedServer | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Development mode (the embedded server): keys are created on first use under the
        # data folder. With a configured Redis URL the keys must come from the environment.
        if not self.settings.redis_url:
            self.settings = ensure_dev_secrets(self.settings)

    @cached_property
    def redis_url(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        url = running_embedded_url(self.settings)
        if url:
            return url
        self._server = EmbeddedServer(self.settings.data_dir / "valkey").start()
        return self._server.url

    @cached_property
    def client(self) -> redis.Redis:
        try:
            client = connect(self.redis_url, timeout=30)
            client.ping()
        except (StoreError, *STORE_ERRORS) as exc:
            raise CliError(f"cannot reach the store at {self.redis_url}: {exc}", EXIT_UNAVAILABLE) from exc
        return client

    @cached_property
    def screener(self) -> Any:
        from callscreen.screening import build_screener

        return build_screener(self.settings, self.client, registries=self.registries)

    @cached_property
    def registries(self) -> Any:
        """The do-not-call registry lookup, when the blocklists package provides one."""
        try:
            from blocklists.lookup import registry_lookup_for
        except ImportError:
            return None
        return registry_lookup_for(self.client)

    @property
    def store(self) -> Any:
        return self.screener.store

    @property
    def log(self) -> Any:
        return self.screener.log

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
