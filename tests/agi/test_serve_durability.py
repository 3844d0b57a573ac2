"""``callscreen serve`` over a store that cannot keep a decision record: it says so at once,
shows it on /metrics and answers no ALLOW — unless the operator opted out."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

from asterisk_client import AsteriskClient, header_bytes
from test_classic_script import _ready
from test_serve import _metrics

from callscreen.config import Settings
from callscreen.crypto import NumberVault
from callscreen.store import Store, connect
from tests_support import callscreen_env, free_port, start_serve


def _serve_once(settings: Settings, tmp_path: Path, **env: str) -> tuple[str, str, str]:
    """Start serve, screen one call, read /metrics, stop; returns reason, metrics and stderr."""
    metrics_port = free_port()
    process, port = start_serve(callscreen_env(str(settings.redis_url), tmp_path, **env),
                                "--metrics-port", str(metrics_port))
    try:
        session = AsteriskClient("127.0.0.1", port).run(header_bytes(args=["spring"]))
        metrics = _metrics(metrics_port)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, stderr = process.communicate(timeout=20)
    return session.reason, metrics, stderr.decode()


def _memory_only_store(settings: Settings, own_store, vault: NumberVault) -> Settings:
    server = own_store(persist=False)
    _ready(Store(connect(server.url), vault))
    return replace(settings, redis_url=server.url)


def test_serve_over_a_store_without_an_append_only_file_refuses_allow_loudly(
        settings: Settings, tmp_path: Path, own_store, vault: NumberVault) -> None:
    reason, metrics, stderr = _serve_once(_memory_only_store(settings, own_store, vault), tmp_path)
    assert reason in ("screening_unavailable", "outside_calling_hours")  # real clock: depends on the hour
    assert "NOT durable" in stderr and "appendonly no" in stderr and "allow_without_durability" in stderr
    assert 'callscreen_log_durability{state="refused"} 1.0' in metrics


def test_serve_with_the_opt_out_answers_allow_and_says_what_it_gave_up(
        settings: Settings, tmp_path: Path, own_store, vault: NumberVault) -> None:
    reason, metrics, stderr = _serve_once(_memory_only_store(settings, own_store, vault), tmp_path,
                                          CALLSCREEN_ALLOW_WITHOUT_DURABILITY="true")
    assert reason in ("consent", "outside_calling_hours")
    assert "power loss can lose" in stderr
    assert 'callscreen_log_durability{state="waived"} 1.0' in metrics
