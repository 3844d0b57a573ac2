"""Registry life cycle against a real server: import, atomic switch, change lists, drop, diff, status."""

import threading
from datetime import UTC, datetime, timedelta

import pytest

from blocklists import registry as registry_module
from blocklists import storage
from blocklists.lookup import RedisRegistryLookup
from blocklists.numbering import locate_e164
from blocklists.registry import RegistryError, RegistryManager
from callscreen.numbers import PhoneNumber
from callscreen.policy import PolicyBook
from tests_support import all_keys

pytestmark = pytest.mark.also_cluster


def numbers_file(path, numbers, sep=""):
    path.write_text("".join(f"{n[:3]}{sep}{n[3:]}\n" for n in numbers))
    return path


def spread(area_codes, per_area, start_exchange=200):
    return [f"{a}{start_exchange + i // 100}{i % 100:04d}" for a in area_codes for i in range(per_area)]


def text_file(path, text):
    path.write_text(text)
    return path


def listed(manager, registry_id, e164):
    info = manager.get(registry_id)
    name, offset = locate_e164(e164)
    shard = storage.shard_key(registry_id, info.generation, name)
    return bool(manager.client.getbit(shard, offset))


@pytest.fixture
def manager(redis_client):
    return RegistryManager(redis_client)


def test_import_records_metadata_and_every_number_reads_as_listed(manager, tmp_path):
    numbers = spread([201, 212, 989], 150)
    path = numbers_file(tmp_path / "us.txt", [*numbers, "garbage", numbers[0]], ",")
    report = manager.import_file("us-dnc", path, fmt="ftc", country="US", source="FTC", version="2026-11-20")
    info = report.info
    assert (info.id, info.country, info.kind, info.source, info.version) == ("us-dnc", "US", "national", "FTC",
                                                                            "2026-11-20")
    assert info.records == 450 and info.bad_lines == 1 and info.lines == 452 and info.shards == 3
    assert info.checksum.startswith("sha256:") and info.generation == 1
    assert info.bad_samples == ("line 451: expected 'area code,number'",)
    assert all(listed(manager, "us-dnc", "+1" + n) for n in numbers)
    assert not listed(manager, "us-dnc", "+12012009999")
    assert [i.id for i in manager.loaded()] == ["us-dnc"]


def test_a_full_reload_switches_generation_and_retires_the_old_one_with_a_grace_ttl(manager, redis_client, tmp_path):
    manager.import_file("us-dnc", numbers_file(tmp_path / "a.txt", spread([201], 50)), fmt="lines", country="US")
    report = manager.import_file("us-dnc", numbers_file(tmp_path / "b.txt", spread([202], 60)), fmt="lines",
                                 country="US")
    assert report.previous_generation == 1 and report.info.generation == 2
    assert 0 < redis_client.ttl(storage.shard_key("us-dnc", 1, "1:201")) <= registry_module.GRACE_SECONDS
    assert redis_client.ttl(storage.shard_key("us-dnc", 2, "1:202")) == -1
    assert listed(manager, "us-dnc", "+12022000000") and not listed(manager, "us-dnc", "+12012000000")


def test_a_concurrent_reader_never_sees_a_half_loaded_list(manager, redis_client, tmp_path, monkeypatch):
    """While a many-shard list replaces another, every lookup round sees exactly one of the two."""
    monkeypatch.setattr(registry_module, "_WRITE_BYTES", 1)  # one round trip per shard: many partial states
    old = spread(range(201, 231), 20)
    new = spread(range(301, 361), 20)
    manager.import_file("us-dnc", numbers_file(tmp_path / "old.txt", old), fmt="lines", country="US")
    lookup = RedisRegistryLookup(redis_client, refresh_seconds=100, max_age_seconds=140)
    probes = [PhoneNumber("+1" + n, "US", ()) for n in old[::37] + new[::41]]
    expect_old = tuple(p.e164[2:] in set(old) for p in probes)
    expect_new = tuple(p.e164[2:] in set(new) for p in probes)
    seen, stop = [], threading.Event()

    def reader():
        rounds = 0
        while not stop.is_set():
            if rounds % 4 == 0:  # like a server: the pointer snapshot is reused for a while
                lookup.refresh()
            rounds += 1
            commands = [c for p in probes for c in lookup.commands(p, ["us-dnc"])]
            replies = redis_client.pipeline(transaction=False)
            for command in commands:
                replies.execute_command(*command)
            values = replies.execute()
            state = tuple(s.listed for p, r in zip(probes, values, strict=True)
                          for s in lookup.parse(p, ["us-dnc"], [r]))
            seen.append(state)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for round_number in range(3):
            source = new if round_number % 2 == 0 else old
            manager.import_file("us-dnc", numbers_file(tmp_path / f"r{round_number}.txt", source), fmt="lines",
                                country="US", force=True)
    finally:
        stop.set()
        thread.join()
    assert len(seen) > 10
    assert set(seen) <= {expect_old, expect_new}
    assert expect_new in set(seen)


def test_a_file_without_numbers_or_a_much_smaller_list_is_not_switched_to(manager, tmp_path):
    manager.import_file("us-dnc", numbers_file(tmp_path / "a.txt", spread([201], 100)), fmt="lines", country="US")
    (tmp_path / "junk.txt").write_text("not\na\nlist\n")
    with pytest.raises(RegistryError, match="no valid number"):
        manager.import_file("us-dnc", tmp_path / "junk.txt", fmt="lines", country="US")
    with pytest.raises(RegistryError, match="refusing to switch"):
        manager.import_file("us-dnc", numbers_file(tmp_path / "b.txt", spread([201], 10)), fmt="lines",
                            country="US")
    info = manager.get("us-dnc")
    assert (info.generation, info.records) == (1, 100)
    assert not all_keys(manager.client, "cs:reg:us-dnc:v2:*") and not all_keys(manager.client, "cs:reg:us-dnc:v3:*")
    forced = manager.import_file("us-dnc", tmp_path / "b.txt", fmt="lines", country="US", force=True)
    assert forced.info.records == 10


def test_a_change_list_adds_and_deletes_in_place_with_exact_counts(manager, tmp_path):
    manager.import_file("us-dnc", numbers_file(tmp_path / "a.txt", ["2012001234", "2012001235"]), fmt="lines",
                        country="US", version="v1")
    (tmp_path / "changes.txt").write_text(
        "201,2001234,D\n201,2001236,A\n201,2001236,A\n505,2001111,A\n201,2009999,D\n"
        "201,2001235,D\n201,2001235,A\nbroken\n")
    report = manager.apply_changes("us-dnc", tmp_path / "changes.txt", version="v1+1")
    assert (report.added, report.removed, report.bad_count) == (2, 1, 1)
    info = report.info
    assert (info.records, info.version, info.changes_applied, info.generation, info.shards) == (3, "v1+1", 1, 1, 2)
    assert not listed(manager, "us-dnc", "+12012001234")
    assert listed(manager, "us-dnc", "+12012001236") and listed(manager, "us-dnc", "+15052001111")
    assert listed(manager, "us-dnc", "+12012001235")  # added and deleted in one list: stays listed
    assert [h["action"] for h in manager.history("us-dnc")] == ["changes", "import"]


def test_drop_unloads_at_once_and_lets_the_keys_expire(manager, redis_client, tmp_path):
    manager.import_file("gb-tps", text_file(tmp_path / "t.txt", "02079460958\n"),
                        fmt="tps", country="GB")
    manager.drop("gb-tps")
    assert manager.get("gb-tps") is None and manager.loaded() == []
    assert 0 < redis_client.ttl(storage.shard_key("gb-tps", 1, "44:2079")) <= registry_module.GRACE_SECONDS
    with pytest.raises(RegistryError, match="not loaded"):
        manager.drop("gb-tps")


def test_diff_of_two_files_and_of_a_file_against_the_loaded_list(manager, tmp_path):
    left = numbers_file(tmp_path / "l.txt", ["2012001234", "2012001235", "3052001111"])
    right = numbers_file(tmp_path / "r.txt", ["2012001235", "3052001111", "3052001112", "4152009999"])
    report = manager.diff(left, right, fmt="lines", country="US")
    assert (report.only_left, report.only_right, report.both) == (1, 2, 2)
    assert report.left_samples == ["+12012001234"]
    assert sorted(report.right_samples) == ["+13052001112", "+14152009999"]
    manager.import_file("us-dnc", right, fmt="lines", country="US")
    against = manager.diff(left, registry_id="us-dnc", fmt="lines")
    assert (against.only_left, against.only_right, against.both) == (1, 2, 2)


def test_one_writer_at_a_time(manager, redis_client, tmp_path):
    redis_client.set(storage.lock_key("us-dnc"), "someone-else")
    with pytest.raises(RegistryError, match="is running"):
        manager.import_file("us-dnc", numbers_file(tmp_path / "a.txt", ["2012001234"]), fmt="lines", country="US")


def test_an_interrupted_import_leaves_no_permanent_keys(manager, redis_client, tmp_path):
    manager.import_file("us-dnc", numbers_file(tmp_path / "a.txt", ["2012001234"]), fmt="lines", country="US")
    redis_client.set(storage.shard_key("us-dnc", 7, "1:201"), b"\xff")  # as if a crash left generation 7
    redis_client.sadd(storage.shards_key("us-dnc", 7), "1:201")
    manager.import_file("us-dnc", numbers_file(tmp_path / "b.txt", ["2012001235"]), fmt="lines", country="US")
    assert redis_client.ttl(storage.shard_key("us-dnc", 7, "1:201")) > 0


def test_status_shows_age_against_the_policy_limits_and_missing_registries(manager, tmp_path):
    now = datetime(2026, 11, 20, tzinfo=UTC)
    old = RegistryManager(manager.client, clock=lambda: now - timedelta(days=40))
    old.import_file("us-dnc", numbers_file(tmp_path / "a.txt", ["2012001234"]), fmt="lines", country="US")
    fresh = RegistryManager(manager.client, clock=lambda: now - timedelta(days=2))
    fresh.import_file("gb-tps", text_file(tmp_path / "t.txt", "02079460958\n"),
                      fmt="tps", country="GB")
    book = PolicyBook.load()
    rows = {r.registry_id: r for r in manager.status([book.get(j) for j in book.jurisdictions()], now)}
    assert (rows["us-dnc"].state, rows["us-dnc"].max_age_days, rows["us-dnc"].required_by) == ("stale", 31, ("us",))
    assert (rows["gb-tps"].state, rows["gb-tps"].max_age_days) == ("fresh", 28)
    assert rows["gb-ctps"].state == "missing" and rows["gb-ctps"].info is None
    assert rows["us-dnc"].age_seconds == pytest.approx(40 * 86400)
    ages = dict((i, (a, r)) for i, a, r in manager.ages(now))
    assert ages == {"us-dnc": (40 * 86400, 1), "gb-tps": (2 * 86400, 1)}


def test_ids_and_countries_are_checked(manager, tmp_path):
    path = numbers_file(tmp_path / "a.txt", ["2012001234"])
    with pytest.raises(RegistryError, match="registry id"):
        manager.import_file("US DNC", path, fmt="lines", country="US")
    manager.import_file("us-dnc", path, fmt="lines", country="US")
    with pytest.raises(RegistryError, match="holds US numbers"):
        manager.import_file("us-dnc", path, fmt="lines", country="GB")
