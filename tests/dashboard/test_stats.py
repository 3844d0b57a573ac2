"""The overview's day counts come from the log's per-day counters, exactly, in any time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from callscreen.decision_log import DecisionLog, LogRecord
from callscreen.log_shards import LogShard
from dashboard import stats
from tests_support import TEST_LOG_KEY, writer_on

pytestmark = pytest.mark.also_cluster

ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "Australia/Eucla", "Europe/Moscow")
OUTCOMES = (("ALLOW", "consent"), ("BLOCK", "no_basis"), ("BLOCK", "dnc_registry"), ("BLOCK", "no_basis"))


def decision(n: int) -> LogRecord:
    result, reason = OUTCOMES[n % len(OUTCOMES)]
    return LogRecord(id=f"d-{n}", at=datetime.now(UTC), campaign_id="spring", result=result, reason=reason)


def write_at(writer: DecisionLog, moments: list[datetime], first: int = 0) -> None:
    """Append one decision at each moment (the writer chooses the stream id: here, the moment)."""
    for n, moment in enumerate(moments, first):
        writer._next_stream_id = lambda moment=moment, n=n: f"{int(moment.timestamp() * 1000)}-{n}"
        writer.append(decision(n))


@pytest.fixture
def two_utc_days(redis_client) -> list[datetime]:
    """Decisions every 7 minutes over yesterday and today (UTC), spread over three shards: every
    local day of every zone here straddles two UTC days somewhere in it."""
    start = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), time(0), UTC)
    moments = [start + timedelta(minutes=7 * n) for n in range(2 * 24 * 60 // 7)]
    writers = [writer_on(redis_client, shard) for shard in (0, 1, 3)]
    for index, writer in enumerate(writers):
        write_at(writer, moments[index::3], first=index * 1000)
    return moments


@pytest.mark.parametrize("zone_name", ZONES)
def test_counters_sum_to_what_a_scan_of_the_log_finds_in_any_zone(redis_client, two_utc_days, zone_name):
    zone = ZoneInfo(zone_name)
    log = DecisionLog(redis_client, TEST_LOG_KEY)
    days = sorted({moment.astimezone(zone).date() for moment in two_utc_days})
    counted = stats.count_days(log, redis_client, days, zone)
    assert set(counted) == set(days)
    for day in days:
        scanned = stats.count_day(log, day, zone)
        assert counted[day].source == stats.COUNTERS and scanned.source == stats.SCAN
        assert (counted[day].decisions, counted[day].blocks, counted[day].reasons) == (
            scanned.decisions, scanned.blocks, scanned.reasons), day
    assert sum(c.decisions for c in counted.values()) == len(two_utc_days)


def test_a_local_day_straddling_two_utc_days_sums_both(redis_client):
    zone = ZoneInfo("Asia/Kathmandu")  # +05:45: the local day starts at 18:15 UTC the day before
    today = datetime.now(zone).date()
    midnight = datetime.combine(today, time(0), zone).astimezone(UTC)
    moments = [midnight - timedelta(minutes=1), midnight, midnight + timedelta(minutes=14, seconds=59),
               midnight + timedelta(hours=5, minutes=44), midnight + timedelta(hours=5, minutes=46)]
    write_at(writer_on(redis_client, 2), moments)
    assert redis_client.hlen(LogShard(2).day(midnight.date())) and redis_client.hlen(
        LogShard(2).day(midnight.date() + timedelta(days=1)))  # both UTC days hold some of it
    counted = stats.count_days(DecisionLog(redis_client, TEST_LOG_KEY), redis_client, [today], zone)
    assert counted[today].decisions == 4  # all but the minute before local midnight


def test_days_before_the_counters_existed_are_scanned_and_say_so(redis_client):
    zone = ZoneInfo("Asia/Kolkata")
    today = datetime.now(zone).date()
    yesterday = today - timedelta(days=1)
    start = datetime.combine(yesterday, time(12), zone)
    writer = writer_on(redis_client, 0)
    write_at(writer, [start, start + timedelta(hours=1)])
    # as if these were written before counters existed: no counts, and counting began today
    for key in redis_client.keys("cs:{log}:day:*"):
        redis_client.delete(key)
    began = datetime.combine(today, time(0), zone) + timedelta(minutes=1)
    redis_client.set(LogShard(0).counted, f"{int(began.timestamp() * 1000)}-0")
    write_at(writer, [began + timedelta(hours=2)], first=5)
    log = DecisionLog(redis_client, TEST_LOG_KEY)
    assert stats.count_days(log, redis_client, [yesterday, today, today + timedelta(days=1)], zone) == {
        today + timedelta(days=1): stats.DayCounts(today + timedelta(days=1), source=stats.COUNTERS)}
    now = datetime.combine(today, time(12), zone)
    days = stats.daily(log, redis_client, "Asia/Kolkata", days=2, now=now)
    assert [(d.day, d.decisions, d.source) for d in days] == [(yesterday, 2, stats.SCAN), (today, 1, stats.SCAN)]


def test_the_overview_reads_counters_not_the_log(redis_client):
    zone = ZoneInfo("Asia/Kolkata")
    noon = datetime.combine(datetime.now(zone).date(), time(12), zone)
    write_at(writer_on(redis_client, 1), [noon])
    log = DecisionLog(redis_client, TEST_LOG_KEY)
    redis_client.xtrim(LogShard(1).stream, maxlen=0)  # the records are gone; their counts are not
    today = stats.daily(log, redis_client, "Asia/Kolkata", days=1, now=noon + timedelta(hours=1))[-1]
    assert (today.decisions, today.source) == (1, stats.COUNTERS)


def test_a_zone_whose_day_does_not_start_on_a_quarter_hour_is_scanned(redis_client):
    zone = ZoneInfo("Africa/Monrovia")  # until 1972 -00:44:30
    day = datetime(1971, 6, 1).date()
    writer_on(redis_client, 0).append(decision(0))
    assert stats.count_days(DecisionLog(redis_client, TEST_LOG_KEY), redis_client, [day], zone) == {}
