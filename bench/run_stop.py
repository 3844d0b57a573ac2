"""How long ``callscreen run`` takes to start and to stop, run after run.

Starts ``callscreen run --demo`` on free loopback ports in a private data folder, waits for
``ready``, sends one SIGINT to its process group (as a terminal's Ctrl-C does), and times the
stop until the last process has exited. Run by hand:
``.venv/bin/python bench/run_stop.py --runs 10``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(data_dir: Path) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")}
    env["CALLSCREEN_DATA_DIR"] = str(data_dir)
    log = data_dir.parent / "run.log"
    with log.open("w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "callscreen.cli.main", "run", "--demo", "--dashboard-port", str(free_port()),
             "--agi-port", str(free_port()), "--metrics-port", str(free_port())],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    while "ready; press Ctrl-C to stop" not in log.read_text():
        if process.poll() is not None or time.perf_counter() - started > 120:
            raise SystemExit(log.read_text())
        time.sleep(0.02)
    ready = time.perf_counter() - started
    stop_at = time.perf_counter()
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=60)  # `run` exits only after every child it started has been reaped
    return ready, time.perf_counter() - stop_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    starts, stops = [], []
    with tempfile.TemporaryDirectory() as folder:
        for index in range(args.runs):
            ready, stopped = one_run(Path(folder) / "var")
            starts.append(ready)
            stops.append(stopped)
            print(f"run {index + 1}: ready after {ready:.2f} s, stopped {stopped:.2f} s after Ctrl-C", flush=True)
    print(f"ready: median {statistics.median(starts):.2f} s, max {max(starts):.2f} s; "
          f"stop: median {statistics.median(stops):.2f} s, max {max(stops):.2f} s")


if __name__ == "__main__":
    main()
