"""FastAGI and classic-script benchmark (run by hand; loopback only).

    .venv/bin/python bench/agi_bench.py [--seconds 10] [--rate 1000] [--script-runs 30]
        [--skip server|floor|script] [--baseline-tree DIR]

Starts a private valkey server, seeds a campaign and 1,000 consented numbers, then measures:

(a) ``callscreen serve`` (one worker): decisions/s, p50/p99 session latency, server CPU per decision;
(b) the floor server in ``bench/agi_floor.py`` under the same load;
(c) ``callscreen-agi`` over pipes versus a bare ``python -c "import redis, phonenumbers"`` (and,
    with ``--baseline-tree``, the same script on another tree's code, interleaved).

Latency is measured by the load generator from connect to the server closing the session
(header, decision, the answer's command round trip): what Asterisk waits for. Server CPU is read
from /proc for the server process only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: PYTHONPATH=<tree> measures <tree>

from callscreen.crypto import NumberVault  # noqa: E402
from callscreen.embedded import EmbeddedServer  # noqa: E402
from callscreen.models import Campaign, Consent, LegalBasis  # noqa: E402
from callscreen.numbers import normalize  # noqa: E402
from callscreen.store import Store  # noqa: E402
from harness.processes import process_cpu  # noqa: E402

BIN = Path(sys.executable).parent
KEYS = {"CALLSCREEN_HASH_KEY": "11" * 32, "CALLSCREEN_ENCRYPTION_KEY": "22" * 32, "CALLSCREEN_LOG_KEY": "33" * 32}
NUMBERS = [f"+7999{i:07d}" for i in range(1000)]
HEADER = (
    "agi_network: yes\nagi_network_script: screen\nagi_request: agi://127.0.0.1:{port}/screen\n"
    "agi_channel: Local/{n}@outbound-marketing-00000006;2\nagi_language: en\nagi_type: Local\n"
    "agi_uniqueid: 1795299856.13\nagi_version: 22.10.1\nagi_callerid: unknown\nagi_calleridname: unknown\n"
    "agi_callingpres: 67\nagi_callingani2: 0\nagi_callington: 0\nagi_callingtns: 0\nagi_dnid: unknown\n"
    "agi_rdnis: unknown\nagi_context: outbound-marketing\nagi_extension: {n}\nagi_priority: 1\n"
    "agi_enhanced: 0.0\nagi_accountcode: \nagi_threadid: 140702713157312\nagi_arg_1: bench\n\n"
)


def daytime_zone() -> str:
    """An Etc/GMT zone where it is early afternoon now, so every seeded call is ALLOWed."""
    offset = (13 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def seed(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    store = Store(client, NumberVault(bytes.fromhex(KEYS["CALLSCREEN_HASH_KEY"]),
                                      bytes.fromhex(KEYS["CALLSCREEN_ENCRYPTION_KEY"])))
    store.put_campaign(Campaign("bench", "promotions", "RU", "RU", "Europe/Moscow"))
    zone = daytime_zone()
    for i, raw in enumerate(NUMBERS):
        number = normalize(raw, "RU")
        store.add_consent(number, Consent(f"c-{i}", "", ("promotions",), LegalBasis.CONSENT,
                                          "sms_double_opt_in", datetime(2026, 5, 1, tzinfo=UTC),
                                          verified_at=datetime(2026, 5, 1, 0, 3, tzinfo=UTC)))
        store.set_contact(number, timezone=zone)
    client.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (the workers of ``serve --workers N``)."""
    return sum(process_cpu(candidate) for candidate in [pid, *_children(pid)])


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not listen")


def screen_result(line: bytes) -> str:
    """SCREEN_RESULT's value if ``line`` sets it (``SET VARIABLE`` or ``EXEC MSet``), else ''."""
    if line.startswith(b"SET VARIABLE SCREEN_RESULT"):
        return line.split(b'"')[1].decode()
    if line.startswith(b"EXEC MSet "):
        return line.rstrip(b"\n").rpartition(b"SCREEN_RESULT=")[2].decode()
    return ""


def reply_to(line: bytes) -> bytes:
    """What Asterisk answers: ``200 result=0`` to an EXEC of MSet, ``200 result=1`` to a SET."""
    return b"200 result=0\n" if line.startswith(b"EXEC ") else b"200 result=1\n"


async def session(port: int, number: str, results: dict[str, int]) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEADER.format(port=port, n=number).encode())
    while True:
        line = await reader.readline()
        if not line:
            break
        value = screen_result(line)
        if value:
            results[value] = results.get(value, 0) + 1
        writer.write(reply_to(line))
    writer.close()
    return time.perf_counter() - started


async def open_loop(port: int, rate: float, seconds: float) -> tuple[list[float], dict[str, int], float]:
    """Start sessions at a fixed rate (like calls arriving), whatever the server's speed."""
    results: dict[str, int] = {}
    latencies: list[float] = []
    tasks = []
    interval = 1.0 / rate
    start = time.perf_counter()
    count = int(rate * seconds)
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(session(port, NUMBERS[i % len(NUMBERS)], results)))
    for task in tasks:
        try:
            latencies.append(await task)
        except OSError:
            results["error"] = results.get("error", 0) + 1
    return latencies, results, time.perf_counter() - start


async def closed_loop(port: int, concurrency: int, seconds: float) -> tuple[int, float]:
    results: dict[str, int] = {}
    done = 0
    end = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < end:
            await session(port, NUMBERS[i % len(NUMBERS)], results)
            done += 1
            i += concurrency

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure_server(name: str, command: list[str], port: int, env: dict[str, str], rate: float,
                   seconds: float) -> dict[str, float]:
    log = open(f"/tmp/callscreen-bench-{name}.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_listening(port, process)
        asyncio.run(open_loop(port, 200, 1.0))  # warm up: connections, campaign cache, script load
        cpu0 = cpu_seconds(process.pid)
        latencies, results, wall = asyncio.run(open_loop(port, rate, seconds))
        cpu = cpu_seconds(process.pid) - cpu0
        done = len(latencies)
        cpu1 = cpu_seconds(process.pid)
        max_done, max_wall = asyncio.run(closed_loop(port, 32, min(seconds, 5.0)))
        max_cpu = cpu_seconds(process.pid) - cpu1
    finally:
        process.terminate()
        process.wait(30)
        log.close()
    row = {
        "offered_rate": rate, "achieved_rate": done / wall, "p50_ms": pct(latencies, 0.50),
        "p99_ms": pct(latencies, 0.99), "cpu_ms_per_decision": cpu / max(done, 1) * 1000,
        "max_rate": max_done / max_wall, "cpu_ms_per_decision_at_max": max_cpu / max(max_done, 1) * 1000,
    }
    print(f"{name}: {row} results={results}", flush=True)
    return row


def drive_script(env: dict[str, str], number: str) -> tuple[float, str]:
    """One call of the classic script over pipes, as Asterisk makes it: (seconds, SCREEN_RESULT)."""
    started = time.perf_counter()
    process = subprocess.Popen([str(BIN / "callscreen-agi"), "bench"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert process.stdin and process.stdout
    process.stdin.write(HEADER.format(port=0, n=number).replace("agi_network_script: screen\n", "").encode())
    process.stdin.flush()
    result = ""
    for line in process.stdout:
        result = screen_result(line) or result
        process.stdin.write(reply_to(line))
        process.stdin.flush()
    process.wait()
    return time.perf_counter() - started, result


def compile_project(trees: list[Path] | None = None) -> None:
    """Write the project's bytecode, as installing a wheel does. An editable checkout run with
    ``PYTHONDONTWRITEBYTECODE=1`` (as on the development machines) has none, and the classic
    script then compiles every module it imports on every call: ~0.4 s that no deployment pays."""
    trees = [ROOT, *(Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p), *(trees or [])]
    packages = [str(tree / name) for tree in trees for name in ("callscreen", "agi", "blocklists")
                if (tree / name).is_dir()]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)


def timed(command: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--script-runs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1, help="callscreen serve --workers")
    parser.add_argument("--serve-option", action="append", default=[], metavar="OPTION",
                        help="one more option for callscreen serve, e.g. --serve-option=--max-deciding=8")
    parser.add_argument("--skip", action="append", default=[], choices=["server", "floor", "script"])
    parser.add_argument("--baseline-tree", type=Path, metavar="DIR",
                        help="also time the classic script on the code of another source tree (e.g. a worktree "
                             "of the previous commit), interleaved with this tree's runs")
    args = parser.parse_args()
    with EmbeddedServer() as valkey:  # appendfsync always: every ALLOW is confirmed on disk
        seed(valkey.url)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CALLSCREEN_")},
               **KEYS, "CALLSCREEN_REDIS_URL": valkey.url, "CALLSCREEN_DATA_DIR": "/tmp/callscreen-bench"}
        rows = {}
        if "server" not in args.skip:
            port = free_port()
            rows["callscreen"] = measure_server(
                "callscreen", [str(BIN / "callscreen"), "serve", "--port", str(port), "--metrics-port", "0",
                 "--workers", str(args.workers), *args.serve_option],
                port, env, args.rate, args.seconds)
        if "floor" not in args.skip:
            port = free_port()
            rows["floor"] = measure_server(
                "floor", [sys.executable, str(ROOT / "bench" / "agi_floor.py"), str(port), valkey.url],
                port, env, args.rate, args.seconds)
        if "callscreen" in rows and "floor" in rows:
            for key in ("cpu_ms_per_decision", "cpu_ms_per_decision_at_max"):
                print(f"{key} ratio callscreen/floor: {rows['callscreen'][key] / rows['floor'][key]:.2f}")
        if "script" not in args.skip:
            time_script(env, args.script_runs, args.baseline_tree)


def time_script(env: dict[str, str], runs: int, baseline: Path | None) -> None:
    """Medians of ``runs`` classic-script calls, bare imports and empty interpreters, one of each
    in turn (and a call on ``baseline``'s code), so drift in the machine's load hits them all.
    Wall time is what Asterisk waits; CPU time (user + system of the child process) is what the
    call costs, and moves far less with the load other processes put on a shared machine."""
    trees = {"this tree": env}
    if baseline is not None:
        trees["baseline"] = {**env, "PYTHONPATH": str(baseline.resolve())}
    compile_project([baseline] if baseline else None)
    for tree_env in trees.values():
        drive_script(tree_env, NUMBERS[0])  # warm the page cache and the data dir's caches
    load = os.getloadavg()[0]
    walls: dict[str, list[float]] = {name: [] for name in [*trees, "bare", "empty"]}
    cpus: dict[str, list[float]] = {name: [] for name in walls}
    results: dict[str, int] = {}

    def child_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    for i in range(runs):
        turn = list(trees.items())
        for name, tree_env in (turn if i % 2 == 0 else turn[::-1]):  # which tree goes first alternates
            cpu = child_cpu()
            seconds, result = drive_script(tree_env, NUMBERS[i % len(NUMBERS)])
            walls[name].append(seconds)
            cpus[name].append(child_cpu() - cpu)
            results[result] = results.get(result, 0) + 1
        for name, code in (("bare", "import redis, phonenumbers"), ("empty", "pass")):
            cpu = child_cpu()
            walls[name].append(timed([sys.executable, "-c", code], 1))
            cpus[name].append(child_cpu() - cpu)
    wall = {name: statistics.median(values) for name, values in walls.items()}
    cpu = {name: statistics.median(values) for name, values in cpus.items()}
    print(f"{runs} runs each, load average {load:.1f} -> {os.getloadavg()[0]:.1f}; answers {results}; "
          f"bare import {wall['bare'] * 1000:.1f} ms wall / {cpu['bare'] * 1000:.1f} ms CPU; "
          f"empty python {wall['empty'] * 1000:.1f} ms wall / {cpu['empty'] * 1000:.1f} ms CPU")
    for name in trees:
        print(f"classic script ({name}) median {wall[name] * 1000:.1f} ms wall, ratio {wall[name] / wall['bare']:.2f}; "
              f"{cpu[name] * 1000:.1f} ms CPU, ratio {cpu[name] / cpu['bare']:.2f}")


if __name__ == "__main__":
    main()
