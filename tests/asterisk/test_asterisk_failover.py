"""Failures around a real Asterisk 22 running the sample dialplan, during streams of calls:
the store going away, and a screening server killed behind ``hagi://`` (DNS SRV failover).

The invariant checked on every call: nothing is dialed without its ALLOW record.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from srv_dns import SrvDns, SrvTarget

from harness.pbx import Call, Dialer
from harness.screening import ALWAYS, Screening, assert_blocked, assert_dialed_with_its_allow_record

SRV_NAME = "callscreen.test"  # hagi://callscreen.test looks up _agi._tcp.callscreen.test


def stream(dialer: Dialer, numbers: list[str], agi_url: str, gap: float = 0.02) -> list[Call]:
    """Originate one call per number, ``gap`` seconds apart, without waiting for them."""
    calls = []
    for number in numbers:
        calls.append(dialer.call(number, ALWAYS, CALLSCREEN_AGI=agi_url))
        time.sleep(gap)
    return calls


def chain_pid(screening: Screening, call: Call) -> int:
    """The pid of the process that logged the call's decision (chains are host:pid:nonce)."""
    record = screening.log.get(call.screen_id)
    assert record is not None
    return int(record.chain.split(":")[-2])


# --- the store goes away ---------------------------------------------------------------------


@pytest.fixture
def own_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Screening, str]]:
    """A store and a ``callscreen serve`` of this test's own, so the outage harms nothing else."""
    screening = Screening.start(tmp_path_factory.mktemp("outage"))
    process, port = screening.serve()
    try:
        yield screening, f"agi://127.0.0.1:{port}"
    finally:
        valkey = screening.server.process
        if valkey is not None and valkey.poll() is None:
            os.kill(valkey.pid, signal.SIGCONT)
        process.terminate()
        process.wait(20)
        screening.stop()


@pytest.mark.slow
@pytest.mark.parametrize("outage", [signal.SIGSTOP, signal.SIGKILL], ids=["store-hangs", "store-dies"])
def test_a_store_outage_during_a_stream_of_calls_dials_nothing(dialer: Dialer, own_store: tuple[Screening, str],
                                                               outage: signal.Signals) -> None:
    screening, url = own_store
    numbers = [screening.allowed_number() for _ in range(50)]
    before = dialer.wait_screened(stream(dialer, numbers[:10], url))
    for call in before:
        assert_dialed_with_its_allow_record(screening, call)

    valkey = screening.server.process
    assert valkey is not None
    os.kill(valkey.pid, outage)
    during = stream(dialer, numbers[10:], url)
    dialer.wait(before + during, timeout=60)

    for call in during:  # screened while the store hangs or is gone: no decision, no dial
        assert_blocked(call, "screening_unavailable")
        assert call.screen_id == ""


# --- hagi:// SRV failover between two screening servers ----------------------------------------


@pytest.fixture
def srv_pair(screening: Screening, srv_dns: SrvDns | None) -> Iterator[tuple[subprocess.Popen[bytes], ...]]:
    """Two ``callscreen serve`` on the shared store, published as SRV targets of priority 10 and 20."""
    if srv_dns is None:
        pytest.skip("hagi:// needs Asterisk to resolve SRV through a test DNS server: that takes root "
                    "(port 53 and a private mount namespace for /etc/resolv.conf via unshare)")
    servers = [screening.serve(), screening.serve()]
    targets = []
    for index, (_, port) in enumerate(servers):
        host = f"cs{index + 1}.{SRV_NAME}"
        srv_dns.zone.a[host] = "127.0.0.1"
        targets.append(SrvTarget(priority=10 * (index + 1), weight=50, port=port, host=host))
    srv_dns.zone.set_srv(f"_agi._tcp.{SRV_NAME}", targets)
    try:
        yield tuple(process for process, _ in servers)
    finally:
        srv_dns.zone.set_srv(f"_agi._tcp.{SRV_NAME}", [])
        for process, _ in servers:
            if process.poll() is None:
                process.terminate()
                process.wait(20)


@pytest.mark.slow
def test_hagi_moves_calls_to_the_next_server_when_the_first_is_killed_mid_run(
        dialer: Dialer, screening: Screening, srv_pair: tuple[subprocess.Popen[bytes], ...]) -> None:
    first, second = srv_pair
    numbers = [screening.allowed_number() for _ in range(30)]
    url = f"hagi://{SRV_NAME}"

    early = dialer.wait_screened(stream(dialer, numbers[:10], url))
    assert {chain_pid(screening, c) for c in early} == {first.pid}  # priority 10 takes every call

    in_flight = stream(dialer, numbers[10:15], url, gap=0)
    first.kill()
    first.wait(10)
    late = stream(dialer, numbers[15:], url)
    calls = dialer.wait(early + in_flight + late, timeout=60)

    for call in calls:
        if call.dialed:
            assert_dialed_with_its_allow_record(screening, call)
        else:  # only a session cut by the kill may fail, and then it fails closed
            assert call in in_flight
            assert_blocked(call, "screening_unavailable")
    for call in late:
        assert_dialed_with_its_allow_record(screening, call)
        assert chain_pid(screening, call) == second.pid


def test_hagi_with_no_srv_record_is_not_dialed(dialer: Dialer, screening: Screening,
                                               srv_dns: SrvDns | None) -> None:
    if srv_dns is None:
        pytest.skip("hagi:// needs root here (see test_hagi_moves_calls_...)")
    (call,) = dialer.wait([dialer.call(screening.allowed_number(), ALWAYS,
                                       CALLSCREEN_AGI=f"hagi://nowhere.{SRV_NAME}")])
    assert_blocked(call, "screening_unavailable", agi_status="FAILURE")
