"""People read words, not codes: the pages of every role, with the demo data, in English and in Bahasa
Indonesia, show no state, trigger, event, field or focus area code and no bare member state code."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from scn_workflow import labels
from scn_workflow.app import create_app
from scn_workflow.domain import workflow
from scn_workflow.domain.model import Actor, Role
from scn_workflow.services import nominations, seed

CODES = {*(s for s in workflow.STATES if "_" in s), *(t for t in workflow.SPECS if "_" in t), *workflow.EVENTS,
         *(f for f in labels.FIELDS if "_" in f), *labels.FOCUS_AREAS, "drafted"}


class _Visible(HTMLParser):
    """The text a person reads (SVG labels included), and each table cell's text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text, self.cells, self.skip, self.cell = [], [], 0, None

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self.skip += 1
        if tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self.skip -= 1
        if tag in ("td", "th") and self.cell is not None:
            self.cells.append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if not self.skip:
            self.text.append(data)
            if self.cell is not None:
                self.cell.append(data)


def visible(html: str) -> tuple[str, list[str]]:
    parser = _Visible()
    parser.feed(html)
    return " ".join(parser.text), parser.cells


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from scn_workflow.db import migrate
    path = tmp_path_factory.mktemp("words")
    url = f"sqlite:///{path}/demo.sqlite3"
    migrate.upgrade(url)
    app = create_app({"database_url": url, "instance_path": str(path / "instance"), "embedded_autostart": False})
    app.config["TESTING"] = True
    services = app.extensions["scn"]
    seed.seed(services)
    submitter = Actor("submitter-id", Role.SUBMITTER, "ID")
    draft = nominations.create(services, submitter, {"city_name": "Makassar"})  # incomplete: refused in words
    yield app, draft
    services.engine.dispose()


def client(app, username: str | None, language: str):
    browser = app.test_client()
    if username:
        browser.get("/login")
        with browser.session_transaction() as session:
            token = session["csrf"]
        response = browser.post("/login", data={"username": username, "password": seed.DEMO_PASSWORD,
                                                "csrf_token": token})
        assert response.status_code == 302
    with browser.session_transaction() as session:
        token = session.get("csrf") or ""
    if not token:
        browser.get("/login")
        with browser.session_transaction() as session:
            token = session["csrf"]
    # The switcher sets the language (a signed-in user's own setting wins over Accept-Language).
    browser.post("/language", data={"lang": language, "next": "/", "csrf_token": token})
    return browser


def pages_of(browser, username: str | None, draft_id: int) -> list[str]:
    pages = ["/", "/workflow"]
    if username:
        listing = browser.get("/nominations").get_data(as_text=True)
        found = sorted(set(re.findall(r'href="(/nominations/\d+)"', listing)))[:6]
        pages += ["/nominations", *found]
    if username == "submitter-id":
        pages += ["/nominations/new", f"/nominations/{draft_id}", f"/nominations/{draft_id}/edit"]
    if username in ("reviewer", "admin", "operator"):
        pages.append("/review")
    if username in ("operator", "admin"):
        pages.append("/ops")
    if username == "admin":
        pages += ["/admin/users", "/admin/cycles", "/admin/member-states"]
    return pages


@pytest.mark.parametrize("language", ["en", "id"])
@pytest.mark.parametrize("username", [None, "submitter-id", "reviewer", "operator", "admin"])
def test_no_page_shows_a_code_as_text(demo, username, language):
    app, draft = demo
    browser = client(app, username, language)
    for url in pages_of(browser, username, draft.id):
        response = browser.get(url, headers={"Accept-Language": language})
        assert response.status_code == 200, url
        html = response.get_data(as_text=True)
        assert f'<html lang="{language}">' in html, url
        text, cells = visible(html)
        shown = {code for code in CODES if re.search(rf"(?<![\w.-]){re.escape(code)}(?![\w-])", text)}
        assert not shown, f"{url} ({language}) shows codes: {sorted(shown)}"
        bare = [cell for cell in cells if cell in labels.MEMBER_STATES]
        assert not bare, f"{url} ({language}) shows member state codes in cells: {bare}"


def test_a_refusal_names_the_fields_by_their_labels_linking_to_the_form(demo):
    app, draft = demo
    browser = client(app, "submitter-id", "id")
    page = browser.get(f"/nominations/{draft.id}").get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    refused = browser.post(f"/nominations/{draft.id}/fire", data={"trigger": "submit", "version": version,
                                                                  "csrf_token": token}, follow_redirects=True)
    html = refused.get_data(as_text=True)
    assert "Isian wajib belum diisi:" in html
    assert f'<a href="/nominations/{draft.id}/edit#csco_name">Nama Pejabat Utama Kota Cerdas</a>' in html
    assert "csco_name," not in visible(html)[0]


def test_indonesian_shows_and_the_switcher_keeps_the_page(demo):
    app, _draft = demo
    visitor = app.test_client()
    page = visitor.get("/workflow", headers={"Accept-Language": "id"}).get_data(as_text=True)
    assert '<html lang="id">' in page and "Alur kerja nominasi" in page and "Diserahterimakan" in page
    assert '<html lang="en">' in visitor.get("/workflow").get_data(as_text=True)

    user = app.test_client()
    user.get("/login")
    with user.session_transaction() as session:
        token = session["csrf"]
    user.post("/login", data={"username": "reviewer", "password": seed.DEMO_PASSWORD, "csrf_token": token})
    with user.session_transaction() as session:
        token = session["csrf"]  # a new session after signing in
    switched = user.post("/language", data={"lang": "id", "next": "/review?sort=newest", "csrf_token": token})
    assert switched.status_code == 303 and switched.headers["Location"].endswith("/review?sort=newest")
    # The signed-in user's own setting wins over the browser's Accept-Language afterwards.
    desk = user.get("/review", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="id">' in desk and "Meja peninjauan" in desk


def test_the_api_answers_in_the_language_asked(demo):
    app, _draft = demo
    api = app.test_client()
    english = api.get("/api/v1/nominations/999999", headers={"Accept-Language": "en"})
    indonesian = api.get("/api/v1/nominations/999999", headers={"Accept-Language": "id"})
    assert english.status_code == indonesian.status_code
    assert english.json["type"] == indonesian.json["type"]  # codes and types stay English
    assert english.json["title"] != indonesian.json["title"]
