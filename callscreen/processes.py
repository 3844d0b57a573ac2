"""Child processes as a tree one owner controls: spawn, stop in order, check ports.

Invariants: every child runs in its own session (a terminal's Ctrl-C reaches only the
owner, never the children directly), dies with its owner (Linux ``PR_SET_PDEATHSIG``), and
is stopped with its whole process group — SIGTERM, then SIGKILL once the grace period is over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence


def die_with_parent() -> None:
    """Linux: ask the kernel to send this process SIGTERM when the process that started it dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(args: Sequence[str], env: Mapping[str, str] | None = None, **options: object) -> subprocess.Popen[bytes]:
    """Start ``args`` as the leader of a new session and process group that dies with us."""
    # PR_SET_PDEATHSIG fires when the starting *thread* ends: only the main thread may ask for it
    on_start = die_with_parent if threading.current_thread() is threading.main_thread() else None
    return subprocess.Popen(list(args), env=None if env is None else dict(env), start_new_session=True,
                            preexec_fn=on_start, **options)  # type: ignore[call-overload]


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the process group ``process`` leads (its workers included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def stop_group(process: subprocess.Popen[bytes], grace: float,
               forced: Callable[[], bool] = lambda: False) -> int:
    """SIGTERM the group, wait up to ``grace`` seconds (less once ``forced()`` turns true),
    then SIGKILL whatever of the group is left. Returns the leader's exit code."""
    if process.poll() is None:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process.poll() is None and time.monotonic() < deadline and not forced():
        time.sleep(0.05)
    signal_group(process, signal.SIGKILL)  # stragglers of the group, even if the leader has gone
    return process.wait()


def port_in_use(host: str, port: int) -> bool:
    """True when nothing could bind ``host:port`` now (someone else listens there)."""
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False
