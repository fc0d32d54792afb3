"""The HTML pages through Flask's test client, on a real database: every page, every refusal.

Each person is a separate test client that signs in through the form and posts forms with the
CSRF token of its own session, as a browser would. The state a page needs is set up through the
use cases (the same ones the pages call); what a page does is checked in the database.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pytest
import sqlalchemy as sa
from flask.testing import EnvironBuilder

from scn_workflow import labels
from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.domain.model import SYSTEM
from scn_workflow.services import attachments, checks, nominations
from scn_workflow.web import ui
from tests.conftest import ASSESSMENT, PASSWORD, Clock, World, build_world, complete_draft

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HOSTILE = '<script>alert("x")</script>'


# --- the site and its visitors --------------------------------------------------------------------------


class Visitor:
    """One person's browser: a test client with its own session cookie."""

    def __init__(self, app):
        self.client = app.test_client()

    def sign_in(self, username: str, password: str = PASSWORD) -> "Visitor":
        form = self.client.get("/login")
        response = self.client.post("/login", data={"username": username, "password": password,
                                                    "csrf_token": token_in(form)})
        assert response.status_code == 302, text(response)
        return self

    @property
    def token(self) -> str:
        """The CSRF token of this session (a first page gives the session one)."""
        with self.client.session_transaction() as session:
            if "csrf" in session:
                return session["csrf"]
        return token_in(self.client.get("/login"))

    def get(self, url: str, **kwargs):
        return self.client.get(url, **kwargs)

    def post(self, url: str, data: dict | None = None, *, csrf: bool = True, follow_redirects: bool = False, **kwargs):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.token)
        # The test client spools a large body to a temporary file and never closes it: build the
        # request here, and close its body once answered.
        builder = EnvironBuilder(self.client.application, url, method="POST", data=data, **kwargs)
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        try:
            return self.client.open(environ, follow_redirects=follow_redirects)
        finally:
            environ["wsgi.input"].close()


@dataclass
class Site:
    app: object
    svc: object
    world: World
    clock: Clock

    def visitor(self, username: str | None = None) -> Visitor:
        visitor = Visitor(self.app)
        return visitor.sign_in(username) if username else visitor

    def draft(self, city: str = "Banyuwangi", actor=None, **overrides):
        return nominations.create(self.svc, actor or self.world.submitter_id, complete_draft(city, **overrides))

    def submitted(self, city: str = "Banyuwangi", actor=None, *, run_checks: bool = True, **overrides):
        actor = actor or self.world.submitter_id
        n = self.draft(city, actor, **overrides)
        n = nominations.fire(self.svc, actor, n.id, "submit", n.version)
        if run_checks:
            checks.run_checks(self.svc, self.last_event(n.id, "nomination.submitted"))
        return nominations.get(self.svc, SYSTEM, n.id)

    def reviewed(self, city: str = "Banyuwangi", actor=None, reviewer=None):
        n = self.submitted(city, actor)
        return nominations.fire(self.svc, reviewer or self.world.reviewer_sg, n.id, "review", n.version,
                                assessment=ASSESSMENT)

    def accepted(self, city: str = "Banyuwangi"):
        n = self.reviewed(city)
        return nominations.fire(self.svc, self.world.reviewer_ph, n.id, "accept", n.version)

    def get(self, nomination_id: int):
        return nominations.get(self.svc, SYSTEM, nomination_id)

    def last_event(self, nomination_id: int, name: str) -> str:
        with self.svc.engine.connect() as c:
            return c.scalar(sa.select(t.events.c.event_id).where(
                t.events.c.nomination_id == nomination_id, t.events.c.name == name).order_by(t.events.c.seq.desc()))

    def count(self, table, *where) -> int:
        with self.svc.engine.connect() as c:
            return c.scalar(sa.select(sa.func.count()).select_from(table).where(*where))


def _site(url: str, tmp_path, clock) -> Site:
    # No background worker: checks are run by the test, when it wants them finished.
    app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "embedded_autostart": False})
    app.config["TESTING"] = True
    services = app.extensions["scn"]
    services.clock = clock  # inside the test cycle (2026), whatever today's date
    return Site(app, services, build_world(services), clock)


@pytest.fixture
def site(sqlite_url, tmp_path, clock):
    s = _site(sqlite_url, tmp_path, clock)
    yield s
    s.svc.engine.dispose()


@pytest.fixture
def any_db_site(db_url, tmp_path, clock):
    """The site on SQLite and on PostgreSQL."""
    s = _site(db_url, tmp_path, clock)
    yield s
    s.svc.engine.dispose()


# --- reading pages --------------------------------------------------------------------------------------


def text(response) -> str:
    return response.get_data(as_text=True)


def token_in(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', text(response)).group(1)


def flashes(response) -> list[str]:
    return re.findall(r'<p class="flash[^"]*" role="[a-z]+">(.*?)</p>', text(response), re.S)


def errors_on(response) -> dict[str, str]:
    """The field errors of a form page: {error id: message}."""
    return dict(re.findall(r'<p class="field-error" id="([^"]+)-error">(.*?)</p>', text(response), re.S))


def field_value(response, name: str) -> str | None:
    m = re.search(rf'<input [^>]*name="{re.escape(name)}" value="([^"]*)"', text(response))
    if m is None:
        m = re.search(rf'<textarea [^>]*name="{re.escape(name)}"[^>]*>(.*?)</textarea>', text(response), re.S)
    return m.group(1) if m else None


def buttons(response) -> list[str]:
    """The page's buttons, without the language switcher's."""
    return [label.strip() for attributes, label in re.findall(r"<button ([^>]*)>(.*?)</button>", text(response), re.S)
            if 'name="lang"' not in attributes]


def state_of(response) -> str:
    """The nomination's state code (the page shows it in words; data-state keeps the code)."""
    return re.search(r'id="state" data-state="(\w+)"', text(response)).group(1)


class _Controls(HTMLParser):
    """Every form control that a person fills in, and every label."""

    def __init__(self):
        super().__init__()
        self.controls, self.labelled_for, self.open_labels, self.wrapped = [], set(), 0, set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "label":
            self.open_labels += 1
            if a.get("for"):
                self.labelled_for.add(a["for"])
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.controls.append(a.get("id") or a.get("name"))
            if self.open_labels:
                self.wrapped.add(self.controls[-1])

    def handle_endtag(self, tag):
        if tag == "label":
            self.open_labels -= 1


def unlabelled(response) -> list[str]:
    parser = _Controls()
    parser.feed(text(response))
    return [c for c in parser.controls if c not in parser.labelled_for and c not in parser.wrapped]


def assert_plain_page(response) -> None:
    """A page as the issue wants it: HTML, every input labelled, nothing loaded from another host, no script."""
    assert response.mimetype == "text/html"
    body = text(response)
    assert unlabelled(response) == []
    assert not re.search(r'(?:src|href|action)="(?:https?:)?//', body), "an asset or link to another host"
    assert "<script" not in body
    assert 'href="#main"' in body and 'id="main"' in body  # skip link for keyboard users
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def nomination_form(**overrides) -> dict:
    """The nomination form as a person fills it in: two projects, every required field."""
    data = {"city_name": "Banyuwangi", "region": "East Java", "population": "1,708,000",
            "csco_name": "Test Officer", "csco_email": "csco@banyuwangi.example", "vision": "A test vision.",
            "focus_areas": ["civic_social", "quality_environment"],
            "project-0-title": "Village e-services", "project-0-focus_area": "civic_social",
            "project-0-description": "Services in every village.", "project-0-priority": "on",
            "project-1-title": "Clean rivers", "project-1-focus_area": "quality_environment",
            "project-1-description": "", "action": "save"}
    data.update(overrides)
    return data


# --- signing in -----------------------------------------------------------------------------------------


def test_sign_in_with_a_user_of_the_database(site):
    visitor = site.visitor()
    form = visitor.get("/login")
    assert form.status_code == 200
    assert_plain_page(form)

    wrong = visitor.post("/login", {"username": "sub-id", "password": "wrong password",
                                    "csrf_token": token_in(form)})
    assert wrong.status_code == 401
    assert "The username or password is wrong." in text(wrong)
    assert field_value(wrong, "username") == "sub-id"  # what was typed stays (but never the password)
    assert "wrong password" not in text(wrong)
    unknown = visitor.post("/login", {"username": "nobody", "password": PASSWORD})
    assert unknown.status_code == 401 and "The username or password is wrong." in text(unknown)

    signed_in = visitor.post("/login", {"username": "sub-id", "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/home"
    home = visitor.get("/home", follow_redirects=True)
    assert home.request.path == "/nominations"
    assert "Signed in as sub-id." in flashes(home)
    assert "Sign out sub-id" in buttons(home)

    # reviewers land on the review desk
    assert site.visitor("rev-sg").get("/home").headers["Location"] == "/review"


def test_passwords_are_stored_hashed(site):
    admin = site.visitor("root")
    response = admin.post("/admin/users", {"username": "sub-vn", "password": "a long secret", "email": "s@vn.example",
                                           "role": "submitter", "member_state": "VN"})
    assert response.status_code == 302
    with site.svc.engine.connect() as c:
        stored = c.scalar(sa.select(t.users.c.password_hash).where(t.users.c.username == "sub-vn"))
    assert "a long secret" not in stored and stored.split(":")[0] in ("scrypt", "pbkdf2")
    assert site.visitor().sign_in("sub-vn", "a long secret")


def test_session_cookie_flags(site, tmp_path):
    response = site.visitor().get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # development serves plain http on loopback

    production = create_app({"env": "production", "secret_key": "s" * 32, "base_url": "https://ascn.example",
                             "instance_path": str(tmp_path / "prod"),
                             "database_url": "postgresql://postgres@127.0.0.1:1/unused",
                             "broker_url": "redis://127.0.0.1:1/0"})
    try:
        cookie = production.test_client().get("/login").headers["Set-Cookie"]
    finally:
        production.extensions["scn"].engine.dispose()
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_sign_in_is_rate_limited(site):
    visitor = site.visitor()
    for _ in range(5):
        assert visitor.post("/login", {"username": "sub-id", "password": "guess"}).status_code == 401
    blocked = visitor.post("/login", {"username": "sub-id", "password": PASSWORD})
    assert blocked.status_code == 429
    wait = int(blocked.headers["Retry-After"])
    assert 0 < wait <= 15 * 60
    assert f"Too many failed sign-ins; try again in {wait} seconds." in text(blocked)
    # another user is not blocked by someone guessing sub-id's password
    assert visitor.post("/login", {"username": "sub-th", "password": PASSWORD}).status_code == 302


def test_each_app_counts_its_own_sign_in_attempts(site, sqlite_url, tmp_path, clock):
    visitor = site.visitor()
    for _ in range(10):
        visitor.post("/login", {"username": "rev-sg", "password": "guess"})
    other = create_app({"database_url": sqlite_url, "instance_path": str(tmp_path / "other"),
                        "embedded_autostart": False})
    try:
        assert Visitor(other).sign_in("rev-sg")
    finally:
        other.extensions["scn"].engine.dispose()


@pytest.mark.parametrize("target, lands", [
    ("/nominations?state=drafted", "/nominations?state=drafted"),
    ("//evil.example/", "/home"),
    ("/\\evil.example/", "/home"),
    ("/\t/evil.example/", "/home"),
    ("https://evil.example/", "/home"),
])
def test_after_sign_in_only_a_path_of_this_site(site, target, lands):
    visitor = site.visitor()
    form = visitor.get("/login")
    response = visitor.client.post("/login", query_string={"next": target},
                                   data={"username": "sub-id", "password": PASSWORD, "csrf_token": token_in(form)})
    assert response.status_code == 302
    assert response.headers["Location"] == lands


def test_pages_send_strangers_to_the_sign_in_page(site):
    visitor = site.visitor()
    for path in ("/nominations", "/nominations/new", "/review", "/admin/users", "/admin/cycles",
                 "/admin/member-states", "/nominations/1", "/nominations/1/edit", "/nominations/1/review",
                 "/nominations/1/attachments/1", "/home"):
        response = visitor.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login?next=" + path), path


def test_sign_out_needs_the_token_and_ends_the_session(site):
    visitor = site.visitor("sub-id")
    assert visitor.post("/logout", csrf=False).status_code == 400
    assert visitor.get("/nominations").status_code == 200
    out = visitor.post("/logout", follow_redirects=True)
    assert "Signed out." in flashes(out)
    assert visitor.get("/nominations").status_code == 302


def test_a_deactivated_user_is_signed_out_at_once(site):
    visitor = site.visitor("sub-id")
    with site.svc.engine.begin() as c:
        c.execute(sa.update(t.users).where(t.users.c.username == "sub-id").values(active=False))
    assert visitor.get("/nominations").status_code == 302


# --- CSRF on every form ---------------------------------------------------------------------------------


def test_every_form_refuses_a_post_without_the_sessions_token(site):
    n = site.draft()
    sub, rev, admin = site.visitor("sub-id"), site.visitor("rev-sg"), site.visitor("root")
    posts = [
        (sub, "/nominations/new", nomination_form(cycle="ASCN-2026")),
        (sub, f"/nominations/{n.id}/edit", nomination_form(version=str(n.version))),
        (sub, f"/nominations/{n.id}/fire", {"trigger": "withdraw", "version": str(n.version)}),
        (sub, f"/nominations/{n.id}/attachments", {"kind": "action_plan", "version": str(n.version)}),
        (rev, f"/nominations/{n.id}/review", {"recommendation": "accept", "summary": "x"}),
        (admin, "/admin/users", {"username": "mallory", "password": "password123", "email": "m@x.example",
                                 "role": "admin"}),
        (admin, "/admin/cycles", {"code": "ASCN-2099", "name": "x", "opens_at": "2099-01-01",
                                  "closes_at": "2100-01-01", "limit_per_state": "3"}),
        (admin, "/admin/cycles/ASCN-2026/overrides", {"member_state": "ID", "limit": "9", "reason": "no reason"}),
        (admin, "/admin/member-states", {"code": "ID", "lead_agency_email": "evil@x.example"}),
        (sub, "/logout", {}),
        (site.visitor(), "/login", {"username": "sub-id", "password": PASSWORD}),
    ]
    for visitor, url, data in posts:
        for token in (None, "forged-token"):
            sent = dict(data) if token is None else {**data, "csrf_token": token}
            response = visitor.post(url, sent, csrf=False)
            assert response.status_code == 400, url
            assert "missing CSRF token" in text(response), url
            assert response.mimetype == "text/html"
    # and nothing happened
    assert site.get(n.id).version == n.version and site.get(n.id).state == "drafted"
    assert site.count(t.nominations) == 1
    assert site.count(t.users, t.users.c.username == "mallory") == 0
    assert site.count(t.cycles, t.cycles.c.code == "ASCN-2099") == 0
    assert site.count(t.limit_overrides) == 0
    assert site.count(t.attachments) == 0
    with site.svc.engine.connect() as c:
        assert c.scalar(sa.select(t.member_states.c.lead_agency_email).where(t.member_states.c.code == "ID")) \
            == "lead@id.example"
    assert sub.get("/nominations").status_code == 200  # still signed in


def test_a_token_of_another_session_is_refused(site):
    sub, other = site.visitor("sub-id"), site.visitor("sub-id2")
    response = sub.post("/nominations/new", nomination_form(csrf_token=other.token))
    assert response.status_code == 400
    assert site.count(t.nominations) == 0


# --- who may see what: 403 and 404 pages ----------------------------------------------------------------


def test_a_page_for_another_role_is_a_403_page(site):
    n = site.submitted()
    refused = [
        ("sub-id", "/review"), ("sub-id", "/admin/users"), ("sub-id", "/admin/cycles"),
        ("sub-id", "/admin/member-states"), ("sub-id", f"/nominations/{n.id}/review"),
        ("rev-sg", "/nominations/new"), ("rev-sg", f"/nominations/{n.id}/edit"), ("rev-sg", "/admin/users"),
        ("ops", "/nominations/new"), ("ops", "/admin/cycles"), ("ops", f"/nominations/{n.id}/review"),
        ("root", "/nominations/new"), ("root", f"/nominations/{n.id}/review"),
    ]
    for username, url in refused:
        response = site.visitor(username).get(url)
        assert response.status_code == 403, (username, url)
        page = text(response)
        assert "403 · Forbidden" in page
        assert f"You are signed in as {username}; this page or action is not for your role" in page
        assert_plain_page(response)
    # a post is refused as well, and changes nothing
    rev = site.visitor("rev-sg")
    assert rev.post(f"/nominations/{n.id}/attachments", {"kind": "action_plan"},
                    content_type="multipart/form-data").status_code == 403
    assert rev.post("/nominations/new", nomination_form()).status_code == 403
    assert site.count(t.nominations) == 1


def test_a_nomination_of_another_member_state_is_a_404_page(site):
    n = site.draft()
    site.svc.clock.advance(seconds=1)
    attachment = attachments.add(site.svc, site.world.submitter_id, n.id, "action_plan", "plan.pdf", PDF)
    th = site.visitor("sub-th")
    for url in (f"/nominations/{n.id}", f"/nominations/{n.id}/edit",
                f"/nominations/{n.id}/attachments/{attachment['id']}"):
        response = th.get(url)
        assert response.status_code == 404, url
        assert response.mimetype == "text/html", url  # a page, not problem+json
        assert "404 · Not Found" in text(response)
        assert f"No nomination {n.id} that you may see." in text(response)
    # firing or uploading on it is refused in words and changes nothing
    fired = th.post(f"/nominations/{n.id}/fire", {"trigger": "withdraw", "version": str(site.get(n.id).version)},
                    follow_redirects=True)
    assert fired.status_code == 404 and f"No nomination {n.id} that you may see." in text(fired)
    edited = th.post(f"/nominations/{n.id}/edit", nomination_form(version=str(site.get(n.id).version)))
    assert edited.status_code == 404
    uploaded = th.post(f"/nominations/{n.id}/attachments", {"kind": "action_plan", "file": (_file(PDF), "x.pdf")},
                       content_type="multipart/form-data", follow_redirects=True)
    assert uploaded.status_code == 404
    assert site.get(n.id).state == "drafted" and site.count(t.attachments) == 1
    # a reviewer sees nothing of a nomination never submitted
    assert site.visitor("rev-sg").get(f"/nominations/{n.id}").status_code == 404
    # nor does anyone see a nomination that does not exist, or an id too large to be one
    for url in ("/nominations/999", "/nominations/99999999999", "/no/such/page"):
        response = site.visitor("root").get(url)
        assert response.status_code == 404 and response.mimetype == "text/html", url


def _file(content: bytes):
    import io
    return io.BytesIO(content)


# --- the nominations list and the member state's limits ------------------------------------------------


def test_a_submitter_sees_its_member_states_nominations_and_limit_usage(site):
    mine = site.submitted("Banyuwangi")
    draft = site.draft("Makassar", site.world.submitter_id2)
    theirs = site.draft("Phuket", site.world.submitter_th)
    site.svc.clock.advance(seconds=1)
    site.visitor("root").post("/admin/cycles/ASCN-2026/overrides",
                              {"member_state": "ID", "limit": "4", "reason": "Four pilot cities agreed in June"})
    response = site.visitor("sub-id").get("/nominations")
    assert response.status_code == 200
    assert_plain_page(response)
    page = text(response)
    assert mine.reference in page and draft.reference in page and "Makassar" in page
    assert theirs.reference not in page and "Phuket" not in page
    assert "2 nominations." in page
    assert "Limits of Indonesia" in page
    assert "1 of 4 used" in page  # drafts do not count; the override does
    assert "(override: Four pilot cities agreed in June)" in page
    assert 'id="f-ms"' not in page  # no member-state filter for a submitter: there is only one

    filtered = site.visitor("sub-id").get("/nominations?state=drafted")
    assert draft.reference in text(filtered) and mine.reference not in text(filtered)
    # a member_state in the address does not widen what a submitter sees
    assert "Phuket" not in text(site.visitor("sub-id").get("/nominations?member_state=TH"))


def test_a_reviewer_sees_only_submitted_nominations_in_the_list(site):
    submitted = site.submitted("Banyuwangi")
    draft = site.draft("Makassar")
    page = text(site.visitor("rev-sg").get("/nominations"))
    assert submitted.reference in page and draft.reference not in page
    assert "Limits of" not in page
    admin_page = text(site.visitor("root").get("/nominations?q=makassar"))
    assert draft.reference in admin_page and submitted.reference not in admin_page


# --- the nomination form --------------------------------------------------------------------------------


def test_the_new_nomination_form(site):
    response = site.visitor("sub-id").get("/nominations/new")
    assert response.status_code == 200
    assert_plain_page(response)
    page = text(response)
    for label in ("City", "Province or region", "Population", "Chief Smart City Officer", "Vision statement",
                  "Focus areas", "Projects of the Smart City Action Plan", "Project 1"):
        assert label in page
    assert 'value="ASCN-2026" selected' in page
    assert set(buttons(response)) >= {"Save draft", "Add a project", "Remove project 1"}


def test_a_draft_is_saved_with_only_a_city(site):
    sub = site.visitor("sub-id")
    blank = {k: "" for k in ("region", "population", "csco_name", "csco_email", "vision", "project-0-title",
                             "project-0-focus_area", "project-0-description")}
    response = sub.post("/nominations/new", {"cycle": "ASCN-2026", "city_name": "Banyuwangi", **blank,
                                             "action": "save"})
    assert response.status_code == 302
    n = nominations.search(site.svc, site.world.submitter_id).items[0]
    assert (n.city_name, n.state, n.projects, n.reference) == ("Banyuwangi", "drafted", [], "ASCN-2026-ID-001")
    page = sub.get(response.headers["Location"])
    assert f"Draft {n.reference} saved." in flashes(page)


def test_validation_errors_sit_next_to_each_field_and_everything_typed_stays(site):
    sub = site.visitor("sub-id")
    typed = nomination_form(city_name="  ", population="lots", csco_email="not an email", vision="Kept vision",
                            **{"project-1-focus_area": ""})
    response = sub.post("/nominations/new", {"cycle": "ASCN-2026", **typed})
    assert response.status_code == 422
    page = text(response)
    assert "Please correct the fields marked below; nothing was saved yet." in page
    errors = errors_on(response)
    assert set(errors) == {"city_name", "population", "csco_email", "project-1-focus_area"}
    assert errors["csco_email"] == "Must be an email address, such as name@example.org."
    assert errors["population"] == "Must be a whole number."
    assert errors["city_name"] == "Enter the name of the city."
    assert errors["project-1-focus_area"] == "Choose the focus area of this project."
    # every value is kept as typed
    assert field_value(response, "population") == "lots"
    assert field_value(response, "csco_email") == "not an email"
    assert field_value(response, "region") == "East Java"
    assert field_value(response, "vision") == "Kept vision"
    assert field_value(response, "project-0-title") == "Village e-services"
    assert field_value(response, "project-0-description") == "Services in every village."
    assert field_value(response, "project-1-title") == "Clean rivers"
    assert re.search(r'name="focus_areas" value="civic_social" checked', page)
    assert re.search(r'name="project-0-priority" checked', page)
    assert re.search(r'<option value="civic_social" selected>', page)
    assert unlabelled(response) == []
    assert site.count(t.nominations) == 0

    fixed = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form()})
    assert fixed.status_code == 302
    n = nominations.search(site.svc, site.world.submitter_id).items[0]
    assert n.population == 1_708_000 and [p.title for p in n.projects] == ["Village e-services", "Clean rivers"]
    assert n.projects[0].priority and not n.projects[1].priority


def test_a_project_error_is_shown_at_its_own_project_even_after_a_blank_one(site):
    response = site.visitor("sub-id").post("/nominations/new", nomination_form(**{
        "project-0-title": "", "project-0-focus_area": "", "project-0-description": "",
        "project-1-title": "Clean rivers", "project-1-focus_area": ""}))
    assert response.status_code == 422
    assert set(errors_on(response)) == {"project-1-focus_area"}


def test_projects_are_added_and_removed_in_the_form_without_saving(site):
    sub = site.visitor("sub-id")
    added = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form(action="add_project")})
    assert added.status_code == 200
    assert "Remove project 3" in buttons(added)
    assert field_value(added, "project-2-title") == ""
    assert field_value(added, "project-1-title") == "Clean rivers"
    assert site.count(t.nominations) == 0

    removed = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form(action="remove_project:0")})
    assert removed.status_code == 200
    assert "Remove project 2" not in buttons(removed)
    assert field_value(removed, "project-0-title") == "Clean rivers"  # the second moved up
    assert field_value(removed, "city_name") == "Banyuwangi"
    assert site.count(t.nominations) == 0

    nonsense = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form(action="remove_project:x9")})
    assert nonsense.status_code == 200 and "Remove project 2" in buttons(nonsense)


def test_editing_a_draft(site):
    n = site.draft(region="East Java")
    sub = site.visitor("sub-id2")  # any submitter of the member state
    form = sub.get(f"/nominations/{n.id}/edit")
    assert form.status_code == 200
    assert_plain_page(form)
    assert f'name="version" value="{n.version}"' in text(form)
    assert field_value(form, "city_name") == "Banyuwangi" and field_value(form, "region") == "East Java"
    assert field_value(form, "project-1-title") == "Clean rivers"

    data = nomination_form(version=str(n.version), vision="A better vision.", population="")
    saved = sub.post(f"/nominations/{n.id}/edit", data)
    assert saved.status_code == 302 and saved.headers["Location"] == f"/nominations/{n.id}"
    assert "Draft saved." in flashes(sub.get(saved.headers["Location"]))
    current = site.get(n.id)
    assert current.vision == "A better vision." and current.version == n.version + 1

    again = sub.post(f"/nominations/{n.id}/edit", nomination_form(version=str(current.version),
                                                                   vision="A better vision.", population=""))
    assert "Nothing changed." in flashes(sub.get(again.headers["Location"]))
    assert site.get(n.id).version == current.version

    invalid = sub.post(f"/nominations/{n.id}/edit", nomination_form(version=str(current.version), csco_email="x"))
    assert invalid.status_code == 422 and "csco_email" in errors_on(invalid)
    assert field_value(invalid, "csco_email") == "x"
    assert site.get(n.id).version == current.version


def test_a_stale_edit_is_refused_with_the_input_kept(site):
    n = site.draft()
    first, second = site.visitor("sub-id"), site.visitor("sub-id2")
    stale_version = str(n.version)
    assert first.post(f"/nominations/{n.id}/edit",
                      nomination_form(version=stale_version, vision="First edit.")).status_code == 302
    response = second.post(f"/nominations/{n.id}/edit",
                           nomination_form(version=stale_version, vision="Second edit, typed meanwhile."))
    assert response.status_code == 409
    page = text(response)
    assert "Someone changed this nomination while you were editing (it is now version" in page
    assert "Nothing was saved; your input is kept below" in page
    assert field_value(response, "vision") == "Second edit, typed meanwhile."
    assert f'name="version" value="{n.version + 1}"' in page  # saving again is based on the current version
    assert site.get(n.id).vision == "First edit."

    resent = second.post(f"/nominations/{n.id}/edit", nomination_form(version=str(n.version + 1),
                                                                        vision="Second edit, typed meanwhile."))
    assert resent.status_code == 302 and site.get(n.id).vision == "Second edit, typed meanwhile."


def test_only_a_draft_can_be_edited(site):
    n = site.submitted()
    sub = site.visitor("sub-id")
    form = sub.get(f"/nominations/{n.id}/edit", follow_redirects=True)
    assert form.request.path == f"/nominations/{n.id}"
    assert "Only a draft can be edited; this nomination is submitted." in flashes(form)
    response = sub.post(f"/nominations/{n.id}/edit", nomination_form(version=str(n.version), vision="Late edit"))
    assert response.status_code == 422
    assert "Only a drafted nomination can be edited; this one is Submitted. Nothing was saved." in text(response)
    assert field_value(response, "vision") == "Late edit"
    assert site.get(n.id).vision == "A test vision."


def test_script_typed_into_any_field_is_shown_escaped(site):
    sub = site.visitor("sub-id")
    response = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form(
        city_name=HOSTILE, region=HOSTILE, vision=HOSTILE, csco_name=HOSTILE,
        **{"project-0-title": HOSTILE, "project-0-description": HOSTILE})})
    assert response.status_code == 302
    n = nominations.search(site.svc, site.world.submitter_id).items[0]
    assert n.city_name == HOSTILE  # stored as typed
    site.svc.clock.advance(seconds=1)
    attachments.add(site.svc, site.world.submitter_id, n.id, "action_plan", f"{HOSTILE}.pdf", PDF)
    n = nominations.fire(site.svc, site.world.submitter_id, n.id, "submit", site.get(n.id).version)
    checks.run_checks(site.svc, site.last_event(n.id, "nomination.submitted"))
    rev = site.visitor("rev-sg")
    returned = rev.post(f"/nominations/{n.id}/fire", {"trigger": "return_for_revision",
                                                     "version": str(site.get(n.id).version), "comment": HOSTILE})
    assert returned.status_code == 302
    bad_input = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form(csco_email=HOSTILE)})
    pages = [sub.get(f"/nominations/{n.id}"), sub.get(f"/nominations/{n.id}/edit"), sub.get("/nominations"),
             site.visitor("root").get("/review"), site.visitor("root").get(f"/nominations/{n.id}"), bad_input,
             sub.get("/nominations?q=" + HOSTILE), site.visitor().get("/?q=" + HOSTILE)]
    for page in pages:
        body = text(page)
        assert "<script" not in body, page.request.path
    shown = text(pages[0])
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in shown
    assert shown.count("&lt;script&gt;") >= 6  # city, region, vision, officer, project, file, comment
    assert "&lt;script&gt;" in text(bad_input)


# --- submit, withdraw and the actions a person may take now -------------------------------------------


def test_submit_and_withdraw_from_the_nomination_page(site):
    n = site.draft()
    sub = site.visitor("sub-id")
    page = sub.get(f"/nominations/{n.id}")
    assert page.status_code == 200
    assert_plain_page(page)
    assert state_of(page) == "drafted"
    assert buttons(page)[:2] == ["Sign out sub-id", "Submit"] and "Withdraw" in buttons(page)
    assert "Edit draft" in text(page)

    submitted = sub.post(f"/nominations/{n.id}/fire", {"trigger": "submit", "version": str(n.version)},
                         follow_redirects=True)
    assert "Submitted. Automated checks run now; reviewers are told when they finish." in flashes(submitted)
    assert state_of(submitted) == "submitted"
    assert "Submit" not in buttons(submitted) and "Withdraw" in buttons(submitted)
    assert "Edit draft" not in text(submitted)
    assert "The checks are running." in text(submitted)

    # Withdraw asks first, on a page of its own that names the consequence.
    asked = sub.get(f"/nominations/{n.id}/confirm/withdraw")
    assert asked.status_code == 200 and site.get(n.id).state == "submitted"
    assert "Withdrawing cannot be undone. Banyuwangi will leave the ASCN-2026 cycle." in text(asked)
    assert 'name="confirm" value="yes"' in text(asked)
    withdrawn = sub.post(f"/nominations/{n.id}/fire", {"trigger": "withdraw", "version": str(n.version + 1),
                                                       "confirm": "yes"}, follow_redirects=True)
    assert "Withdrawn. The nomination no longer counts towards the limit of Indonesia." in flashes(withdrawn)
    assert state_of(withdrawn) == "withdrawn"
    assert "Nothing for you to do on this nomination now." in text(withdrawn)
    timeline = text(withdrawn).split('id="timeline-h"')[1]
    assert timeline.index("Draft created") < timeline.index("Submitted for review") \
        < timeline.index("Withdrawn")
    assert "(Submitted → Withdrawn)" in timeline


def test_withdraw_accept_and_reject_without_confirmation_change_nothing(site):
    draft, reviewed = site.draft("Makassar"), site.reviewed()
    sub, rev = site.visitor("sub-id"), site.visitor("rev-ph")
    for visitor, n, trigger, extra, consequence in (
            (sub, draft, "withdraw", {}, "Withdrawing cannot be undone. Makassar will leave the ASCN-2026 cycle."),
            (rev, reviewed, "accept", {}, "Accepting cannot be undone. Banyuwangi will join the ASEAN Smart Cities "
                                          "Network, and its handover package will be sent to the lead agency of "
                                          "Indonesia."),
            (rev, reviewed, "reject", {"comment": "Not ready."}, "Rejecting cannot be undone."),
            (rev, reviewed, "reject", {"comment": "Not ready.", "confirm": "no"}, "Rejecting cannot be undone.")):
        before = site.get(n.id)
        shown = visitor.post(f"/nominations/{n.id}/fire", {"trigger": trigger, "version": str(n.version), **extra})
        assert shown.status_code == 200, trigger
        assert consequence in text(shown), trigger
        after = site.get(n.id)
        assert (after.state, after.version) == (before.state, before.version), trigger
        # the confirmation carries what was typed, and fires only with confirm=yes
        assert 'name="confirm" value="yes"' in text(shown)
        if "comment" in extra:
            assert ">Not ready.</textarea>" in text(shown)
    assert visitor.get(f"/nominations/{reviewed.id}/confirm/submit").status_code == 404  # nothing to confirm
    confirmed = rev.post(f"/nominations/{reviewed.id}/fire", {"trigger": "reject", "version": str(reviewed.version),
                                                              "comment": "Not ready.", "confirm": "yes"},
                         follow_redirects=True)
    assert "Rejected. The submitters of Indonesia are told, with your reason." in flashes(confirmed)
    assert site.get(reviewed.id).state == "rejected"


def test_the_nomination_page_says_why_an_expected_action_is_not_offered(site):
    n = site.submitted()
    own = text(site.visitor("rev-id").get(f"/nominations/{n.id}"))
    assert "Not available to you now" in own
    assert ("A reviewer of member state Indonesia may not review, accept or reject a nomination of their own member "
            "state.") in own or "Indonesia" in own.split('id="unavailable-h"')[1].split("</ul>")[0]
    for city in ("DKI Jakarta", "Makassar"):
        site.submitted(city)
    full = site.draft("Sumedang")
    page = text(site.visitor("sub-id").get(f"/nominations/{full.id}"))
    assert "Submit" not in buttons_of(page)
    assert "already has 3 active" in page.split('id="unavailable-h"')[1].split("</ul>")[0]
    assert "The ASCN-2026 cycle closes on" in page and "days left" in page


def buttons_of(html: str) -> list[str]:
    return [label.strip() for attributes, label in re.findall(r"<button ([^>]*)>(.*?)</button>", html, re.S)
            if 'name="lang"' not in attributes]


def test_refusals_of_submit_are_shown_in_words(site):
    incomplete = nominations.create(site.svc, site.world.submitter_id, {"city_name": "Makassar"})
    sub = site.visitor("sub-id")
    refused = sub.post(f"/nominations/{incomplete.id}/fire", {"trigger": "submit", "version": "1"},
                       follow_redirects=True)
    assert state_of(refused) == "drafted"
    # each field by its label, linking to it on the form
    edit = f"/nominations/{incomplete.id}/edit"
    assert [f'Required fields are missing: <a href="{edit}#csco_name">Chief Smart City Officer&#39;s name</a>, '
            f'<a href="{edit}#csco_email">Chief Smart City Officer&#39;s email</a>, '
            f'<a href="{edit}#vision">Vision statement</a>, <a href="{edit}#focus_areas">Focus areas</a>, '
            f'<a href="{edit}#projects">Projects</a>.'] == [m for m in flashes(refused) if "missing" in m]
    assert 'role="alert">Required fields are missing' in text(refused)

    for city in ("Banyuwangi", "DKI Jakarta", "Sumedang"):
        site.submitted(city)
    full = site.draft("Makassar")  # again, complete this time: the reference names four cities of Indonesia
    over = sub.post(f"/nominations/{full.id}/fire", {"trigger": "submit", "version": str(full.version)},
                    follow_redirects=True)
    assert "Member state Indonesia already has 3 active nomination(s) in cycle ASCN-2026, its limit is 3." in flashes(over)
    assert site.get(full.id).state == "drafted"

    site.svc.clock.advance(days=365)  # the cycle has closed, and the 8-hour session has expired
    expired = sub.post(f"/nominations/{full.id}/fire", {"trigger": "submit", "version": str(full.version)})
    assert expired.status_code == 302 and expired.headers["Location"].startswith("/login")
    assert site.get(full.id).state == "drafted"
    sub = site.visitor("sub-id")
    closed = sub.post(f"/nominations/{full.id}/fire", {"trigger": "submit", "version": str(full.version)},
                      follow_redirects=True)
    assert any("The cycle ASCN-2026 is not open for submissions" in m for m in flashes(closed))
    assert state_of(closed) == "drafted"


def test_a_stale_or_unknown_trigger_is_refused_in_words(site):
    n = site.draft()
    sub = site.visitor("sub-id")
    nominations.update(site.svc, site.world.submitter_id2, n.id, n.version, {"vision": "Changed meanwhile."})
    stale = sub.post(f"/nominations/{n.id}/fire", {"trigger": "withdraw", "version": str(n.version),
                                                   "confirm": "yes"}, follow_redirects=True)
    assert "Someone changed this nomination meanwhile; nothing was done. Check it and try again." in flashes(stale)
    assert state_of(stale) == "drafted"
    unknown = sub.post(f"/nominations/{n.id}/fire", {"trigger": "explode", "version": str(n.version + 1)},
                       follow_redirects=True)
    assert any(m.startswith("Unknown trigger &#39;explode&#39;") for m in flashes(unknown))
    # accept asks for confirmation first, but not what may not be done: unconfirmed, it is refused at once
    unconfirmed = sub.post(f"/nominations/{n.id}/fire", {"trigger": "accept", "version": str(n.version + 1)},
                           follow_redirects=True)
    assert "Please confirm" not in text(unconfirmed)
    assert "Accept is not possible on this nomination now." in flashes(unconfirmed)
    assert site.get(n.id).state == "drafted" and site.get(n.id).version == n.version + 1
    wrong_state = sub.post(f"/nominations/{n.id}/fire", {"trigger": "accept", "version": str(n.version + 1),
                                                         "confirm": "yes"}, follow_redirects=True)
    assert any("&#39;Accept&#39; cannot be fired on a nomination in state &#39;Draft&#39;" in m
               for m in flashes(wrong_state))
    assert site.get(n.id).state == "drafted"


def test_a_submitter_of_the_member_state_may_not_fire_what_reviewers_do(site):
    n = site.reviewed()
    sub = site.visitor("sub-id")
    page = sub.get(f"/nominations/{n.id}")
    assert "Nothing for you to do on this nomination now." in text(page)
    unconfirmed = sub.post(f"/nominations/{n.id}/fire", {"trigger": "accept", "version": str(n.version)},
                           follow_redirects=True)
    assert "Please confirm" not in text(unconfirmed)
    assert "Accept is not possible on this nomination now." in flashes(unconfirmed)
    assert site.get(n.id).state == "reviewed"
    refused = sub.post(f"/nominations/{n.id}/fire", {"trigger": "accept", "version": str(n.version),
                                                     "confirm": "yes"}, follow_redirects=True)
    assert "Only a reviewer may do this." in flashes(refused)
    assert site.get(n.id).state == "reviewed"


# --- attachments ----------------------------------------------------------------------------------------


def upload(visitor, n, content: bytes, filename: str = "action-plan.pdf", kind: str = "action_plan", version=None):
    return visitor.post(f"/nominations/{n.id}/attachments",
                        {"kind": kind, "version": str(version if version is not None else n.version),
                         "file": (_file(content), filename)},
                        content_type="multipart/form-data", follow_redirects=True)


def test_an_action_plan_is_uploaded_stored_by_hash_and_served_to_those_who_may_see_it(site):
    n = site.draft()
    sub = site.visitor("sub-id")
    page = sub.get(f"/nominations/{n.id}")
    assert 'enctype="multipart/form-data"' in text(page) and "PDF file (at most 8 MiB)" in text(page)
    response = upload(sub, n, PDF)
    assert "action-plan.pdf attached." in flashes(response)
    assert "action-plan.pdf</a> (Smart City Action Plan," in text(response)
    digest = hashlib.sha256(PDF).hexdigest()
    stored = os.path.join(site.svc.settings.instance_path, "attachments", digest)
    with open(stored, "rb") as handle:
        assert handle.read() == PDF
    static = site.app.static_folder
    assert not os.path.abspath(stored).startswith(os.path.abspath(static))  # outside the web root
    with site.svc.engine.connect() as c:
        attachment_id = c.scalar(sa.select(t.attachments.c.id))
    url = f"/nominations/{n.id}/attachments/{attachment_id}"
    assert re.search(rf'href="{url}"', text(response))

    for username in ("sub-id", "sub-id2", "root"):
        download = site.visitor(username).get(url)
        download.get_data()
        download.close()  # the file it streamed
        assert download.status_code == 200, username
        assert download.mimetype == "application/pdf" and download.data == PDF
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert download.headers["X-Content-Type-Options"] == "nosniff"
    for username in ("sub-th", "rev-sg", "ops"):  # other member state; a reviewer or operator before submission
        assert site.visitor(username).get(url).status_code == 404, username
    assert site.visitor("sub-id").get(f"/nominations/{n.id}/attachments/{attachment_id + 1}").status_code == 404
    assert site.visitor().get("/static/../instance/attachments/" + digest).status_code == 404

    current = site.get(n.id)
    nominations.fire(site.svc, site.world.submitter_id, n.id, "submit", current.version)
    download = site.visitor("rev-sg").get(url)
    download.close()
    assert download.status_code == 200  # submitted: reviewers may see it now
    download = site.visitor("ops").get(url)
    download.close()
    assert download.status_code == 200  # and operators


def test_uploads_that_are_not_pdf_or_too_large_are_refused_with_a_clear_message(site):
    n = site.draft()
    sub = site.visitor("sub-id")
    not_pdf = upload(sub, n, PNG, "plan.pdf")
    # the refusal names the form's field by its label and links to it
    assert '<a href="#file">PDF file</a>: Only PDF files are accepted (the content is not a PDF).' in flashes(not_pdf)
    renamed = upload(sub, n, b"%PDF-1.4 but cut short", "plan.pdf")
    assert '<a href="#file">PDF file</a>: Only PDF files are accepted (the content is not a PDF).' in flashes(renamed)

    big = PDF[:-6] + b"\n" + b"0" * (attachments.MAX_BYTES + 1) + b"\n%%EOF\n"
    too_big = upload(sub, n, big)
    assert f'<a href="#file">PDF file</a>: The file is {len(big) // 1024:,} KiB; the limit is 8 MiB.' in flashes(too_big)

    huge = sub.post(f"/nominations/{n.id}/attachments",
                    {"kind": "action_plan", "version": str(n.version),
                     "file": (_file(b"%PDF-" + b"0" * (11 * 1024 * 1024)), "huge.pdf")},
                    content_type="multipart/form-data")
    assert huge.status_code == 413 and huge.mimetype == "text/html"
    assert "Attachments are PDF files of at most 8 MiB: nothing was saved" in text(huge)

    no_file = sub.post(f"/nominations/{n.id}/attachments", {"kind": "action_plan", "version": str(n.version)},
                       content_type="multipart/form-data", follow_redirects=True)
    assert '<a href="#file">PDF file</a>: Choose a PDF file to upload.' in flashes(no_file)
    bad_kind = upload(sub, n, PDF, kind="selfie")
    assert '<a href="#kind">Kind</a>: Must be one of: Smart City Action Plan, Supporting document.' in flashes(bad_kind)
    stale = upload(sub, n, PDF, version=n.version + 5)
    assert any("reload it and try again" in m for m in flashes(stale))

    assert site.count(t.attachments) == 0
    folder = os.path.join(site.svc.settings.instance_path, "attachments")
    assert not os.path.exists(folder) or [f for f in os.listdir(folder) if not f.endswith(".tmp")] in (
        [], [hashlib.sha256(PDF).hexdigest()])


def test_files_are_attached_only_while_drafted(site):
    n = site.submitted()
    sub = site.visitor("sub-id")
    page = sub.get(f"/nominations/{n.id}")
    assert 'enctype="multipart/form-data"' not in text(page)  # no upload form
    refused = upload(sub, n, PDF)
    assert "Files can be attached only while drafted; this nomination is Submitted." in flashes(refused)
    assert site.count(t.attachments) == 0


# --- the review desk ------------------------------------------------------------------------------------


def test_the_review_desk_lists_submitted_nominations_whose_checks_finished(site):
    w = site.world
    oldest = site.submitted("Banyuwangi")
    site.svc.clock.advance(days=3)
    pending = site.submitted("Makassar", run_checks=False)
    site.svc.clock.advance(days=2)
    thai = site.submitted("Phuket", w.submitter_th)
    site.svc.clock.advance(days=1)
    reviewed = site.reviewed("DKI Jakarta")
    site.draft("Sumedang")
    site.svc.clock.advance(days=1)

    desk = site.visitor("rev-ph").get("/review")
    assert desk.status_code == 200
    assert_plain_page(desk)
    page = text(desk)
    assert "Ready for review (2)" in page
    assert "Reviewed: awaiting accept or reject (four eyes) (1)" in page
    assert oldest.reference in page and thai.reference in page and reviewed.reference in page
    assert pending.reference not in page and "Sumedang" not in page
    ready = page.split("Ready for review (2)")[1].split("Reviewed: awaiting")[0]
    assert ready.index("Banyuwangi") < ready.index("Phuket")  # waiting longest first
    assert "7 days" in ready and "24 hours" in page  # durations in words, in the unit a person counts in

    newest = text(site.visitor("rev-ph").get("/review?sort=newest&state=submitted"))
    assert newest.index("Phuket") < newest.index("Banyuwangi")
    assert "Reviewed:" not in newest
    only_th = text(site.visitor("rev-ph").get("/review?member_state=TH"))
    assert "Phuket" in only_th and "Banyuwangi" not in only_th and "Ready for review (1)" in only_th
    assert 'value="TH" selected' in only_th
    other_cycle = text(site.visitor("rev-ph").get("/review?cycle=ASCN-2018"))
    assert "Ready for review (0)" in other_cycle and "Nothing here." in other_cycle
    assert text(site.visitor("rev-ph").get("/review?state=reviewed")).count("DKI Jakarta") == 1
    # an unknown state or order in the address is ignored: both lists, waiting longest first
    ignored = site.visitor("rev-ph").get("/review?state=<b>&sort=sideways")
    assert ignored.status_code == 200
    assert "Ready for review (2)" in text(ignored)
    assert "Reviewed: awaiting accept or reject (four eyes) (1)" in text(ignored)
    assert "<b>" not in text(ignored)
    # a page number that is not one is a 400 naming the parameter and its rule
    bad_page = site.visitor("rev-ph").get("/review?state=<b>&sort=sideways&page=-4")
    assert bad_page.status_code == 400 and bad_page.mimetype == "text/html"
    assert "The parameter page is not valid: Must be a whole number from 1 to 100,000" in text(bad_page)
    assert "<b>" not in text(bad_page)
    # operators and admins may look at the desk too
    assert site.visitor("ops").get("/review").status_code == 200
    assert site.visitor("root").get("/review").status_code == 200


# --- the review form, accept, reject, return ----------------------------------------------------------


def test_the_review_form_scores_each_claimed_focus_area(site):
    n = site.submitted()
    rev = site.visitor("rev-sg")
    page = rev.get(f"/nominations/{n.id}")
    assert {"Return for revision", "Review"} <= set(buttons(page))
    assert "What needs revision" in text(page)
    via_button = rev.post(f"/nominations/{n.id}/fire", {"trigger": "review", "version": str(n.version)})
    assert via_button.status_code == 302 and via_button.headers["Location"] == f"/nominations/{n.id}/review"
    form = rev.get(f"/nominations/{n.id}/review")
    assert form.status_code == 200
    assert_plain_page(form)
    body = text(form)
    assert 'id="score-civic_social"' in body and 'id="score-quality_environment"' in body
    assert 'id="score-health_wellbeing"' not in body  # not claimed by this city

    incomplete = rev.post(f"/nominations/{n.id}/review", {"version": str(n.version), "score-civic_social": "4",
                                                          "score-quality_environment": "", "recommendation": "",
                                                          "summary": "Kept summary."})
    assert incomplete.status_code == 422
    assert "Please correct the fields marked below." in text(incomplete)
    assert "recommendation" in errors_on(incomplete)
    assert "Choose a score from 1 to 5." in text(incomplete)  # next to the score left empty
    assert errors_on(incomplete)["recommendation"] == "Choose a recommendation."
    assert field_value(incomplete, "summary") == "Kept summary."
    assert '<option value="4" selected>' in text(incomplete)
    assert site.get(n.id).state == "submitted"

    done = rev.post(f"/nominations/{n.id}/review", {
        "version": str(n.version), "score-civic_social": "4", "score-quality_environment": "3",
        "recommendation": "accept", "summary": "Solid plan.", "comment": "Well prepared."}, follow_redirects=True)
    assert ("Review recorded. A second reviewer, not of the same member state, now accepts or rejects the "
            "nomination.") in flashes(done)
    assert state_of(done) == "reviewed"
    shown = text(done)
    assert "Assessment by rev-sg" in shown and "Civic and Social: 4 / 5" in shown
    assert "Recommendation: Accept. Solid plan." in shown  # the recommendation in words
    assert "Well prepared." in shown
    # four eyes: the one who reviewed is not offered accept or reject
    assert "Accept" not in buttons(done) and "Reject" not in buttons(done)
    assert "Return for revision" in buttons(done)


def test_review_refusals_are_shown_in_words_with_the_input_kept(site):
    w = site.world
    pending = site.submitted("Makassar", run_checks=False)
    form = {"version": str(pending.version), "score-civic_social": "5", "score-quality_environment": "5",
            "recommendation": "accept", "summary": "Kept."}
    not_yet = site.visitor("rev-sg").post(f"/nominations/{pending.id}/review", form)
    assert not_yet.status_code == 422
    assert "The automated checks have not finished yet." in text(not_yet)
    assert field_value(not_yet, "summary") == "Kept."

    n = site.submitted()
    form["version"] = str(n.version)
    own_state = site.visitor("rev-id").post(f"/nominations/{n.id}/review", form)
    assert own_state.status_code == 403
    assert "A reviewer of member state Indonesia may not review, accept or reject a nomination of their own member state." \
        in text(own_state)
    assert "Review" not in buttons(site.visitor("rev-id").get(f"/nominations/{n.id}"))

    stale = site.visitor("rev-sg").post(f"/nominations/{n.id}/review", {**form, "version": str(n.version - 1)})
    assert stale.status_code == 409
    assert "Someone changed this nomination meanwhile; nothing was saved. Your assessment is kept below" \
        in text(stale)
    assert field_value(stale, "summary") == "Kept." and f'name="version" value="{n.version}"' in text(stale)
    assert site.get(n.id).state == "submitted"

    blocked = site.submitted("DKI Jakarta", w.submitter_id, focus_areas=["civic_social", "health_wellbeing"])
    blocked_form = {"version": str(blocked.version), "score-civic_social": "4", "score-health_wellbeing": "4",
                    "recommendation": "reject", "summary": "x"}
    failed = site.visitor("rev-sg").post(f"/nominations/{blocked.id}/review", blocked_form)
    assert failed.status_code == 422
    assert "A blocking automated check failed; return the nomination for revision." in text(failed)


def test_accept_reject_and_return_obey_four_eyes_and_need_words(site):
    n = site.reviewed()
    same = site.visitor("rev-sg")
    refused = same.post(f"/nominations/{n.id}/fire", {"trigger": "accept", "version": str(n.version),
                                                      "confirm": "yes"}, follow_redirects=True)
    four_eyes = "Four eyes: rev-sg reviewed this nomination, so a different reviewer must accept or reject it."
    assert four_eyes in flashes(refused)
    # the page says why Accept and Reject are not offered to the one who reviewed
    unavailable = text(same.get(f"/nominations/{n.id}")).split('id="unavailable-h"')[1].split("</ul>")[0]
    assert f"<strong>Accept</strong>: {four_eyes}" in unavailable and "<strong>Reject</strong>" in unavailable
    assert four_eyes in flashes(same.get(f"/nominations/{n.id}/confirm/accept", follow_redirects=True))
    other = site.visitor("rev-ph")
    page = other.get(f"/nominations/{n.id}")
    assert {"Return for revision", "Accept", "Reject"} <= set(buttons(page))
    assert 'id="unavailable-h"' not in text(page)
    asked = other.get(f"/nominations/{n.id}/confirm/reject")
    assert "Reason for rejecting" in text(asked)
    assert ("Rejecting cannot be undone. Banyuwangi will leave the ASCN-2026 cycle; your reason is sent to the "
            "submitters of Indonesia.") in text(asked)
    no_reason = other.post(f"/nominations/{n.id}/fire", {"trigger": "reject", "version": str(n.version),
                                                         "comment": "   ", "confirm": "yes"},
                           follow_redirects=True)
    assert "A reason is required to reject a nomination." in flashes(no_reason)
    no_comment = other.post(f"/nominations/{n.id}/fire", {"trigger": "return_for_revision",
                                                          "version": str(n.version)}, follow_redirects=True)
    assert "A comment is required: say what needs revision." in flashes(no_comment)
    assert site.get(n.id).state == "reviewed"

    accepted = other.post(f"/nominations/{n.id}/fire", {"trigger": "accept", "version": str(n.version),
                                                        "confirm": "yes"}, follow_redirects=True)
    assert ("Accepted. The handover package is being sent to the lead agency of Indonesia; the nomination is "
            "handed over once it is delivered.") in flashes(accepted) and state_of(accepted) == "accepted"
    assert "Nothing for you to do on this nomination now." in text(accepted)
    # an operator may hand it over once the package is delivered; the page says so, and firing refuses
    ops = site.visitor("ops")
    ops_page = ops.get(f"/nominations/{n.id}")
    assert "Hand over" not in buttons(ops_page)
    assert "The handover package has not been delivered to the lead agency." in text(ops_page)
    handover = ops.post(f"/nominations/{n.id}/fire", {"trigger": "hand_over", "version": str(n.version + 1)},
                        follow_redirects=True)
    assert any("package" in m for m in flashes(handover)) and site.get(n.id).state == "accepted"

    second = site.reviewed("Makassar")
    rejected = other.post(f"/nominations/{second.id}/fire", {"trigger": "reject", "version": str(second.version),
                                                             "comment": "Not ready this cycle.", "confirm": "yes"},
                          follow_redirects=True)
    assert state_of(rejected) == "rejected" and "Not ready this cycle." in text(rejected)

    third = site.reviewed("DKI Jakarta")
    returned = same.post(f"/nominations/{third.id}/fire", {"trigger": "return_for_revision",
                                                           "version": str(third.version),
                                                           "comment": "Add the budget."}, follow_redirects=True)
    assert state_of(returned) == "drafted"
    assert "<q>Add the budget.</q>" in text(returned)
    assert "Edit draft" in text(site.visitor("sub-id").get(f"/nominations/{third.id}"))


def test_the_nomination_page_shows_data_checks_timeline_and_the_actions_of_each_role(site):
    n = site.reviewed()
    sub = site.visitor("sub-id")
    page = sub.get(f"/nominations/{n.id}")
    assert_plain_page(page)
    body = text(page)
    assert f"Banyuwangi <small>{n.reference}</small>" in body
    assert "· Indonesia · cycle ASCN-2026" in body
    assert "Civic and Social, Quality Environment" in body
    assert "<strong>Village e-services</strong> (Civic and Social) · priority" in body
    assert "&lt;csco@banyuwangi.example&gt;" in body
    checks_section = body.split('id="checks-h"')[1].split("</section>")[0]
    assert '<li class="check-passed"><strong>Completeness</strong>: passed' in checks_section
    assert "Focus areas covered by projects" in checks_section
    timeline = body.split('id="timeline-h"')[1]
    for name in ("Draft created", "Submitted for review", "Automated checks finished", "Reviewed"):
        assert name in timeline
    expected = {"sub-id": set(), "rev-sg": {"Return for revision"}, "rev-ph": {"Return for revision", "Accept",
                                                                               "Reject"},
                "rev-id": {"Return for revision"}, "ops": set(), "root": set()}  # rev-id: of its member state
    actions = {"Submit", "Withdraw", "Return for revision", "Review", "Accept", "Reject", "Hand over"}
    for username, wanted in expected.items():
        shown = set(buttons(site.visitor(username).get(f"/nominations/{n.id}"))) & actions
        assert shown == wanted, username


# --- the workflow diagram -------------------------------------------------------------------------------


def test_the_workflow_page_draws_the_machine_with_counts(site):
    from scn_workflow.domain import workflow
    site.draft()
    site.submitted("Makassar")
    anonymous = site.visitor().get("/workflow")
    assert anonymous.status_code == 200
    assert_plain_page(anonymous)
    body = text(anonymous)
    svg = body.split("<svg")[1].split("</svg>")[0]
    for state in workflow.STATES:  # in words, not codes
        assert f">{labels.STATES[state]}</text>" in svg
    for trigger in workflow.describe()["triggers"]:
        assert svg.count(f">{labels.TRIGGERS[trigger['trigger']]}</text>") == len(trigger["from"])
        assert f'<td class="state">{labels.TRIGGERS[trigger["trigger"]]}</td>' in body
    assert "nomination</text>" not in svg and "nominations</text>" not in svg  # counts: for those signed in
    counted = text(site.visitor("rev-sg").get("/workflow"))
    assert "1 nomination<" in counted and "0 nominations" in counted
    assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_diagram_puts_no_two_labels_on_the_same_spot():
    from scn_workflow.domain import workflow
    from scn_workflow.web.diagram import BOX_H, BOX_W, workflow_svg
    svg = workflow_svg(workflow.describe(), {"drafted": 1})
    labels = [(float(x), float(y), len(label)) for x, y, label in
              re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="\w+" font-size="11"[^>]*>([\w ]+)</text>', svg)]
    assert len(labels) == sum(len(t["from"]) for t in workflow.describe()["triggers"])
    boxes = [(float(x), float(y)) for x, y in re.findall(r'<rect x="([\d.]+)" y="([\d.]+)"', svg)]
    for i, (x, y, n) in enumerate(labels):
        half = n * 3.2  # about 6.4 px per character at 11 px
        for bx, by in boxes:  # a label's middle is not inside a box
            assert not (bx - 2 < x < bx + BOX_W + 2 and by - 2 < y - 4 < by + BOX_H + 2), (x, y)
        for x2, y2, n2 in labels[i + 1:]:
            assert abs(y - y2) >= 12 or abs(x - x2) >= half + n2 * 3.2, ((x, y), (x2, y2))


# --- the admin pages ------------------------------------------------------------------------------------


def test_admin_manages_users(site):
    admin = site.visitor("root")
    page = admin.get("/admin/users")
    assert page.status_code == 200
    assert_plain_page(page)
    assert "rev-sg" in text(page) and "sub-th" in text(page)
    invalid = admin.post("/admin/users", {"username": "New User!", "password": "short", "email": "nope",
                                          "role": "submitter", "member_state": ""})
    assert invalid.status_code == 422
    assert set(errors_on(invalid)) >= {"username", "password", "email"}
    assert field_value(invalid, "username") == "New User!" and field_value(invalid, "email") == "nope"
    assert "short" not in text(invalid)
    no_state = admin.post("/admin/users", {"username": "sub-new", "password": "a-long-passphrase",
                                           "email": "n@x.example", "role": "submitter", "member_state": ""})
    assert no_state.status_code == 422
    assert errors_on(no_state)["member_state"] == "A submitter must belong to a member state."
    taken = admin.post("/admin/users", {"username": "rev-sg", "password": "a-long-passphrase", "email": "r@x.example",
                                        "role": "reviewer", "member_state": "SG"})
    assert taken.status_code == 422 and "A user named &#39;rev-sg&#39; already exists." in text(taken)
    created = admin.post("/admin/users", {"username": "rev-vn", "password": "a-long-passphrase",
                                          "email": "r@vn.example", "role": "reviewer", "member_state": "VN"},
                         follow_redirects=True)
    assert "User rev-vn (Reviewer) created." in flashes(created)
    assert site.visitor().sign_in("rev-vn", "a-long-passphrase").get("/home").headers["Location"] == "/review"


def test_admin_manages_cycles_and_overrides_with_a_reason(site):
    admin = site.visitor("root")
    page = admin.get("/admin/cycles")
    assert page.status_code == 200
    assert_plain_page(page)
    assert "ASCN-2026 · 2026 test cycle" in text(page)
    bad = admin.post("/admin/cycles", {"code": "ASCN 2027!", "name": "", "opens_at": "2027-01-01",
                                       "closes_at": "someday", "limit_per_state": "lots"})
    assert bad.status_code == 422
    assert set(errors_on(bad)) >= {"code", "name", "closes_at", "limit_per_state"}
    assert field_value(bad, "code") == "ASCN 2027!" and field_value(bad, "opens_at") == "2027-01-01"
    backwards = admin.post("/admin/cycles", {"code": "ASCN-2027", "name": "2027", "opens_at": "2027-06-01",
                                             "closes_at": "2027-01-01", "limit_per_state": "3"})
    assert backwards.status_code == 422 and errors_on(backwards)["closes_at"] == "Must be after the opening date."
    created = admin.post("/admin/cycles", {"code": "ASCN-2027", "name": "2027 call", "opens_at": "2027-01-01",
                                           "closes_at": "2028-01-01", "limit_per_state": "2",
                                           "requires_action_plan": "on"}, follow_redirects=True)
    assert "Cycle ASCN-2027 created." in flashes(created)
    assert "limit 2 active nominations per member state; an action plan is required" in text(created)
    again = admin.post("/admin/cycles", {"code": "ASCN-2027", "name": "again", "opens_at": "2027-01-01",
                                         "closes_at": "2028-01-01", "limit_per_state": "2"})
    assert again.status_code == 422 and "already exists" in text(again)

    no_reason = admin.post("/admin/cycles/ASCN-2026/overrides", {"member_state": "MY", "limit": "4", "reason": ""},
                           follow_redirects=True)
    assert any(m.startswith("Override not saved: Reason:") for m in flashes(no_reason))
    unknown = admin.post("/admin/cycles/ASCN-1999/overrides", {"member_state": "MY", "limit": "4",
                                                               "reason": "Four pilots"}, follow_redirects=True)
    assert "No cycle &#39;ASCN-1999&#39;." in flashes(unknown)
    assert site.count(t.limit_overrides) == 0
    saved = admin.post("/admin/cycles/ASCN-2026/overrides", {"member_state": "MY", "limit": "4",
                                                             "reason": "Malaysia had 4 pilot cities"},
                       follow_redirects=True)
    assert "Limit of Malaysia in ASCN-2026 set to 4." in flashes(saved)
    assert "Malaysia: limit 4 — Malaysia had 4 pilot cities (set by root, June 1, 2026)" in text(saved)


def test_admin_sets_lead_agencies(site):
    admin = site.visitor("root")
    page = admin.get("/admin/member-states")
    assert page.status_code == 200
    assert_plain_page(page)
    assert "<h2>Indonesia</h2>" in text(page) and 'value="lead@id.example"' in text(page)
    bad = admin.post("/admin/member-states", {"code": "VN", "lead_agency_name": "Ministry of Construction",
                                              "lead_agency_email": "not-an-email",
                                              "lead_agency_webhook_url": "ftp://x", "lead_agency_webhook_secret": "short"})
    assert bad.status_code == 422
    assert {"lead_agency_email", "lead_agency_webhook_url", "lead_agency_webhook_secret"} <= set(errors_on(bad))
    saved = admin.post("/admin/member-states", {
        "code": "TH", "lead_agency_name": "Lead agency of Thailand (placeholder)", "lead_agency_email": "lead@th.example",
        "lead_agency_webhook_url": "", "lead_agency_webhook_secret": ""}, follow_redirects=True)
    assert "Lead agency of Thailand saved." in flashes(saved)
    with site.svc.engine.connect() as c:
        row = c.execute(sa.select(t.member_states).where(t.member_states.c.code == "TH")).one()
    assert (row.lead_agency_name, row.lead_agency_email) == ("Lead agency of Thailand (placeholder)", "lead@th.example")
    unknown = admin.post("/admin/member-states", {"code": "XX", "lead_agency_name": "Nobody"})
    assert unknown.status_code == 404 and "No member state &#39;XX&#39;." in flashes(unknown)


# --- the same journey on SQLite and PostgreSQL --------------------------------------------------------


def test_a_nomination_from_draft_to_handover_through_the_pages(any_db_site):
    site = any_db_site
    sub, reviewer, second = site.visitor("sub-id"), site.visitor("rev-sg"), site.visitor("rev-ph")
    created = sub.post("/nominations/new", {"cycle": "ASCN-2026", **nomination_form()})
    assert created.status_code == 302
    url = created.headers["Location"]
    n = site.get(int(url.rsplit("/", 1)[1]))
    assert "action-plan.pdf attached." in flashes(upload(sub, n, PDF))
    n = site.get(n.id)
    assert sub.post(url + "/fire", {"trigger": "submit", "version": str(n.version)}).status_code == 302
    checks.run_checks(site.svc, site.last_event(n.id, "nomination.submitted"))
    n = site.get(n.id)
    assert n.reference in text(reviewer.get("/review"))
    assert reviewer.post(url + "/review", {"version": str(n.version), "score-civic_social": "5",
                                           "score-quality_environment": "4", "recommendation": "accept",
                                           "summary": "Strong."}).status_code == 302
    n = site.get(n.id)
    unconfirmed = second.post(url + "/fire", {"trigger": "accept", "version": str(n.version)})
    assert unconfirmed.status_code == 200 and "Please confirm" in text(unconfirmed)
    assert site.get(n.id).state == "reviewed"  # nothing changed until confirmed
    assert second.post(url + "/fire", {"trigger": "accept", "version": str(n.version),
                                       "confirm": "yes"}).status_code == 302
    assert site.get(n.id).state == "accepted"
    accepted = site.last_event(n.id, "nomination.accepted")
    with site.svc.engine.begin() as c:  # the package was delivered (the worker tests deliver it for real)
        c.execute(sa.insert(t.deliveries).values(nomination_id=n.id, event_id=accepted, channel="email",
                                                 target="lead@id.example", status="accepted", attempts=1,
                                                 created_at=site.svc.clock()))
    n = site.get(n.id)
    done = site.visitor("ops").post(url + "/fire", {"trigger": "hand_over", "version": str(n.version)},
                                    follow_redirects=True)
    assert state_of(done) == "handed_over"
    assert n.reference in text(site.visitor().get("/"))  # now on the public register


def test_the_review_desk_goes_page_by_page(site, monkeypatch):
    monkeypatch.setattr(ui, "DESK_PER_PAGE", 2)
    w = site.world
    waiting = []
    for city, actor in (("Banyuwangi", w.submitter_id), ("Makassar", w.submitter_id), ("Phuket", w.submitter_th),
                        ("Chonburi", w.submitter_th), ("DKI Jakarta", w.submitter_id)):
        waiting.append(site.submitted(city, actor))
        site.svc.clock.advance(days=1)
    reviewer = site.visitor("rev-ph")

    both = text(reviewer.get("/review"))
    ready = both.split("Ready for review (5)")[1].split("Reviewed: awaiting")[0]
    assert "The first 2 of 5." in ready
    assert [n.city_name in ready for n in waiting] == [True, True, False, False, False]  # waiting longest first
    assert 'href="/review?state=submitted&amp;sort=oldest&amp;page=2"' in reviewer.get("/review").get_data(as_text=True)

    second = reviewer.get("/review?state=submitted&sort=oldest&page=2")
    assert second.status_code == 200
    assert_plain_page(second)
    page = text(second)
    assert [n.city_name in page for n in waiting] == [False, False, True, True, False]
    assert "Page 2 of 3" in page and "Previous page" in page and "Next page" in page
    last = text(reviewer.get("/review?state=submitted&sort=oldest&page=3"))
    assert "DKI Jakarta" in last and "Page 3 of 3" in last and "Next page" not in last
    # the filters and the order travel with the links
    html = reviewer.get("/review?state=submitted&sort=newest&member_state=ID&page=1").get_data(as_text=True)
    assert "Page 1 of 2" in text(reviewer.get("/review?state=submitted&sort=newest&member_state=ID"))
    assert 'href="/review?state=submitted&amp;sort=newest&amp;page=2&amp;member_state=ID"' in html
    # past the last page: an empty list, not an error
    beyond = text(reviewer.get("/review?state=submitted&page=9"))
    assert "Nothing here." in beyond and "Previous page" in beyond
