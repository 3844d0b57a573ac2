"""Record before answer, through every way in: when the store refuses the decision-log write, no
entry point lets an ALLOW (or a scrubbed lead list) out.

Each entry point — ``Screener.screen`` (sync, the ``callscreen check`` command), ``screen_async``,
the FastAGI server over a socket, the classic ``callscreen-agi`` script, ``callscreen scrub`` and
``POST /api/v1/scrub`` — meets the same faults of a real valkey server (``tests_support.LOG_FAULTS``:
out of memory, an error reply from inside the append script) for a number that has a valid consent
at a calling time, so that without the fault every one of them would answer ALLOW.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import redis.asyncio
from agi_env import WEDNESDAY_MORNING, AGIEnv
from asterisk_client import run_script
from test_classic_script import SCRIPT, classic_header, script_env  # noqa: F401  (fixture)
from test_fastagi_reasons import CAPTURED, RU_NUMBER, screen

from callscreen.cli.main import main as cli_main
from callscreen.config import Settings
from callscreen.decision_log import STREAM
from callscreen.metrics import FAILURE_KINDS
from callscreen.models import Campaign, Consent, LegalBasis, Reason, Result
from callscreen.numbers import normalize
from callscreen.screening import Screener, build_screener
from callscreen.store import Store
from dashboard import create_app
from tests_support import LOG_FAULTS, refusing_log_writes

AT = WEDNESDAY_MORNING  # 11:00 in Moscow: inside calling hours in every Russian zone


@pytest.fixture(params=LOG_FAULTS)
def fault(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ready(store: Store) -> Store:
    """A campaign and a consent: without a fault, every entry point answers ALLOW."""
    store.put_campaign(Campaign("spring", "promotions", "RU", "RU", "Europe/Moscow"))
    store.add_consent(normalize(RU_NUMBER, "RU"), Consent("c-1", "", ("promotions",), LegalBasis.CONSENT,
                                                          "sms_double_opt_in", CAPTURED,
                                                          verified_at=CAPTURED + timedelta(minutes=3)))
    return store


@pytest.fixture
def screener(settings: Settings, redis_client: redis.Redis, ready: Store) -> Screener:
    screener = build_screener(settings, redis_client)
    assert screener.screen(RU_NUMBER, "spring", AT, dry_run=True).allowed  # the consent is in place
    return screener


@pytest.fixture
def faulty(redis_client: redis.Redis, fault: str) -> Iterator[Callable[[], int]]:
    """Inside: the store refuses log writes. Yields a function counting the records written since."""
    before = redis_client.xlen(STREAM)
    with refusing_log_writes(redis_client, fault):
        yield lambda: redis_client.xlen(STREAM) - before


def assert_fail_closed(decision) -> None:
    assert (decision.result, decision.reason, decision.id) == (Result.BLOCK, Reason.SCREENING_UNAVAILABLE, "")
    assert "decision log unavailable" in decision.checks[0].detail


def test_sync_screening_answers_block_when_the_record_is_refused(screener, faulty) -> None:
    assert screener.screen(RU_NUMBER, "spring", AT, dry_run=True).allowed  # reads still answer
    assert_fail_closed(screener.screen(RU_NUMBER, "spring", AT))
    assert faulty() == 0


def test_async_screening_answers_block_when_the_record_is_refused(screener, valkey_server, faulty) -> None:
    async def screened():
        screener.aclient = screener.log.aclient = redis.asyncio.Redis.from_url(valkey_server.url)
        try:
            return await screener.screen_async(RU_NUMBER, "spring", AT)
        finally:
            await screener.aclient.aclose()

    assert_fail_closed(asyncio.run(screened()))
    assert faulty() == 0


def test_the_check_command_answers_block_when_the_record_is_refused(settings, ready, redis_client, fault,
                                                                     monkeypatch, capsys) -> None:
    _cli_environment(settings, monkeypatch)
    with refusing_log_writes(redis_client, fault):
        code = cli_main(["check", RU_NUMBER, "--campaign", "spring", "--at", AT.isoformat(), "--log"])
    out = capsys.readouterr().out
    assert code == 4 and out.startswith("BLOCK screening_unavailable")
    assert "not logged: the decision log was unavailable" in out
    assert redis_client.xlen(STREAM) == 0


def test_fastagi_answers_block_when_the_record_is_refused(agi_factory, ready, redis_client, fault) -> None:
    env: AGIEnv = agi_factory()
    assert screen(env, "spring").result == "ALLOW"  # the same call, before the fault
    before = redis_client.xlen(STREAM)
    with refusing_log_writes(redis_client, fault):
        session = screen(env, "spring")
    assert (session.result, session.reason, session.variables["SCREEN_ID"]) == (
        "BLOCK", "screening_unavailable", "")
    assert redis_client.xlen(STREAM) == before
    assert sum(env.metric("callscreen_screening_failures_total", stage="log", kind=kind)
               for kind in FAILURE_KINDS) == 1


def test_classic_script_answers_block_when_the_record_is_refused(ready, redis_client, fault,
                                                                 script_env) -> None:  # noqa: F811
    with refusing_log_writes(redis_client, fault):
        session = run_script(SCRIPT, classic_header(["spring", RU_NUMBER]), script_env)
    assert session.violations == []
    assert (session.result, session.reason, session.variables["SCREEN_ID"]) == (
        "BLOCK", "screening_unavailable", "")
    assert redis_client.xlen(STREAM) == 0


def test_scrub_command_keeps_no_output_when_its_record_is_refused(settings, ready, redis_client, fault,
                                                                 tmp_path, monkeypatch, capsys) -> None:
    _cli_environment(settings, monkeypatch)
    leads = tmp_path / "leads.csv"
    leads.write_text(f"name,phone\nAnn,{RU_NUMBER}\n")
    out = tmp_path / "out.csv"
    with refusing_log_writes(redis_client, fault):
        code = cli_main(["scrub", str(leads), "--campaign", "spring", "--at", AT.isoformat(),
                         "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 4 and "the scrub has no record (no output was written)" in err
    assert list(tmp_path.glob("*out.csv*")) == []  # neither out.csv nor its .partial
    assert redis_client.xlen(STREAM) == 0
    assert cli_main(["scrub", str(leads), "--campaign", "spring", "--at", AT.isoformat(),
                     "--out", str(out), "--quiet"]) == 0  # and without the fault the lead is ALLOW
    assert out.read_text().splitlines()[1].endswith(",ALLOW,consent")


def test_api_scrub_answers_503_without_results_when_its_record_is_refused(settings, ready, redis_client,
                                                                         fault) -> None:
    app = create_app(settings, client=redis_client, secure_cookies=False)
    token = app.extensions["callscreen"].tokens.add("crm")[1]
    body = {"campaign_id": "spring", "numbers": [RU_NUMBER], "at": AT.isoformat()}
    with refusing_log_writes(redis_client, fault):
        refused = app.test_client().post("/api/v1/scrub", json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 503 and refused.json["error"] == "store_unavailable"
    assert "results" not in refused.json and redis_client.xlen(STREAM) == 0
    done = app.test_client().post("/api/v1/scrub", json=body, headers={"Authorization": f"Bearer {token}"})
    assert done.status_code == 200 and done.json["results"][0]["result"] == "ALLOW"


def _cli_environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(settings.data_dir))
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("CALLSCREEN_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CALLSCREEN_HASH_KEY", settings.hash_key.hex())
    monkeypatch.setenv("CALLSCREEN_ENCRYPTION_KEY", settings.encryption_key.hex())
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", settings.log_key.hex())

