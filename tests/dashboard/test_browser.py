"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven by Playwright).

Screenshots of each step go to the test's temporary folder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from werkzeug.serving import make_server

from tests.dashboard.conftest import NUMBER, PASSWORD, calling_time

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def live(app, users) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def page(browser, live):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


def log_in(page, live: str, name: str) -> None:
    page.goto(f"{live}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#today-decisions")


def test_supervisor_files_a_complaint_and_the_number_is_blocked_at_once(page, live, svc, campaign, consent,
                                                                          tmp_path):
    call = calling_time(1)
    svc.screener.screen(NUMBER, "spring", call, origin="test")
    log_in(page, live, "supervisor")
    page.screenshot(path=str(tmp_path / "01-overview.png"), full_page=True)
    page.click("text=Complaints")
    page.click("#new-complaint")
    page.fill("input[name=number]", "8 999 123-45-67")
    page.fill("input[name=call_at]", call.astimezone(ZoneInfo("Europe/Moscow")).strftime("%Y-%m-%dT%H:%M"))
    page.fill("input[name=caller_name]", "Anna from the clinic")
    page.fill("textarea[name=said]", "Offered a discount on check-ups")
    page.select_option("select[name=channel]", "phone")
    page.screenshot(path=str(tmp_path / "02-intake.png"), full_page=True)
    page.click("#complaint-form button[type=submit]")
    page.wait_for_selector("#suppression")
    assert "suppressed for every campaign" in page.inner_text("#suppression")
    assert page.inner_text("#complaint-number") == "+7 999 ***-**-67"
    assert "I agree to calls about clinic offers." in page.inner_text("#provenance")
    page.screenshot(path=str(tmp_path / "03-complaint.png"), full_page=True)
    decision = svc.screener.screen(NUMBER, "spring", calling_time(), origin="test")
    assert decision.reason.value == "complaint_suppressed"
    assert NUMBER not in page.content()


def test_supervisor_filters_blocked_attempts(page, live, svc, campaign, tmp_path):
    svc.screener.screen("+79997654321", "spring", calling_time(), origin="test")  # no basis
    svc.screener.screen("12", "spring", calling_time(), origin="test")  # invalid number
    log_in(page, live, "supervisor")
    page.click("text=Blocked attempts")
    assert page.locator("#blocked-results tbody tr").count() == 2
    page.select_option("select[name=reason]", "invalid_number")
    page.click("#blocked-filter button[type=submit]")
    page.wait_for_url("**reason=invalid_number**")
    rows = page.locator("#blocked-results tbody tr")
    assert rows.count() == 1 and "invalid number" in rows.inner_text()
    page.select_option("select[name=reason]", "no_basis")
    page.select_option("select[name=campaign]", "spring")
    page.click("#blocked-filter button[type=submit]")
    page.wait_for_url("**reason=no_basis**")
    assert "+7 999 ***-**-21" in page.inner_text("#blocked-results")
    page.screenshot(path=str(tmp_path / "04-blocked.png"), full_page=True)


def test_switching_to_russian(page, live, svc, tmp_path):
    log_in(page, live, "supervisor")
    page.click("#lang-ru")
    page.wait_for_selector("text=Обзор")
    assert page.inner_text("h1") == "Обзор"
    assert "Жалобы" in page.inner_text("header")
    page.screenshot(path=str(tmp_path / "05-russian.png"), full_page=True)
    assert svc.users.get("supervisor").locale == "ru"
    page.click("#lang-en")
    page.wait_for_selector("h1:text('Overview')")


def test_compliance_reveals_a_number_with_a_reason(page, live, svc, consent, tmp_path):
    log_in(page, live, "compliance")
    page.click("text=Number lookup")
    page.fill("input[name=number]", NUMBER)
    page.click("button[type=submit].primary")
    page.wait_for_selector("#reveal-form")
    assert page.inner_text("#shown-number") == "+7 999 ***-**-67"
    page.fill("#reveal-form input[name=reason]", "complainant asked which number we hold")
    page.click("#reveal-form button")
    page.wait_for_selector("text=Full number shown once")
    assert page.inner_text("#shown-number") == NUMBER
    assert svc.journal.recent(1)[0].reason == "complainant asked which number we hold"
    page.screenshot(path=str(tmp_path / "06-reveal.png"), full_page=True)
