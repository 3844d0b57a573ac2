from __future__ import annotations

from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.dashboard.conftest import login, post_form

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"
CATALOG = DASHBOARD / "translations" / "ru" / "LC_MESSAGES"


def test_browser_language_picks_russian(app, users):
    client = app.test_client()
    html = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert "Войти" in html and '<html lang="ru">' in html
    assert "Log in" in client.get("/login", headers={"Accept-Language": "de, en;q=0.5"}).get_data(as_text=True)


def test_switching_language_is_saved_with_the_account(app, users, svc):
    client = app.test_client()
    login(client, "supervisor")
    post_form(client, "/", "/language", {"locale": "ru", "next": "/blocked"})
    assert svc.users.get("supervisor").locale == "ru"
    other_browser = app.test_client()
    login(other_browser, "supervisor")
    html = other_browser.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Обзор" in html and "решений сегодня" in html


def test_unknown_language_is_refused(app, users):
    client = app.test_client()
    login(client, "supervisor")
    assert post_form(client, "/", "/language", {"locale": "xx"}).status_code == 400


def test_every_interface_string_has_a_russian_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    CommandLineInterface().run(["pybabel", "-q", "extract", "-F", str(DASHBOARD / "babel.cfg"), "-k", "_l",
                                "-k", "lazy_gettext", "-o", str(pot), str(DASHBOARD)])
    with pot.open("rb") as handle:
        wanted = {m.id for m in read_po(handle) if m.id}
    with (CATALOG / "messages.po").open("rb") as handle:
        russian = {m.id: m.string for m in read_po(handle) if m.id}
    missing = sorted(m for m in wanted if not russian.get(m))
    assert not missing, f"untranslated: {missing[:10]}"


def test_compiled_catalog_matches_the_po_file():
    with (CATALOG / "messages.po").open("rb") as handle:
        source = {m.id: m.string for m in read_po(handle) if m.id}
    with (CATALOG / "messages.mo").open("rb") as handle:
        compiled = {m.id: m.string for m in read_mo(handle) if m.id}
    assert compiled == source, "run: pybabel compile -d dashboard/translations"


def test_form_errors_are_shown_in_russian(app, users, campaign):
    client = app.test_client()
    login(client, "supervisor")
    post_form(client, "/", "/language", {"locale": "ru"})
    response = post_form(client, "/complaints/new", "/complaints/new",
                         {"number": "12", "call_at": "", "caller_name": "a\nb", "channel": "phone"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "неверный номер телефона" in html
    assert "обязательно" in html
    assert "содержит управляющие символы" in html
