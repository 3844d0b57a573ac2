"""Decision slots: a worker decides at most ``agi_max_deciding`` screenings at once; the rest wait,
before their decision deadline starts, and are answered for real once a slot frees, or BLOCK
``screening_unavailable`` after ``agi_decision_queue_timeout``."""

from __future__ import annotations

import threading
import time

import redis
from agi_env import AGIEnv
from test_fastagi_reasons import RU_NUMBER, campaign, consent, screen

from callscreen.decision_log import DecisionLog


def _pause_store(env: AGIEnv, milliseconds: int) -> None:
    admin = redis.Redis.from_url(env.settings.redis_url)
    admin.execute_command("CLIENT", "PAUSE", milliseconds, "ALL")
    admin.close()


def _in_background(env: AGIEnv, count: int) -> tuple[list[threading.Thread], list[object]]:
    sessions: list[object] = []
    threads = [threading.Thread(target=lambda: sessions.append(screen(env, "spring"))) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, sessions


def _wait_for(env: AGIEnv, **gauges: float) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(env.metric(name) == value for name, value in gauges.items()):
            return True
        time.sleep(0.01)
    return False


def test_calls_beyond_the_decision_slots_wait_before_their_deadline_starts_and_get_real_answers(agi_factory) -> None:
    env = agi_factory(agi_max_deciding=2, agi_decision_deadline_ms=4000)
    campaign(env, "spring")
    consent(env, RU_NUMBER)
    screen(env, "spring")  # warm the campaign cache and the connections
    _pause_store(env, 1500)  # the first two decisions wait on the store; the other two on a slot
    threads, sessions = _in_background(env, 4)
    assert _wait_for(env, callscreen_agi_decisions_in_progress=2, callscreen_agi_decisions_queued=2)
    for thread in threads:
        thread.join(20)
    assert [(s.result, s.reason) for s in sessions] == [("ALLOW", "consent")] * 4  # type: ignore[attr-defined]
    assert env.metric("callscreen_agi_decisions_in_progress") == env.metric("callscreen_agi_decisions_queued") == 0


def test_a_call_that_waits_too_long_for_a_decision_slot_is_blocked_and_the_block_logged(agi_factory) -> None:
    env = agi_factory(agi_max_deciding=1, agi_decision_queue_timeout=0.2, agi_decision_deadline_ms=4000)
    campaign(env, "spring")
    consent(env, RU_NUMBER)
    screen(env, "spring")
    _pause_store(env, 1500)
    threads, deciding = _in_background(env, 1)  # holds the only slot until the store is back
    assert _wait_for(env, callscreen_agi_decisions_in_progress=1)
    waited = screen(env, "spring")
    assert (waited.result, waited.reason, waited.variables["SCREEN_ID"]) == ("BLOCK", "screening_unavailable", "")
    assert waited.seconds < 1.2  # answered from the queue, long before the store came back
    assert env.metric("callscreen_agi_session_errors_total", kind="queued_too_long") == 1
    threads[0].join(20)
    assert (deciding[0].result, deciding[0].reason) == ("ALLOW", "consent")  # type: ignore[attr-defined]
    log = DecisionLog(env.client, env.settings.log_key)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            r.reason == "screening_unavailable" for r in log.tail(5)):
        time.sleep(0.1)
    blocked = [r for r in log.tail(5) if r.reason == "screening_unavailable"]
    assert blocked and "no decision slot" in blocked[0].checks[0][2]
