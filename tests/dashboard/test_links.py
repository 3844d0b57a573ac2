"""No dead link: as each role, in a real Chromium, follow every link on every page reachable from
the overview (the demo data, decisions of each kind, an invalid number, a complaint) and expect
every one to open."""

from __future__ import annotations

from urllib.parse import urldefrag, urlsplit

import pytest

from callscreen.demo import seed
from callscreen.numbers import normalize
from tests.dashboard.conftest import NUMBER, ROLES, calling_time
from tests.dashboard.test_browser import browser, live, log_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser
MAX_PAGES = 150
SKIP = ("/logout", "/static/")


@pytest.fixture
def populated(svc, redis_client, campaign, consent):
    seed(svc.store, redis_client)
    for number, campaign_id in ((NUMBER, "spring"), ("+79997654321", "spring"), ("12", "spring"),
                                ("+79995550101", "demo-spring-promo"), ("+442079460123", "demo-uk-broadband"),
                                ("+79991234567", "no-such-campaign")):
        svc.screener.screen(number, campaign_id, calling_time(), origin="agi")
    svc.complaints.file(normalize(NUMBER), calling_time(), "phone", filed_by="supervisor")


@pytest.mark.parametrize("role", ROLES)
def test_every_link_on_every_page_opens(browser, live, populated, role):  # noqa: F811
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        log_in(page, live, role)
        origin = urlsplit(live).netloc
        seen: set[str] = set()
        queue = [f"{live}/"]
        dead: list[str] = []
        links_from: dict[str, str] = {}
        while queue and len(seen) < MAX_PAGES:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            response = page.goto(url)
            status = response.status if response else 0
            if status >= 400:
                dead.append(f"{status} {url} (from {links_from.get(url, '?')})")
                continue
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                target = urldefrag(href)[0]
                parts = urlsplit(target)
                if parts.netloc != origin or any(parts.path.startswith(s) for s in SKIP) or target in seen:
                    continue
                links_from.setdefault(target, url)
                queue.append(target)
        assert not dead, dead
        assert len(seen) >= 10, seen  # the walk really went through the dashboard
        assert len(seen) < MAX_PAGES, "more pages than expected: is a link generating endless URLs?"
    finally:
        context.close()

