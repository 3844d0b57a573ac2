"""``callscreen run`` as a process tree: one signal stops everything, in order, every time.

Each run uses free loopback ports and a private data folder; every process the run started
(the store, the FastAGI server, gunicorn's master and workers) is recorded while it runs and
must be gone afterwards, with every port free again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from callscreen.processes import port_in_use

pytestmark = pytest.mark.slow
READY = "ready; press Ctrl-C to stop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(root: int) -> set[int]:
    """Every live process below ``root`` (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Run:
    """One ``callscreen run`` in its own session, as a terminal's foreground job would be."""

    def __init__(self, data_dir: Path, *options: str) -> None:
        self.ports = {"dashboard": free_port(), "agi": free_port(), "metrics": free_port()}
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
        env["CALLSCREEN_DATA_DIR"] = str(data_dir)
        self.output = data_dir.parent / f"run-{self.ports['dashboard']}.log"
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "callscreen.cli.main", "run", "--dashboard-port", str(self.ports["dashboard"]),
                 "--agi-port", str(self.ports["agi"]), "--metrics-port", str(self.ports["metrics"]), *options],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.data_dir = data_dir

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while READY not in self.text():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, self.text()
            time.sleep(0.1)
        store_url = (self.data_dir / "valkey" / "url").read_text().strip()
        self.ports["store"] = int(store_url.rsplit(":", 1)[1].split("/")[0])
        self.tree = descendants(self.process.pid)

    def assert_all_gone(self) -> None:
        assert self.tree, "the run started no process"
        left = sorted(pid for pid in self.tree if alive(pid))
        assert not left, f"left running: {left}\n{self.text()}"
        busy = {name: port for name, port in self.ports.items() if port_in_use("127.0.0.1", port)}
        assert not busy, f"ports still bound: {busy}"

    def kill_leftovers(self) -> None:
        for pid in [self.process.pid, *getattr(self, "tree", ())]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "var"


# (signal, how many times, sent to the whole foreground group as a terminal's Ctrl-C does)
STOPS = [
    (signal.SIGINT, 1, True), (signal.SIGINT, 1, True), (signal.SIGINT, 1, True), (signal.SIGINT, 2, True),
    (signal.SIGINT, 3, True), (signal.SIGTERM, 1, False), (signal.SIGTERM, 3, False), (signal.SIGINT, 1, False),
]


def test_one_signal_stops_every_process_and_frees_every_port_run_after_run(data_dir):
    for signum, times, to_group in STOPS:
        run = Run(data_dir, "--demo")
        try:
            run.wait_ready()
            for _ in range(times):
                if to_group:
                    os.killpg(run.process.pid, signum)
                else:
                    run.process.send_signal(signum)
                time.sleep(0.05)
            assert run.process.wait(timeout=30) == 0, run.text()
            run.assert_all_gone()
            output = run.text()
            assert "callscreen: stopped" in output
            assert "Traceback" not in output and "registry refresh failed" not in output, output
        finally:
            run.kill_leftovers()


def test_a_busy_port_is_refused_by_name_before_anything_starts(data_dir):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
        env["CALLSCREEN_DATA_DIR"] = str(data_dir)
        result = subprocess.run(
            [sys.executable, "-m", "callscreen.cli.main", "run", "--dashboard-port", str(busy),
             "--agi-port", str(free_port()), "--metrics-port", str(free_port())],
            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 5
    assert f"port {busy} on 127.0.0.1 (dashboard) is already in use" in result.stderr
    assert "--dashboard-port" in result.stderr and "CALLSCREEN_DASHBOARD_PORT" in result.stderr
    assert "press Ctrl-C" not in result.stdout
    assert not (data_dir / "valkey" / "url").exists()


def test_a_service_that_dies_stops_the_rest_with_a_failure_code(data_dir):
    run = Run(data_dir, "--no-agi")
    try:
        run.wait_ready()
        gunicorn = next(pid for pid in run.tree if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
                        and int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                        == run.process.pid)
        os.kill(gunicorn, signal.SIGKILL)
        assert run.process.wait(timeout=30) == 8, run.text()
        assert "the dashboard exited with -9; everything is stopped" in run.text()
        run.ports.pop("agi"), run.ports.pop("metrics")
        run.assert_all_gone()
    finally:
        run.kill_leftovers()
