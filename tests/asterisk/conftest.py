"""Fixtures for the tests against a real Asterisk (helpers in ``harness/pbx.py``, ``harness/ami.py``,
``harness/screening.py`` and ``srv_dns.py``; the benchmarks share the ``harness`` ones).

One Asterisk, one store and one ``callscreen serve`` for the whole run (session scope: they
start in about two seconds together, and only when a test here needs them). The store is a
valkey-server of its own, so the suite's shared one is never touched.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from srv_dns import SrvDns

from harness.ami import AMIClient
from harness.pbx import Asterisk, AsteriskMisconfigured, AsteriskUnavailable, Dialer, Installation, can_isolate_resolver
from harness.screening import CLASSIC_AGI, LISTED_NUMBER, Screening

CLASSIC_SCRIPT = Path(sys.executable).with_name("callscreen-agi")


@pytest.fixture(scope="session")
def installation() -> Installation:
    try:
        return Installation.find()
    except AsteriskMisconfigured as exc:
        pytest.fail(str(exc))
    except AsteriskUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def screening(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Screening]:
    screening = Screening.start(tmp_path_factory.mktemp("screening"))
    screening.load_registry([LISTED_NUMBER])
    screening.consent(LISTED_NUMBER)  # consent does not lift a registry listing in XR (as in RU)
    yield screening
    screening.stop()


@pytest.fixture(scope="session")
def serve_port(screening: Screening) -> Iterator[int]:
    """The port of the ``callscreen serve`` the sample dialplan's CALLSCREEN_AGI points at."""
    process, port = screening.serve()
    yield port
    process.terminate()
    process.wait(20)


@pytest.fixture(scope="session")
def srv_dns() -> Iterator[SrvDns | None]:
    """The DNS server Asterisk resolves ``hagi://`` names with; None where that cannot be arranged
    (it takes root: port 53, and a private mount namespace for Asterisk's /etc/resolv.conf)."""
    if not can_isolate_resolver():
        yield None
        return
    dns = SrvDns().start()
    yield dns
    dns.stop()


@pytest.fixture(scope="session")
def asterisk(installation: Installation, screening: Screening, serve_port: int,
             srv_dns: SrvDns | None) -> Iterator[Asterisk]:
    pbx = Asterisk(installation, f"agi://127.0.0.1:{serve_port}", env=screening.env,
                   agi_scripts={f"{CLASSIC_AGI}/screen": CLASSIC_SCRIPT, f"{CLASSIC_AGI}/outcome": CLASSIC_SCRIPT},
                   resolv_conf=srv_dns.resolv_conf if srv_dns else None)
    pbx.start()
    yield pbx
    pbx.stop()


@pytest.fixture(scope="session")
def ami(asterisk: Asterisk) -> Iterator[AMIClient]:
    with asterisk.ami() as client:
        yield client


@pytest.fixture(scope="session")
def dialer(ami: AMIClient) -> Dialer:
    return Dialer(ami)
