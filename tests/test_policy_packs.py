"""Policy packs: the shipped ones load with the rules the decision tests rely on; a malformed
pack fails with a PolicyError that names the file and the field; local packs override."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, time, timedelta
from pathlib import Path

import pytest

from callscreen.models import LegalBasis
from callscreen.policy import BUILTIN_DIR, AttemptCap, Period, PolicyBook, PolicyError, Window

MINIMAL = """\
[pack]
id = "xx"
version = "1"
jurisdiction = "xx"
name = "Test land"

[bases]
advertising = ["consent"]
other = ["consent", "existing_relationship"]

[consent]
verification_required_for = ["web_form"]

[automatic_dialing]
advertising = "forbidden"

[existing_relationship]
after_purchase_days = 365
after_inquiry_days = 30

[registries]
required = ["xx-dnc"]
max_age_days = 30
exempt_bases = ["consent"]

[retention]
decisions_days = 1095
outcomes_days = 365
consents_days = 730
unverified_consents_days = 30
complaints_days = 1095
journal_days = 1095

[hours]
mon = "08:00-21:00"
tue = "08:00-21:00"
wed = "08:00-21:00"
thu = "08:00-21:00"
fri = "08:00-21:00"
sat = "10:00-14:00"
sun = "closed"
holiday = "closed"
holidays = ["01-01", "2026-05-04"]

[hours."XX-A"]
every_day = "09:00-20:00"

[attempts."XX-A"]
max = 3
window_hours = 24
"""


def write_pack(folder: Path, text: str, name: str = "xx.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def variant(old: str, new: str) -> str:
    assert old in MINIMAL, old
    return MINIMAL.replace(old, new, 1)


# --- the shipped packs --------------------------------------------------------------------------

def test_every_shipped_pack_loads() -> None:
    book = PolicyBook.load()
    assert book.jurisdictions() == ["BG", "EU", "GB", "RU", "US"]
    assert {p.stem for p in BUILTIN_DIR.glob("*.toml")} == {"bg", "eu", "gb", "ru", "us"}
    for code in book.jurisdictions():
        found = book.get(code.lower())
        assert found is not None and found.jurisdiction == code and found.version


def test_shipped_packs_state_the_rules_the_issue_requires() -> None:
    book = PolicyBook.load()
    ru, us, gb, eu = (book.get(code) for code in ("RU", "US", "GB", "EU"))
    assert ru.advertising_bases == (LegalBasis.CONSENT,)
    assert ru.automatic_dialing == "forbidden"
    assert us.advertising_bases == (LegalBasis.CONSENT, LegalBasis.EXISTING_RELATIONSHIP)
    assert (us.ebr_after_purchase, us.ebr_after_inquiry) == (Period(months=18), Period(months=3))
    assert us.reassigned_numbers and not ru.reassigned_numbers
    assert us.proof_for("web_form") == ("form_text",)
    for pack in (ru, us, gb, eu):
        assert pack.proof_for("sms_double_opt_in") == ("verified_at",)
        assert pack.proof_for("email_double_opt_in") == ("verified_at",)
    assert ru.proof_for("web_form") == ("verified_at",)
    assert (ru.hours.calendar, gb.hours.calendar, book.get("BG").hours.calendar) == ("RU", "GB-ENG", "BG")
    assert (us.registries, us.registry_max_age_days) == (("us-dnc",), 31)
    assert us.hours.by_weekday == (Window(time(8), time(21)),) * 7
    for state in ("US-FL", "US-OK", "US-MD"):
        assert us.subdivision_hours[state].by_weekday == (Window(time(8), time(20)),) * 7
        assert us.subdivision_attempt_caps[state] == AttemptCap(3, timedelta(hours=24))
    assert us.subdivision_hours["US-TX"].by_weekday[6] == Window(time(12), time(21))
    assert (gb.registries, gb.registry_max_age_days, gb.registry_exempt_bases) == (
        ("gb-tps", "gb-ctps"), 28, (LegalBasis.CONSENT,))
    assert LegalBasis.LEGITIMATE_INTEREST in eu.advertising_bases


def test_bulgaria_inherits_the_eu_baseline_and_keeps_the_bulgarian_holiday_calendar() -> None:
    book = PolicyBook.load()
    eu, bg = book.get("EU"), book.get("BG")
    assert (bg.id, bg.jurisdiction) == ("bg", "BG")
    assert bg.advertising_bases == eu.advertising_bases
    assert bg.automatic_dialing == eu.automatic_dialing
    assert bg.hours.by_weekday == eu.hours.by_weekday
    assert bg.hours.is_holiday(date(2026, 3, 3))  # Liberation Day
    assert bg.hours.is_holiday(date(2026, 4, 13))  # Orthodox Easter Monday 2026
    assert not eu.hours.is_holiday(date(2026, 3, 3))


def test_every_shipped_pack_states_retention_periods_per_kind() -> None:
    book = PolicyBook.load()
    ru, us, gb, eu, bg = (book.get(code) for code in ("RU", "US", "GB", "EU", "BG"))
    assert (ru.retention.decisions_days, ru.retention.unverified_consents_days, ru.retention.journal_days) == (
        1095, 30, 1095)
    assert (us.retention.decisions_days, us.retention.consents_days, us.retention.journal_days) == (
        1825, 1825, 2190)
    assert gb.retention.complaints_days == 2190
    assert us.retention.unverified_consents_days is None  # the US pack requires no confirmation
    assert eu.retention.decisions_days == 1095 and bg.retention.decisions_days == 1825


def test_a_number_country_picks_its_pack_or_the_eu_baseline() -> None:
    book = PolicyBook.load()
    assert book.for_region("RU").id == "ru"
    assert book.for_region("BG").id == "bg"
    assert book.for_region("DE").id == "eu"
    assert book.for_region("JP") is None and book.for_region("") is None


def test_hours_for_an_unknown_state_are_every_table() -> None:
    us = PolicyBook.load().get("US")
    assert us.hours_for("US-FL") == [us.subdivision_hours["US-FL"]]
    assert us.hours_for("US-NY") == [us.hours]
    assert us.hours_for(None) == [us.hours, *us.subdivision_hours.values()]
    assert us.attempt_caps_for("US-NY") == []
    assert len(us.attempt_caps_for(None)) == 3


def test_every_section_of_a_shipped_pack_cites_its_source() -> None:
    """Each default is stated with its source in a comment, in or just above its section."""
    uncited = []
    for path in sorted(BUILTIN_DIR.glob("*.toml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for index, line in enumerate(lines):
            if not re.match(r"^\[[^\]]+\]\s*$", line) or line.strip() == "[pack]":
                continue
            before = lines[index - 1].startswith("#") if index else False
            body = []
            for following in lines[index + 1:]:
                if following.startswith("["):
                    break
                body.append(following)
            if not before and not any(b.lstrip().startswith("#") for b in body):
                uncited.append(f"{path.name}: {line.strip()}")
    assert uncited == []


# --- a valid local pack, overrides and extension ------------------------------------------------

def test_a_local_pack_is_loaded_with_every_field(tmp_path: Path) -> None:
    write_pack(tmp_path, MINIMAL)
    xx = PolicyBook.load(tmp_path).get("XX")
    assert xx is not None
    assert (xx.id, xx.version, xx.name) == ("xx", "1", "Test land")
    assert xx.proof_for("web_form") == ("verified_at",)
    assert xx.registries == ("xx-dnc",)
    assert xx.hours.by_weekday[5] == Window(time(10), time(14))
    assert xx.hours.by_weekday[6] is None
    assert xx.hours.window_for(date(2026, 5, 4)) == (None, "holiday")
    assert xx.hours.window_for(date(2027, 5, 4)) == (Window(time(8), time(21)), "tue")
    assert xx.subdivision_hours["XX-A"].holiday == Window(time(9), time(20))
    assert xx.subdivision_attempt_caps["XX-A"] == AttemptCap(3, timedelta(hours=24))
    assert xx.attempt_cap is None


def test_a_local_pack_replaces_the_shipped_pack_of_the_same_name(tmp_path: Path) -> None:
    us = (BUILTIN_DIR / "us.toml").read_text(encoding="utf-8").replace('version = "2026.11"', 'version = "local-7"')
    write_pack(tmp_path, us, "us.toml")
    assert PolicyBook.load(tmp_path).get("US").version == "local-7"
    assert PolicyBook.load().get("US").version != "local-7"


def test_a_local_pack_can_extend_a_shipped_one(tmp_path: Path) -> None:
    write_pack(tmp_path, '[pack]\nid = "de"\nextends = "eu"\nversion = "1"\njurisdiction = "DE"\n\n'
                         '[bases]\nadvertising = ["consent"]\n', "de.toml")
    book = PolicyBook.load(tmp_path)
    de, eu = book.get("DE"), book.get("EU")
    assert de.advertising_bases == (LegalBasis.CONSENT,)
    assert de.other_bases == eu.other_bases
    assert de.hours == eu.hours


def test_a_local_pack_can_extend_a_pack_that_itself_extends_another(tmp_path: Path) -> None:
    write_pack(tmp_path, '[pack]\nid = "bg-sofia"\nextends = "bg"\nversion = "1"\njurisdiction = "BG-22"\n',
               "bg-sofia.toml")
    sofia, bg = PolicyBook.load(tmp_path).get("BG-22"), PolicyBook.load().get("BG")
    assert sofia.advertising_bases == bg.advertising_bases
    assert sofia.hours == bg.hours


# --- malformed packs ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("[pack\nid = 'xx'\n", ["Expected ']'"], id="toml-syntax-error"),
        pytest.param(variant('[bases]\nadvertising = ["consent"]\nother = ["consent", "existing_relationship"]\n',
                             ""), ["missing 'bases'"], id="missing-bases-section"),
        pytest.param(variant('other = ["consent", "existing_relationship"]\n', ""), ["missing 'other'"],
                     id="missing-bases-other"),
        pytest.param(variant('id = "xx"\n', ""), ["missing 'id'"], id="missing-pack-id"),
        pytest.param(variant('advertising = ["consent"]', 'advertising = ["opt_out"]'),
                     ["bases.advertising", "opt_out"], id="unknown-legal-basis"),
        pytest.param(variant('exempt_bases = ["consent"]', 'exempt_bases = ["ebr"]'),
                     ["registries.exempt_bases", "ebr"], id="unknown-exempt-basis"),
        pytest.param(variant('advertising = "forbidden"', 'advertising = "sometimes"'),
                     ["automatic_dialing.advertising"], id="unknown-automatic-dialing-rule"),
        pytest.param(variant('mon = "08:00-21:00"', 'mon = "eight-nine"'), ["hours.mon", "'eight-nine'"],
                     id="window-that-is-not-a-time-range"),
        pytest.param(variant('tue = "08:00-21:00"', 'tue = "08:00"'), ["hours.tue", "'08:00'"],
                     id="window-without-an-end"),
        pytest.param(variant('wed = "08:00-21:00"', 'wed = "21:00-08:00"'), ["hours.wed", "ends before it starts"],
                     id="window-ending-before-it-starts"),
        pytest.param(variant('thu = "08:00-21:00"', 'thursday = "08:00-21:00"'), ["unknown keys ['thursday']"],
                     id="misspelled-weekday"),
        pytest.param(variant('sun = "closed"\n', ""), ["hours", "no window for sun"], id="weekday-left-out"),
        pytest.param(variant('"2026-05-04"]', '"2026-05-04", "13-45"]'), ["hours.holidays", "'13-45'"],
                     id="impossible-holiday-date"),
        pytest.param(variant('every_day = "09:00-20:00"', 'every_day = "9am-8pm"'),
                     ["hours.XX-A.every_day", "'9am-8pm'"], id="bad-subdivision-window"),
        pytest.param(variant("max = 3", "max = 0"), ["attempts.XX-A", "positive"], id="attempt-cap-of-zero"),
        pytest.param(variant("window_hours = 24\n", ""), ["attempts.XX-A", "window_hours"],
                     id="attempt-cap-without-window"),
        pytest.param(variant("max = 3", 'max = "three"'), ["attempts.XX-A", "max"], id="attempt-cap-not-a-number"),
        pytest.param(variant('id = "xx"\n', 'id = "xx"\nextends = "nowhere"\n'), ["extends unknown pack 'nowhere'"],
                     id="extends-an-unknown-pack"),
        pytest.param(variant("[retention]\n", "[kept]\n"), ["missing 'retention'"], id="missing-retention-section"),
        pytest.param(variant("outcomes_days = 365\n", ""), ["retention.outcomes_days", "missing"],
                     id="missing-retention-period"),
        pytest.param(variant("complaints_days = 1095", "complaints_days = 0"),
                     ["retention.complaints_days", "at least 1 day"], id="retention-of-zero-days"),
        pytest.param(variant("journal_days = 1095", 'journal_days = "3y"'), ["retention.journal_days", "'3y'"],
                     id="retention-not-a-number"),
        pytest.param(variant("unverified_consents_days = 30\n", ""), ["retention.unverified_consents_days"],
                     id="unverified-period-missing-where-confirmation-is-required"),
        pytest.param(variant("journal_days = 1095", "journal_days = 1095\nlogs_days = 9"),
                     ["retention", "unknown keys ['logs_days']"], id="unknown-retention-key"),
    ],
)
def test_malformed_pack_fails_with_an_error_naming_file_and_field(tmp_path: Path, text, fragments) -> None:
    path = write_pack(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        PolicyBook.load(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        pytest.param("max_age_days = 30", 'max_age_days = "thirty"', "registries.max_age_days",
                     id="registry-age-not-a-number"),
        pytest.param("after_purchase_days = 365", 'after_purchase_days = "a year"',
                     "existing_relationship.after_purchase_days", id="ebr-window-not-a-number"),
        pytest.param('required = ["xx-dnc"]', 'required = "xx-dnc"', "registries.required",
                     id="registry-list-written-as-a-string"),
        pytest.param('verification_required_for = ["web_form"]', 'verification_required_for = "web_form"',
                     "consent.verification_required_for", id="verification-list-written-as-a-string"),
        pytest.param('verification_required_for = ["web_form"]',
                     'verification_required_for = ["web_form"]\nproof = { paper = ["signature"] }',
                     "consent.proof.paper", id="proof-names-an-unknown-field"),
        pytest.param('verification_required_for = ["web_form"]',
                     'verification_required_for = ["web_form"]\nvoid_after_reassignment = "yes"',
                     "consent.void_after_reassignment", id="reassignment-flag-not-a-boolean"),
        pytest.param("after_purchase_days = 365", "after_purchase_days = 365\nafter_purchase_months = 12",
                     "after_purchase_months or after_purchase_days", id="ebr-window-in-months-and-days"),
        pytest.param('[hours]\n', '[hours]\ncalendar = "XQ"\n', "hours.calendar", id="unknown-holiday-calendar"),
    ],
)
def test_mistyped_scalar_or_list_fails_naming_the_field(tmp_path: Path, old, new, field) -> None:
    path = write_pack(tmp_path, variant(old, new))
    with pytest.raises(PolicyError) as caught:
        PolicyBook.load(tmp_path)
    assert str(caught.value).startswith(str(path))
    assert field in str(caught.value)


def test_a_missing_policy_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        PolicyBook.load(tmp_path / "nowhere")


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


def test_a_pack_names_its_holiday_calendar_and_keeps_its_own_dates(tmp_path: Path) -> None:
    write_pack(tmp_path, variant('holidays = ["01-01", "2026-05-04"]', 'calendar = "RU"\nholidays = ["08-15"]'))
    hours = PolicyBook.load(tmp_path).get("XX").hours
    assert hours.is_holiday(date(2026, 1, 9))  # decreed transfer of the 2026 production calendar
    assert hours.is_holiday(date(2026, 8, 15))  # the pack's own date
    assert not hours.is_holiday(date(2026, 1, 12))


def test_state_registries_apply_to_their_state_or_to_every_state_when_unknown(tmp_path: Path) -> None:
    write_pack(tmp_path, variant('exempt_bases = ["consent"]\n',
                                 'exempt_bases = ["consent"]\n[registries."XX-A"]\nrequired = ["xx-a-dnc"]\n'
                                 '[registries."XX-B"]\nrequired = ["xx-b-dnc"]\n'))
    xx = PolicyBook.load(tmp_path).get("XX")
    assert xx.registries_for("XX-A") == ("xx-dnc", "xx-a-dnc")
    assert xx.registries_for("XX-C") == ("xx-dnc",)
    assert xx.registries_for(None) == ("xx-dnc", "xx-a-dnc", "xx-b-dnc") == xx.all_registries()


# --- loading lazily (the classic AGI script) -----------------------------------------------------

def test_a_lazy_book_builds_the_same_packs_as_a_full_load() -> None:
    full, lazy = PolicyBook.load(), PolicyBook.load_lazily()
    assert lazy.jurisdictions() == full.jurisdictions()
    assert all(lazy.get(j) == full.get(j) for j in full.jurisdictions())
    assert lazy.packs() == full.packs()


def test_a_lazy_book_builds_and_checks_only_the_packs_asked_for(tmp_path: Path) -> None:
    write_pack(tmp_path, variant('advertising = "forbidden"', 'advertising = "sometimes"'))
    with pytest.raises(PolicyError, match="automatic_dialing"):
        PolicyBook.load(tmp_path)
    lazy = PolicyBook.load_lazily(tmp_path)
    assert lazy.get("RU") is not None and "XX" in lazy.jurisdictions()
    with pytest.raises(PolicyError, match="automatic_dialing"):
        lazy.get("XX")


def test_a_lazy_book_still_refuses_at_once_a_file_that_is_not_toml(tmp_path: Path) -> None:
    write_pack(tmp_path, "[pack\nid = 1")
    with pytest.raises(PolicyError, match=r"xx\.toml"):
        PolicyBook.load_lazily(tmp_path)


def test_a_lazy_book_lets_a_local_pack_replace_a_shipped_one_as_a_full_load_does(tmp_path: Path) -> None:
    write_pack(tmp_path, variant('jurisdiction = "xx"', 'jurisdiction = "ru"'), name="local-ru.toml")
    assert PolicyBook.load_lazily(tmp_path).get("RU") == PolicyBook.load(tmp_path).get("RU")
    assert PolicyBook.load_lazily(tmp_path).get("RU").id == "xx"


# --- the classic script's cache of parsed packs -------------------------------------------------

def test_a_cached_book_builds_the_same_packs_as_a_full_load(tmp_path: Path) -> None:
    overrides, cache = tmp_path / "packs", tmp_path / "cache"
    overrides.mkdir()
    write_pack(overrides, MINIMAL)
    first, second = PolicyBook.load_lazily(overrides, cache), PolicyBook.load_lazily(overrides, cache)
    assert (cache / "packs.json").is_file()
    assert first.packs() == second.packs() == PolicyBook.load(overrides).packs()


def test_a_cached_book_reads_its_packs_without_parsing_toml(tmp_path: Path) -> None:
    PolicyBook.load_lazily(None, tmp_path)
    probe = (f"from pathlib import Path; import sys; from callscreen.policy import PolicyBook; "
             f"book = PolicyBook.load_lazily(None, Path({str(tmp_path)!r})); "
             f"print(book.get('RU').id, 'tomllib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ru", "False"]


def test_a_changed_pack_file_is_parsed_again_despite_the_cache(tmp_path: Path) -> None:
    overrides, cache = tmp_path / "packs", tmp_path / "cache"
    overrides.mkdir()
    write_pack(overrides, MINIMAL)
    assert PolicyBook.load_lazily(overrides, cache).get("XX").hours.by_weekday[6] is None
    write_pack(overrides, variant('sun = "closed"', 'sun = "11:00-13:00"'))
    assert PolicyBook.load_lazily(overrides, cache).get("XX").hours.by_weekday[6] == Window(time(11), time(13))


def test_a_damaged_cache_is_ignored_and_written_anew(tmp_path: Path) -> None:
    PolicyBook.load_lazily(None, tmp_path)
    good = (tmp_path / "packs.json").read_text()
    for damage in ("not json", "[]", '{"key": 1}', good.replace('"packs": {', '"packs": {"zz": [1, 2], ', 1)):
        (tmp_path / "packs.json").write_text(damage)
        assert PolicyBook.load_lazily(None, tmp_path).packs() == PolicyBook.load().packs()
        assert (tmp_path / "packs.json").read_text() == good


def test_a_bad_pack_file_still_fails_with_a_cache_and_is_not_cached(tmp_path: Path) -> None:
    overrides, cache = tmp_path / "packs", tmp_path / "cache"
    overrides.mkdir()
    write_pack(overrides, "[pack\nid = 1")
    with pytest.raises(PolicyError, match=r"xx\.toml"):
        PolicyBook.load_lazily(overrides, cache)
    assert not (cache / "packs.json").exists()


def test_packs_that_json_would_not_give_back_are_not_cached(tmp_path: Path) -> None:
    overrides, cache = tmp_path / "packs", tmp_path / "cache"
    overrides.mkdir()
    write_pack(overrides, variant('[retention]', 'reviewed = 2026-05-01\n\n[retention]'))
    assert PolicyBook.load_lazily(overrides, cache).get("XX") == PolicyBook.load(overrides).get("XX")
    assert not (cache / "packs.json").exists()


def test_an_unwritable_cache_folder_changes_nothing_but_speed(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert PolicyBook.load_lazily(None, tmp_path / "file" / "cache").packs() == PolicyBook.load().packs()
