"""``callscreen serve`` as a real process: it answers, drains on SIGTERM and exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from asterisk_client import AsteriskClient, Session, header_bytes
from test_classic_script import _ready

from callscreen.config import Settings
from callscreen.decision_log import DecisionLog
from callscreen.store import Store
from tests_support import CALLSCREEN, callscreen_env, free_port, start_serve

NO_BASIS_NUMBER = "+79990000077"  # no consent or other basis on record


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return callscreen_env(str(settings.redis_url), tmp_path)


def _start(settings: Settings, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int, int]:
    metrics_port = free_port()
    process, port = start_serve(_env(settings, tmp_path), "--metrics-port", str(metrics_port), *extra)
    return process, port, metrics_port


def _metrics(port: int) -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _retention_ran(metrics_port: int) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = _metrics(metrics_port)
        if "\ncallscreen_retention_last_run_timestamp_seconds " in text:
            return 'callscreen_retention_last_run_deleted{kind="decisions"}' in text
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_answers_then_sigterm_drains_in_flight_sessions_and_exits_zero(
        store: Store, settings: Settings, tmp_path: Path, workers: str) -> None:
    _ready(store)
    # a generous decision deadline: a busy test machine must not turn the exact answers below into
    # screening_unavailable
    process, port, metrics_port = _start(settings, tmp_path, "--workers", workers, "--deadline-ms", "3000")
    try:
        client = AsteriskClient("127.0.0.1", port)
        log = DecisionLog(store.client, settings.log_key)
        # A number without a basis: no_basis comes before calling hours, so the answer is exact at any hour.
        first = [client.run(header_bytes(args=["spring", NO_BASIS_NUMBER])) for _ in range(4)]
        for session in first:
            assert len(session.commands) == 1 and session.violations == []
            assert (session.result, session.reason) == ("BLOCK", "no_basis")
            assert log.get(session.variables["SCREEN_ID"]).reason == "no_basis"
        # The consented number: ALLOW on its consent, or BLOCK outside calling hours (the real clock).
        consented = client.run(header_bytes(args=["spring"]))
        assert (consented.result, consented.reason) in (("ALLOW", "consent"), ("BLOCK", "outside_calling_hours"))
        assert log.get(consented.variables["SCREEN_ID"]).result == consented.result
        text = _metrics(metrics_port)
        assert "callscreen_agi_sessions_total" in text and 'script="screen"' in text
        assert _retention_ran(metrics_port)  # at start-up, by one process, shown by every /metrics

        in_flight: list[Session] = []
        started = threading.Event()
        slow = threading.Thread(target=lambda: in_flight.append(client.run(
            header_bytes(args=["spring", NO_BASIS_NUMBER]), reply_delay=0.4, on_command=lambda _l: started.set())))
        slow.start()
        assert started.wait(10)
        process.send_signal(signal.SIGTERM)
        slow.join(15)
        assert process.wait(20) == 0, process.stderr.read().decode() if process.stderr else ""
        assert len(in_flight[0].commands) == 1  # the session begun before SIGTERM was finished
        assert (in_flight[0].result, in_flight[0].reason) == ("BLOCK", "no_basis")
        assert log.get(in_flight[0].variables["SCREEN_ID"]) is not None
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert process.stderr is not None
        said = process.stderr.read().decode()
        assert said.count("retention deleted") == 1
        # the campaigns' number data was loaded before the first call, once per worker
        assert said.count("number data ready for RU") == int(workers)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_starts_and_answers_when_a_stored_campaign_is_unreadable(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    """Reading the campaigns' regions at start (to load their number data) must not turn one bad
    campaign record into an outage: serve says so and answers as before."""
    from callscreen.store import CAMPAIGNS_KEY, campaign_key

    _ready(store)
    store.client.sadd(CAMPAIGNS_KEY, "broken")
    store.client.set(campaign_key("broken"), "{not json")
    process, port, _metrics_port = _start(settings, tmp_path, "--deadline-ms", "3000")
    try:
        session = AsteriskClient("127.0.0.1", port).run(header_bytes(args=["spring", NO_BASIS_NUMBER]))
        assert (session.result, session.reason) == ("BLOCK", "no_basis")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    assert process.stderr is not None
    said = process.stderr.read().decode()
    assert "campaigns not read" in said and "number data ready for RU" in said


def test_serve_refuses_an_allowlist_that_does_not_resolve(settings: Settings, tmp_path: Path) -> None:
    result = subprocess.run(
        [CALLSCREEN, "serve", "--port", str(free_port()), "--allow", "no-such-host.invalid"],
        env=_env(settings, tmp_path), capture_output=True, timeout=30,
    )
    assert result.returncode != 0 and b"--allow" in result.stderr


def test_serve_options_default_from_settings_and_override_them(settings: Settings) -> None:
    import argparse

    from callscreen.cli.serve import effective_settings, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    defaults = effective_settings(parser.parse_args(["serve"]), settings)
    assert (defaults.agi_host, defaults.agi_port, defaults.agi_allowed_hosts) == (
        settings.agi_host, settings.agi_port, settings.agi_allowed_hosts)
    tuned = effective_settings(parser.parse_args(
        ["serve", "--host", "0.0.0.0", "--port", "4600", "--workers", "3", "--allow", "10.0.0.5",
         "--allow", "10.0.1.0/24", "--deadline-ms", "150"]), settings)
    assert (tuned.agi_host, tuned.agi_port, tuned.agi_workers, tuned.agi_decision_deadline_ms) == (
        "0.0.0.0", 4600, 3, 150)
    assert tuned.agi_allowed_hosts == ("10.0.0.5", "10.0.1.0/24")
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--workers", "0"])


def test_serve_store_connections_queue_past_the_pool_size_instead_of_failing(settings: Settings) -> None:
    """More commands in flight than connections wait for one (redis-py's default pool raised
    "Too many connections" past 100, failing the rest of a burst of calls)."""
    import asyncio

    from callscreen.cli.serve import STORE_CONNECTIONS, _store_client

    async def burst() -> list[object]:
        client = _store_client(settings, str(settings.redis_url))
        try:  # each BLPOP holds its connection for 0.1 s on the server
            return await asyncio.gather(*(client.blpop([f"empty:{i}"], timeout=0.1)
                                          for i in range(2 * STORE_CONNECTIONS + 40)))
        finally:
            await client.aclose()

    assert asyncio.run(burst()) == [None] * (2 * STORE_CONNECTIONS + 40)


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_serve_runs_on_the_event_loop_the_setting_names_and_says_which(
        store: Store, settings: Settings, tmp_path: Path, choice: str, loop: str) -> None:
    _ready(store)
    env = {**_env(settings, tmp_path), "CALLSCREEN_AGI_EVENT_LOOP": choice}
    process, port = start_serve(env, "--metrics-port", "0", "--deadline-ms", "3000")
    try:
        session = AsteriskClient("127.0.0.1", port).run(header_bytes(args=["spring", NO_BASIS_NUMBER]))
        assert (session.result, session.reason) == ("BLOCK", "no_basis")
    finally:
        process.terminate()
        process.wait(20)
    assert process.stderr is not None and f"{loop} event loop" in process.stderr.read().decode()


def test_serve_without_uvloop_falls_back_to_asyncio_unless_uvloop_is_required(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from callscreen.cli.context import CliError
    from callscreen.cli.serve import event_loop_factory

    monkeypatch.setitem(sys.modules, "uvloop", None)  # what a platform without uvloop's wheel sees
    assert event_loop_factory("auto") is None  # asyncio's default loop
    assert event_loop_factory("asyncio") is None
    with pytest.raises(CliError, match="uvloop is not installed"):
        event_loop_factory("uvloop")


def test_an_unknown_event_loop_setting_is_refused(tmp_path: Path) -> None:
    from callscreen.config import ConfigError, load_settings

    (tmp_path / "callscreen.toml").write_text("")
    with pytest.raises(ConfigError, match="agi_event_loop"):
        load_settings(tmp_path / "callscreen.toml", {"CALLSCREEN_AGI_EVENT_LOOP": "trio"})
