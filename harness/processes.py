"""callscreen processes for tests and benchmarks: fixed test keys, a clean environment, and
``callscreen serve`` on a free loopback port.

``harness/`` holds what the tests and the benchmarks share (this, a real Asterisk in ``pbx``, an
AMI client in ``ami``, a seeded test store in ``screening``). It is not part of the installed
package and has no ``__init__``: ``tests/tests_support.py`` and the ``bench/`` scripts put the
repository root on ``sys.path`` and import it from there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

TEST_HASH_KEY = bytes(range(32))
TEST_ENCRYPTION_KEY = bytes(range(32, 64))
TEST_LOG_KEY = bytes(range(64, 96))
CALLSCREEN = str(Path(sys.executable).with_name("callscreen"))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads, not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def callscreen_env(redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a callscreen process on ``redis_url`` with the test keys; the caller's
    own ``CALLSCREEN_*`` variables are dropped so nothing outside the test leaks in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env.update(
        CALLSCREEN_REDIS_URL=redis_url, CALLSCREEN_HASH_KEY=TEST_HASH_KEY.hex(),
        CALLSCREEN_ENCRYPTION_KEY=TEST_ENCRYPTION_KEY.hex(), CALLSCREEN_LOG_KEY=TEST_LOG_KEY.hex(),
        CALLSCREEN_DATA_DIR=str(data_dir), **extra,
    )
    return env


def start_serve(env: Mapping[str, str], *extra: str, port: int | None = None, timeout: float = 20.0,
                output: IO[bytes] | None = None,
                command: Sequence[str] = (CALLSCREEN, "serve")) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``callscreen serve`` on a free loopback port; returns once it accepts connections.

    Its stdout and stderr go to pipes the caller may read, or to ``output`` (an open file: a
    long run must not fill a pipe nobody reads). ``command`` replaces ``callscreen serve`` (a
    profiling wrapper taking the same options)."""
    port = port or free_port()
    sink: Any = subprocess.PIPE if output is None else output
    process = subprocess.Popen([*command, "--port", str(port), *extra], env=dict(env), stdout=sink, stderr=sink)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"callscreen serve exited: {(process.communicate()[1] or b'').decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    process.kill()
    process.wait()
    raise AssertionError("callscreen serve did not listen")
