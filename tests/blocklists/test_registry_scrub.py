"""Batch pre-scrub and the registry CLI: same answers as the dial-time check, one summary record."""

import csv
import io
import random
from datetime import UTC, datetime, timedelta

import pytest

from blocklists.lead_numbers import LeadNumbers, exchange_table_path, load_exchanges, save_exchanges
from blocklists.lookup import RedisRegistryLookup
from blocklists.numbering import locate_e164
from blocklists.registry import RegistryManager
from blocklists.registry_bits import RegistryBits, locate_batch
from blocklists.scrub import (
    BatchScreener,
    ScrubError,
    ScrubJob,
    _probe,
    _probe_wire,
    bulk,
    scrub_csv,
)
from callscreen.cli.main import main
from callscreen.crypto import NumberVault
from callscreen.models import Campaign, Consent, Contact, LegalBasis, OptOut, Proof, Reason, Result
from callscreen.numbers import InvalidNumber, PhoneNumber, normalize
from callscreen.screening import build_screener
from callscreen.store import StoreError, number_key
from tests_support import TEST_ENCRYPTION_KEY, TEST_HASH_KEY, TEST_LOG_KEY

pytestmark = pytest.mark.also_cluster

AT = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)  # Friday: 09:00 in New York, 14:00 in London


def consent(consent_id, basis=LegalBasis.CONSENT, **extra):
    extra.setdefault("proof", Proof(form_text="Yes, call me about offers"))
    return Consent(consent_id, "", ("promotions",), basis, "web_form", AT - timedelta(days=10), **extra)


@pytest.fixture
def world(settings, redis_client, tmp_path):
    """US and UK campaigns, registries loaded a day ago, and a few numbers with records."""
    manager = RegistryManager(redis_client, clock=lambda: AT - timedelta(days=1))
    (tmp_path / "dnc.txt").write_text("212,5550101\n212,5550102\n305,5550123\n")
    manager.import_file("us-dnc", tmp_path / "dnc.txt", fmt="ftc", country="US")
    (tmp_path / "tps.txt").write_text("02079460958\n")
    manager.import_file("gb-tps", tmp_path / "tps.txt", fmt="tps", country="GB")
    (tmp_path / "ctps.txt").write_text("01212345678\n")
    manager.import_file("gb-ctps", tmp_path / "ctps.txt", fmt="tps", country="GB")
    lookup = RedisRegistryLookup(redis_client)
    screener = build_screener(settings, redis_client, registries=lookup)
    store = screener.store
    store.put_campaign(Campaign("us-promo", "promotions", "US", "US", "America/New_York"))
    store.put_campaign(Campaign("uk-promo", "promotions", "GB", "GB", "Europe/London"))
    store.add_consent(normalize("+12125550100"), consent("c-1"))
    store.add_consent(normalize("+12125550102"), consent("c-2"))
    store.add_consent(normalize("+12125550103"), consent("ebr", LegalBasis.EXISTING_RELATIONSHIP,
                                                         relationship="purchase"))
    store.add_consent(normalize("+12125550104"), consent("c-4"))
    store.add_opt_out(normalize("+12125550104"), OptOut(None, "call", AT - timedelta(days=1)))
    store.add_consent(normalize("+13055550100"), consent("c-fl"), Contact("America/Los_Angeles", "US-CA"))
    for raw in ("+442079460958", "+442071234567", "+441212345678"):
        store.add_consent(normalize(raw), consent(f"li-{raw[-3:]}", LegalBasis.LEGITIMATE_INTEREST))
    return screener, lookup


US_LEADS = [
    ["1", "Ann", "+1 212 555 0100"],  # consent (exempts the DNC)
    ["2", "Bob", "(212) 555-0101"],  # on the DNC, no basis: refused for the listing
    ["3", "Cy", "212.555.0102"],  # on the DNC with consent
    ["4", "Di", "2125550103"],  # existing relationship
    ["5", "Ed", "12125550104"],  # opted out
    ["6", "Flo", "12345"],  # not a number
    ["7", "Gus", ""],  # no number
    ["8", "Hal", "+1 305 555 0100"],  # consent, contact zone known: 06:00 in Los Angeles
    ["9", "Ivy", "+1 212 555 0199"],  # nothing on file
    ["10", "Jo", "+44 20 7946 0958"],  # a UK number for a US campaign
]
UK_LEADS = [["a", "020 7946 0958"], ["b", "020 7123 4567"], ["c", "0121 234 5678"], ["d", "07400 123456"],
            ["e", "+1 212 555 0100"]]


def scrub_rows(screener, lookup, campaign_id, header, rows, column=None, **options):
    source = screener.store.client  # the same store
    campaign = screener.store.get_campaign(campaign_id)
    pack = screener.policies.for_campaign(campaign)
    path = options.pop("path")
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    out = io.StringIO()
    engine = options.pop("engine", None) or BatchScreener(source, screener.vault, campaign, pack, AT, lookup)
    summary = scrub_csv(engine, path, out, column=column, **options)
    return list(csv.reader(io.StringIO(out.getvalue()))), summary


def test_scrub_answers_every_row_exactly_as_the_dial_time_check_would(world, tmp_path):
    screener, lookup = world
    for campaign_id, header, rows, column in (("us-promo", ["id", "name", "Phone"], US_LEADS, None),
                                              ("uk-promo", ["ref", "tel"], UK_LEADS, "tel")):
        out, summary = scrub_rows(screener, lookup, campaign_id, header, rows, column, path=tmp_path / "in.csv")
        assert out[0] == [*header, "result", "reason"]
        assert [row[:-2] for row in out[1:]] == rows  # input kept, no number added
        for row, line in zip(rows, out[1:], strict=True):
            number_cell = row[-1]
            expected = screener.screen(number_cell, campaign_id, AT, dry_run=True)
            assert line[-2:] == [expected.result.value, expected.reason.value], row
        assert summary.rows == len(rows)
    us, _ = scrub_rows(screener, lookup, "us-promo", ["id", "name", "phone"], US_LEADS, path=tmp_path / "us.csv")
    assert [line[-1] for line in us[1:]] == [
        "consent", "national_dnc", "consent", "existing_relationship", "opted_out", "invalid_number",
        "invalid_number", "outside_calling_hours", "no_basis", "no_basis"]
    uk, _ = scrub_rows(screener, lookup, "uk-promo", ["ref", "tel"], UK_LEADS, "2", path=tmp_path / "uk.csv")
    assert [line[-1] for line in uk[1:]] == [
        "national_dnc", "legitimate_interest", "national_dnc", "no_basis", "consent"]


def test_scrub_answers_numbers_of_one_exchange_that_differ_in_the_seventh_digit_as_the_dial_time_check(
        world, tmp_path):
    screener, lookup = world
    rows = [[str(i), raw] for i, raw in enumerate(
        ["+12465210000", "+12465215555", "2465219999", "2465214444", "+18766060000", "+18766065555"] * 2)]
    out, _ = scrub_rows(screener, lookup, "us-promo", ["id", "phone"], rows, path=tmp_path / "in.csv", batch_rows=4)
    expected = [screener.screen(raw, "us-promo", AT, dry_run=True) for _i, raw in rows]
    assert [line[-2:] for line in out[1:]] == [[e.result.value, e.reason.value] for e in expected]
    assert expected[0].reason != expected[1].reason  # one exchange, two answers: the metadata still draws it


def test_scrub_reports_bad_rows_with_line_numbers_and_counts_no_attempt_and_logs_nothing_per_row(
        world, redis_client, tmp_path):
    screener, lookup = world
    _out, summary = scrub_rows(screener, lookup, "us-promo", ["id", "name", "phone"], US_LEADS,
                              path=tmp_path / "in.csv")
    assert summary.bad_rows == 2
    assert summary.bad_samples == [(7, "not a valid phone number"), (8, "no number in column 3")]
    assert summary.allowed == 3 and summary.blocked == 7
    assert summary.reasons["no_basis"] == 2 and summary.reasons["national_dnc"] == 1
    digest = screener.vault.digest("+12125550100")
    assert redis_client.zcard(number_key(digest, "attempts")) == 0
    assert screener.log.tail(5) == []


def test_scrub_in_worker_processes_gives_the_same_rows_in_the_same_order(world, settings, tmp_path):
    screener, lookup = world
    rng = random.Random(11)
    rows = [[str(i), rng.choice([f"+1 212 555 01{rng.randrange(6):02d}", "2125550101", "bad", "",
                                 f"{rng.randrange(200, 999)}{rng.randrange(200, 999)}{rng.randrange(10000):04d}"])]
            for i in range(3000)]
    single, _ = scrub_rows(screener, lookup, "us-promo", ["id", "phone"], rows, path=tmp_path / "a.csv",
                           batch_rows=250)
    campaign = screener.store.get_campaign("us-promo")
    job = ScrubJob(settings.redis_url, settings.hash_key, settings.encryption_key, campaign,
                   screener.policies.for_campaign(campaign), AT)
    multi, summary = scrub_rows(screener, lookup, "us-promo", ["id", "phone"], rows, path=tmp_path / "b.csv",
                                engine=job, workers=2, batch_rows=250)
    assert multi == single and summary.rows == 3000


def test_the_exchange_cache_agrees_with_full_normalization():
    rng = random.Random(5)
    spellings = []
    for _ in range(3000):
        digits = f"{rng.randrange(100, 1000)}{rng.randrange(0, 1000):03d}{rng.randrange(10000):04d}"
        spelled = rng.choice([digits, "1" + digits, "+1" + digits, f"({digits[:3]}) {digits[3:6]}-{digits[6:]}",
                              f"+1 {digits[:3]}.{digits[3:6]}.{digits[6:]}", "001" + digits, digits[:9],
                              f" {digits[:3]}\t{digits[3:6]}\x1f{digits[6:]}/", f"{digits[:3]}\u2013{digits[3:]}",
                              f"+1_{digits}", f"{digits[:3]}\x00{digits[3:]}"])
        spellings.append(spelled)
    spellings += ["+1" + "2" * 9 + "\u0663", "\u0662125550100", "2" * 200, "+1 212 555 0100" + " " * 300]
    for region in ("US", "GB"):
        fast = LeadNumbers(region)
        expected = []
        for raw in spellings:
            try:
                expected.append(normalize(raw, region))
            except InvalidNumber:
                expected.append(None)
            try:
                got = fast(raw)
            except InvalidNumber:
                got = None
            assert got == expected[-1], (raw, region)
        for numbers in (LeadNumbers(region), fast):  # a whole batch, exchanges unseen or known
            located = numbers.locate_batch(spellings)
            got = [None] * len(spellings)
            for row, e164, geography in zip(located.rows.tolist(), located.e164s, located.geographies.tolist(),
                                            strict=True):
                got[row] = PhoneNumber(e164, *numbers.geographies[geography])
            assert got == expected, region


def test_numbers_of_deep_area_codes_are_answered_one_by_one_not_by_exchange():
    # Barbados 246 521: a fixed line when the seventh digit is 0, 3, 6 or 9, otherwise invalid
    raws = ["+12465210000", "+12465215555", "2465219999", "2465214444", "+18766060000", "+18766065555"]
    expected = []
    for raw in raws:
        try:
            expected.append(normalize(raw, "US"))
        except InvalidNumber:
            expected.append(None)
    assert expected[0] is not None and expected[1] is None  # the metadata still draws this line
    wrong_table = {"246521": ("BB", ("America/Barbados",), None), "876606": None}  # kept by an earlier version
    for order in (raws, raws[::-1]):
        for numbers in (LeadNumbers("US"), LeadNumbers("US", wrong_table)):
            located = numbers.locate_batch(order)
            got = dict.fromkeys(order)
            for row, e164, geography in zip(located.rows.tolist(), located.e164s, located.geographies.tolist(),
                                            strict=True):
                got[order[row]] = PhoneNumber(e164, *numbers.geographies[geography])
            assert [got[raw] for raw in raws] == expected
            assert not numbers.learned  # nothing of a deep area code is kept as an exchange


@pytest.mark.parametrize(("count", "group"), [(21, 8), (16, 8), (5, 8), (7, 1), (1, 1)])
def test_the_probe_built_for_a_whole_batch_is_what_the_client_would_pack(count, group):
    hiredis = pytest.importorskip("hiredis")
    vault = NumberVault(TEST_HASH_KEY, TEST_ENCRYPTION_KEY)
    e164s = [f"+1212555{1000 + i:04d}" for i in range(count)]
    digests = vault.digests(e164s)
    expected = []
    for start in range(0, count, group):
        keys = [key for digest in digests[start:start + group] for key in _probe(digest)[1:]]
        expected.append(hiredis.pack_command(("EXISTS", *keys)))
    wire, commands = _probe_wire(digests, group)
    assert wire == b"".join(expected) and commands == len(expected)


# --- the command line ---------------------------------------------------------------------------

@pytest.fixture
def cli(store_url, redis_client, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CALLSCREEN_REDIS_URL", store_url)
    monkeypatch.setenv("CALLSCREEN_HASH_KEY", TEST_HASH_KEY.hex())
    monkeypatch.setenv("CALLSCREEN_ENCRYPTION_KEY", TEST_ENCRYPTION_KEY.hex())
    monkeypatch.setenv("CALLSCREEN_LOG_KEY", TEST_LOG_KEY.hex())

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_registry_commands_import_list_status_diff_and_drop(cli, tmp_path):
    (tmp_path / "dnc.txt").write_text("201,2001234\n202,2001234\nbroken line\n")
    code, out, _ = cli("registry", "import", "dnc.txt", "--id", "us-dnc", "--country", "US", "--quiet")
    assert code == 0 and "loaded 2 numbers from 3 lines" in out and "line 3: expected 'area code,number'" in out
    (tmp_path / "changes.txt").write_text("203,2001234,A\n201,2001234,D\n")
    code, out, _ = cli("registry", "import", "changes.txt", "--id", "us-dnc", "--changes", "--quiet")
    assert code == 0 and "+1 -1, now 2 numbers" in out
    code, out, _ = cli("registry", "list")
    assert code == 0 and "us-dnc" in out and " 2 " in out
    code, out, _ = cli("registry", "status")
    assert code == 1  # gb-tps and gb-ctps are required by the GB pack but not loaded
    assert "us-dnc       fresh" in out and "gb-tps       missing" in out
    code, out, _ = cli("registry", "diff", "dnc.txt", "--id", "us-dnc", "--format", "ftc")
    assert code == 0 and "only in dnc.txt: 1  +12012001234" in out and "in both: 1" in out
    code, out, _ = cli("registry", "drop", "us-dnc")
    assert code == 0 and "dropped" in out
    code, _, err = cli("registry", "drop", "us-dnc")
    assert code == 3 and err.strip() == "callscreen: registry 'us-dnc' is not loaded"


def test_registry_import_errors_are_one_clear_line(cli, tmp_path):
    code, _, err = cli("registry", "import", "missing.txt", "--id", "us-dnc", "--country", "US")
    assert code == 3 and err.strip() == "callscreen: missing.txt: no such file"
    (tmp_path / "junk.txt").write_text("junk\n")
    code, _, err = cli("registry", "import", "junk.txt", "--id", "us-dnc", "--country", "US", "--quiet")
    assert code == 3 and "holds no valid number" in err and len(err.strip().splitlines()) == 1


def test_scrub_command_writes_the_rows_and_one_summary_record(cli, tmp_path, redis_client):
    (tmp_path / "dnc.txt").write_text("212,5550101\n")
    cli("registry", "import", "dnc.txt", "--id", "us-dnc", "--country", "US", "--quiet")
    cli("campaign", "add", "us-promo", "--purpose", "promotions", "--jurisdiction", "US",
        "--timezone", "America/New_York")
    (tmp_path / "leads.csv").write_text("name,phone\nAnn,+1 212 555 0100\nBob,nope\n")
    code, _, err = cli("scrub", "leads.csv", "--campaign", "us-promo", "--at", "2026-11-20T15:00:00Z",
                       "--out", "out.csv", "--quiet")
    assert code == 0, err
    assert (tmp_path / "out.csv").read_text() == ("name,phone,result,reason\nAnn,+1 212 555 0100,BLOCK,no_basis\n"
                                                  "Bob,nope,BLOCK,invalid_number\n")
    assert "scrubbed 2 rows" in err and "line 3: not a valid phone number" in err
    tables = list((tmp_path / "var" / "cache").glob("nanp-exchanges-*.json"))
    assert len(tables) == 1 and "212555" in load_exchanges(tables[0])
    records = redis_client.xrange("cs:{log}:stream")
    kinds = [b'"kind":"scrub"' in fields[b"body"] for _id, fields in records]
    assert kinds.count(True) == 1 and len(records) == 1
    code, _, err = cli("scrub", "leads.csv", "--campaign", "nope", "--quiet")
    assert code == 3 and err.strip() == "callscreen: no campaign 'nope'"


def test_the_exchange_table_is_learned_by_workers_and_kept_between_runs(world, settings, tmp_path):
    screener, lookup = world
    campaign = screener.store.get_campaign("us-promo")
    job = ScrubJob(settings.redis_url, settings.hash_key, settings.encryption_key, campaign,
                   screener.policies.for_campaign(campaign), AT)
    rows = [[str(i), f"+1 212 {200 + i % 50} {i:04d}"] for i in range(400)] + [["x", "+1 221 555 0100"]]
    _out, summary = scrub_rows(screener, lookup, "us-promo", ["id", "phone"], rows, path=tmp_path / "a.csv",
                               engine=job, workers=2, batch_rows=50)
    learned = summary.learned_exchanges
    assert set(learned) == {f"212{200 + i}" for i in range(50)} | {"221555"}
    assert learned["221555"] is None  # area code 221 is not in service
    first = normalize("+12122000000")
    assert learned["212200"] == (first.region, first.timezones, first.subdivision)
    path = exchange_table_path(tmp_path / "cache")
    save_exchanges(path, learned)
    assert load_exchanges(path) == learned
    path.write_text("{broken")
    assert load_exchanges(path) == {}


def test_scrub_blocks_an_erased_number_even_when_nothing_else_is_kept_about_it(world, tmp_path, redis_client):
    from callscreen.erasure import MIGRATED_KEY, Eraser
    from callscreen.journal import AccessJournal

    screener, lookup = world
    redis_client.set(MIGRATED_KEY, "1")
    screener.store.set_contact(normalize("+12125550199"), timezone="America/New_York")
    Eraser(screener.store, screener.log, AccessJournal(redis_client, TEST_LOG_KEY), None).erase(
        normalize("+12125550199"), reason="DSR-10", by="dpo")
    out, _ = scrub_rows(screener, lookup, "us-promo", ["id", "name", "phone"], US_LEADS, path=tmp_path / "e.csv")
    assert out[9][-2:] == ["BLOCK", "erased_subject"]
    assert screener.screen("+1 212 555 0199", "us-promo", AT, dry_run=True).reason.value == "erased_subject"


def test_any_csv_shape_comes_out_row_for_row_as_the_csv_module_writes_it(world, tmp_path):
    """Plain lines go through as text, the rest through the csv module: the output is the same
    either way, byte for byte, with the line numbers the csv module counts."""
    screener, lookup = world
    campaign = screener.store.get_campaign("us-promo")
    pack = screener.policies.for_campaign(campaign)
    body = ("id,name,phone\r\n1,Ann,+1 212 555 0100\r\n2,Bob,(212) 555-0101\r\n\r\n3,Zoë,212.555.0102\r\n"
            '4,"Di, Jr.",2125550103\n5,"multi\nline\r\nnote",12125550104\n6,short\n7,Ed,"+1 305 555 0100"\n'
            "8,Flo,12345\r\n9,Gus, \n" + "".join(f"{10 + i},x,+1 212 555 01{i:02d}\n" for i in range(30))
            + '40,"unterminated\n41,tail,2125550199')
    source = tmp_path / "shapes.csv"
    source.write_bytes(body.encode())
    with open(source, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        parsed = [(row, reader.line_num) for row in reader]
    expected = io.StringIO()
    writer = csv.writer(expected, lineterminator="\n")
    writer.writerow([*parsed[0][0], "result", "reason"])
    bad = []
    for row, line in parsed[1:]:
        cell = row[2] if len(row) > 2 else ""
        answer = screener.screen(cell, "us-promo", AT, dry_run=True)
        writer.writerow([*row, answer.result, answer.reason])
        if answer.reason.value == "invalid_number":
            bad.append((line, "not a valid phone number" if cell.strip() else "no number in column 3"))
    for batch_rows in (1, 2, 3, 7, 5000):
        out = io.StringIO()
        engine = BatchScreener(screener.store.client, screener.vault, campaign, pack, AT, lookup)
        summary = scrub_csv(engine, source, out, batch_rows=batch_rows)
        assert out.getvalue() == expected.getvalue(), batch_rows
        assert summary.rows == len(parsed) - 1 and summary.bad_samples == bad, batch_rows


def test_a_cell_too_long_for_the_csv_module_is_one_clear_error_with_its_line(world, tmp_path):
    screener, lookup = world
    campaign = screener.store.get_campaign("us-promo")
    engine = BatchScreener(screener.store.client, screener.vault, campaign, screener.policies.for_campaign(campaign),
                           AT, lookup)
    for cell in ("x" * 200_000, '"' + "x" * 200_000 + '"'):
        source = tmp_path / "long.csv"
        source.write_text(f"id,phone\n1,2125550100\n2,{cell}\n3,2125550101\n")
        with pytest.raises(ScrubError, match="line 3: field larger than field limit"):
            scrub_csv(engine, source, io.StringIO())


def test_numbers_with_records_anywhere_in_a_probe_group_get_their_full_facts(world, tmp_path):
    """Records are found whether few numbers have them (grouped EXISTS) or many (one by one)."""
    screener, lookup = world
    store = screener.store
    rng = random.Random(3)
    numbers = [f"+1212{rng.randrange(200, 1000)}{rng.randrange(10000):04d}" for _ in range(400)]
    for position, e164 in enumerate(numbers):
        if position % 37 == 5 or 200 <= position < 260:  # sparse, then a dense stretch
            store.add_consent(normalize(e164), consent(f"g-{position}"))
        if position % 53 == 11:
            store.add_opt_out(normalize(e164), OptOut(None, "call", AT - timedelta(days=1)))
    rows = [[str(i), e164] for i, e164 in enumerate(numbers)]
    out, _ = scrub_rows(screener, lookup, "us-promo", ["id", "phone"], rows, path=tmp_path / "g.csv", batch_rows=40)
    for row, line in zip(rows, out[1:], strict=True):
        expected = screener.screen(row[1], "us-promo", AT, dry_run=True)
        assert line[-2:] == [expected.result.value, expected.reason.value], row
    assert {line[-1] for line in out[1:]} >= {"consent", "opted_out", "no_basis"}


def test_numbers_with_records_are_decided_on_the_registry_bits_their_batch_read(world, tmp_path, redis_client):
    """Numbers with records get their full facts, but not a second registry read each: their
    registry answer is the one read for their whole batch (a listed number with a legitimate
    interest stays refused for the listing, one with consent is allowed)."""
    from blocklists import storage
    from callscreen.cluster import is_cluster_client
    from tests_support import monitored

    screener, lookup = world
    shard = storage.shard_key("us-dnc", 1, "1:212")
    server = redis_client.get_redis_connection(redis_client.get_node_from_key(shard)) \
        if is_cluster_client(redis_client) else redis_client
    results = {}

    def scrub():
        results["us"] = scrub_rows(screener, lookup, "us-promo", ["id", "name", "phone"], US_LEADS,
                                   path=tmp_path / "us.csv")[0]

    sent = [entry["command"] for entry in monitored(server, scrub)]
    assert [line[-1] for line in results["us"][1:4]] == ["consent", "national_dnc", "consent"]
    assert any(number_key(screener.vault.digest("+12125550102"), "consents") in c for c in sent)  # full facts read
    assert [c for c in sent if c.split()[0].strip('"').upper() == "GETBIT"] == []


def test_a_registry_generation_gone_mid_scrub_stops_the_scrub(world, redis_client):
    from blocklists import storage

    screener, lookup = world
    campaign = screener.store.get_campaign("us-promo")
    engine = BatchScreener(screener.store.client, screener.vault, campaign, screener.policies.for_campaign(campaign),
                           AT, lookup)
    assert engine.screen(["2125550101"]) == [(Result.BLOCK, Reason.NATIONAL_DNC)]
    generation = lookup.refresh().registries["us-dnc"][0]
    redis_client.delete(storage.shards_key("us-dnc", generation))
    with pytest.raises(StoreError, match="replaced while the scrub ran"):
        engine.screen(["2125550101"])


def test_a_shard_copied_after_enough_reads_answers_exactly_as_its_bits(world, redis_client, tmp_path):
    """Bit reads, a shard copied in the batch's round trip, and the copy kept: the same patterns,
    listed numbers included (both registries of a UK campaign, and US numbers whose shard is absent)."""
    _screener, lookup = world
    rng = random.Random(5)
    numbers = ["+12125550101", "+12125550102", "+13055550123", "+442079460958", "+441212345678"]
    numbers += [f"+1212555{rng.randrange(10000):04d}" for _ in range(60)]
    numbers += [f"+1{rng.choice(['212', '305', '646'])}{rng.randrange(200, 1000)}{rng.randrange(10000):04d}"
                for _ in range(60)]
    numbers += [f"+44{rng.choice(['2079', '1212', '7400'])}{rng.randrange(1000000):06d}" for _ in range(60)]
    rng.shuffle(numbers)
    registries = ("us-dnc", "gb-tps", "gb-ctps")
    by_bits = RegistryBits(lookup, registries, copy_after=10**9)
    copying = RegistryBits(lookup, registries, copy_after=1)
    expected = scrub_bits(redis_client, by_bits, numbers)
    assert any(expected) and by_bits.copied_bytes == 0
    assert scrub_bits(redis_client, copying, numbers) == expected  # copied in this round trip
    assert copying.copied_bytes > 0
    commands, _planned = copying.plan(numbers)
    assert [c[0] for c in commands] == ["EXISTS"] * 3  # every shard answered from its copy
    assert scrub_bits(redis_client, copying, numbers) == expected


def scrub_bits(client, bits, e164s):
    commands, planned = bits.plan(e164s)
    return bits.read(planned, bulk(client, commands))


def test_a_change_list_is_seen_by_a_copy_once_it_is_older_than_its_age_limit(world, redis_client, tmp_path):
    _screener, lookup = world
    now = [1000.0]
    bits = RegistryBits(lookup, ("us-dnc",), copy_after=1, max_age=60, clock=lambda: now[0])
    numbers = ["+12125550101", "+12125550177"]
    assert scrub_bits(redis_client, bits, numbers) == [1, 0]
    (tmp_path / "changes.txt").write_text("212,5550177,A\n212,5550101,D\n")
    RegistryManager(redis_client).apply_changes("us-dnc", tmp_path / "changes.txt")
    now[0] += 59
    assert scrub_bits(redis_client, bits, numbers) == [1, 0]  # the copy still answers
    now[0] += 2
    assert scrub_bits(redis_client, bits, numbers) == [0, 1]  # read again
    assert scrub_bits(redis_client, RegistryBits(lookup, ("us-dnc",), copy_after=10**9), numbers) == [0, 1]


def test_shards_are_read_bit_by_bit_below_the_copy_threshold_and_past_the_budget(world, redis_client):
    _screener, lookup = world
    few = RegistryBits(lookup, ("us-dnc",), copy_after=3)
    for numbers, sent, listed in ((["+12125550101", "+12125550102"], "BITFIELD_RO", [1, 1]),
                                  (["+12125550103"], "GET", [0])):  # the third number read copies the shard
        commands, planned = few.plan(numbers)
        assert [c[0] for c in commands] == [sent, "EXISTS"]
        assert few.read(planned, bulk(redis_client, commands)) == listed
    assert few.copied_bytes > 0
    spent = RegistryBits(lookup, ("us-dnc",), copy_after=1, copy_budget=0)
    assert scrub_bits(redis_client, spent, ["+12125550101", "+13055550123"]) == [1, 1]
    assert spent.copied_bytes == 0


def test_numbers_are_grouped_by_shard_at_the_offsets_the_registry_uses():
    """The numpy pass over NANP numbers places each number where the registry does."""
    rng = random.Random(11)
    e164s = [f"+1{rng.randrange(200, 1000)}{rng.randrange(200, 1000)}{rng.randrange(10000):04d}" for _ in range(300)]
    e164s += ["+12002000000", "+19999999999", "+12425550100", "+442079460958", "+79991234567", "+3592123456",
              "+1212555010", "+121255501000", "+11125550100", "+12121005555", "+12120995555"]
    rng.shuffle(e164s)
    located = locate_batch(e164s)
    placed = {position: (f"1:{area + 200}", offset) for position, area, offset
              in zip(located.places.tolist(), located.areas.tolist(), located.offsets.tolist(), strict=True)}
    for shard, positions, offsets in located.others:
        for position, offset in zip(positions.tolist(), offsets.tolist(), strict=True):
            assert position not in placed
            placed[position] = (shard, offset)
    assert placed == {position: locate_e164(e164) for position, e164 in enumerate(e164s)}
    assert len(locate_batch([]).places) == 0


def test_scrub_memory_mb_bounds_the_shard_copies_and_changes_no_answer(cli, tmp_path, redis_client):
    """300 numbers of one shard: copied by default (one GET of the shard), read bit by bit with
    ``--memory-mb 0``; the same rows either way."""
    from blocklists import storage
    from callscreen.cluster import is_cluster_client
    from tests_support import monitored

    (tmp_path / "dnc.txt").write_text("".join(f"212,555{n:04d}\n" for n in range(0, 600, 7)))
    cli("registry", "import", "dnc.txt", "--id", "us-dnc", "--country", "US", "--quiet")
    cli("campaign", "add", "us-promo", "--purpose", "promotions", "--jurisdiction", "US",
        "--timezone", "America/New_York")
    (tmp_path / "leads.csv").write_text("phone\n" + "".join(f"+1212555{n:04d}\n" for n in range(300)))
    shard = storage.shard_key("us-dnc", 1, "1:212")
    server = redis_client.get_redis_connection(redis_client.get_node_from_key(shard)) \
        if is_cluster_client(redis_client) else redis_client
    outputs = {}
    for memory in ("400", "0"):
        def scrub(memory=memory):
            code, _, err = cli("scrub", "leads.csv", "--campaign", "us-promo", "--at", "2026-11-20T15:00:00Z",
                               "--out", f"out-{memory}.csv", "--memory-mb", memory, "--quiet")
            assert code == 0, err
        sent = [entry["command"] for entry in monitored(server, scrub)]
        copied = [command for command in sent if command.split()[0].upper() == "GET" and shard in command]
        assert len(copied) == (1 if memory == "400" else 0), sent[:5]
        outputs[memory] = (tmp_path / f"out-{memory}.csv").read_text()
    assert outputs["400"] == outputs["0"]
    assert outputs["0"].count("national_dnc") == len(range(0, 300, 7))
    code, _, err = cli("scrub", "leads.csv", "--campaign", "us-promo", "--memory-mb", "-1", "--quiet")
    assert code == 3 and "--memory-mb cannot be negative" in err
