"""People administered and their own accounts, over HTTP against a real server (gunicorn) on PostgreSQL:
the admin's user pages, a temporary password that must be changed before anything else, the
account page (name, language, mail choice, password), deactivation from the page."""

from __future__ import annotations

import html
import re
import uuid

import requests

from scn_workflow.services import users
from scn_workflow.services.seed import DEMO_PASSWORD
from tests.integration import live
from tests.integration.live import live_server  # noqa: F401

TIMEOUT = 10
NEW_PASSWORD = "a-river-of-lanterns-42"


def _csrf(page: requests.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def browser_of(base: str, username: str, password: str = DEMO_PASSWORD) -> tuple[requests.Session, requests.Response]:
    """A browser that went through the sign-in form, and the form's answer (a redirect)."""
    browser = live.http_session()
    form = browser.get(base + "/login", timeout=TIMEOUT)
    answer = browser.post(base + "/login", data={"username": username, "password": password, "csrf_token": _csrf(form)},
                          allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302, answer.text[:500]
    return browser, answer


def post_form(browser: requests.Session, base: str, path: str, data: dict) -> requests.Response:
    """Fill in the form of the page at `path` (its CSRF token) and send it, without following the answer."""
    page = browser.get(base + path, timeout=TIMEOUT)
    return browser.post(base + path, data={**data, "csrf_token": _csrf(page)}, allow_redirects=False, timeout=TIMEOUT)


def field_error(page: requests.Response, name: str) -> str:
    """The message shown next to field `name` (empty when none)."""
    found = re.search(rf'<p class="field-error" id="{name}-error">(.*?)</p>', page.text, re.S)
    return html.unescape(found.group(1)) if found else ""


def row_of(page: requests.Response, username: str) -> str:
    found = re.search(rf"<tr><td>{re.escape(username)}</td>(.*?)</tr>", page.text, re.S)
    assert found, page.text[:3000]
    return html.unescape(found.group(1))


def new_user(server, role: str = "submitter", **fields) -> str:
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    fields = {"member_state": "ID", **fields} if role == "submitter" else fields
    answer = server.api("admin").post(server.url + "/api/v1/users", timeout=TIMEOUT, json={
        "username": username, "password": DEMO_PASSWORD, "email": f"{username}@test.example", "role": role, **fields})
    assert answer.status_code == 201, answer.text
    return username


def listed(server, username: str) -> dict:
    every = server.api("admin").get(server.url + "/api/v1/users", timeout=TIMEOUT).json()
    return next(u for u in every if u["username"] == username)


def is_signed_in(browser: requests.Session, base: str) -> bool:
    answer = browser.get(base + "/account", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (200, 302), answer.status_code
    return answer.status_code == 200


# --- the admin's user pages -----------------------------------------------------------------------

def test_an_admin_changes_role_member_state_name_and_language_on_the_page(live_server):
    base = live_server.url
    username = new_user(live_server, name="Placeholder Person", language="en")
    admin, _ = browser_of(base, "admin")
    page = admin.get(base + "/admin/users", timeout=TIMEOUT)
    row = row_of(page, username)
    assert "Placeholder Person" in row and "Indonesia" in row and "English" in row and "Submitter" in row
    assert f'href="/admin/users/{username}"' in page.text

    edit = admin.get(f"{base}/admin/users/{username}", timeout=TIMEOUT)
    assert edit.status_code == 200 and 'value="Placeholder Person"' in edit.text
    saved = post_form(admin, base, f"/admin/users/{username}", {
        "role": "reviewer", "member_state": "PH", "name": "Renamed Person", "email": "renamed@test.example",
        "language": "id"})
    assert saved.status_code == 302, field_error(saved, "role") or saved.text[:2000]
    row = row_of(admin.get(base + "/admin/users", timeout=TIMEOUT), username)
    for shown in ("Renamed Person", "Reviewer", "Philippines", "renamed@test.example", "Bahasa Indonesia"):
        assert shown in row, (shown, row)
    assert "PH" not in re.sub(r"<[^>]+>", " ", row).split()  # the member state's name, not its code
    assert listed(live_server, username) == {
        "username": username, "name": "Renamed Person", "email": "renamed@test.example", "role": "reviewer",
        "member_state": "PH", "language": "id", "active": True}

    # an operator belongs to no member state: choosing the role and "none" together is accepted
    saved = post_form(admin, base, f"/admin/users/{username}", {
        "role": "operator", "member_state": "", "name": "", "email": "renamed@test.example", "language": "en"})
    assert saved.status_code == 302
    assert listed(live_server, username)["role"] == "operator" and listed(live_server, username)["name"] is None


def test_a_refused_change_names_its_field_and_changes_nothing(live_server):
    base = live_server.url
    username = new_user(live_server, name="Kept Name")
    admin, _ = browser_of(base, "admin")
    good = {"role": "submitter", "member_state": "ID", "name": "Kept Name", "email": f"{username}@test.example",
            "language": "en"}
    for change, field, message in [
        ({"member_state": ""}, "member_state", "A submitter must belong to a member state."),
        ({"role": "operator"}, "member_state", "Only submitters and reviewers belong to a member state."),
        ({"member_state": "XX"}, "member_state", "Unknown member state 'XX'."),
        ({"role": "chief"}, "role", "Must be one of"),
        ({"email": "not-an-address"}, "email", "email"),
        ({"language": "fr"}, "language", "Must be en (English) or id (Bahasa Indonesia)."),
        ({"name": "x" * 121}, "name", "120"),
    ]:
        refused = post_form(admin, base, f"/admin/users/{username}", {**good, **change})
        assert refused.status_code == 422, (change, refused.status_code)
        assert message in field_error(refused, field), (change, field_error(refused, field), refused.text[:3000])
        typed = next(iter(change.values()))
        if field in ("email", "name"):  # what was typed stays in the form, to be corrected
            assert f'value="{typed}"' in refused.text
    assert listed(live_server, username) == {
        "username": username, "name": "Kept Name", "email": f"{username}@test.example", "role": "submitter",
        "member_state": "ID", "language": None, "active": True}  # as created: no language chosen

    itself = post_form(admin, base, "/admin/users/admin", {"role": "reviewer", "member_state": "", "name": "",
                                                            "email": "admin@scn-demo.example", "language": "en"})
    assert itself.status_code == 422 and "themselves" in field_error(itself, "role")
    assert listed(live_server, "admin")["role"] == "admin"
    assert admin.get(base + "/admin/users/nobody-at-all", timeout=TIMEOUT).status_code == 404
    reviewer, _ = browser_of(base, "reviewer")
    assert reviewer.get(f"{base}/admin/users/{username}", timeout=TIMEOUT).status_code == 403


# --- a temporary password ----------------------------------------------------------------------------

def test_a_reset_password_must_be_changed_before_anything_else(live_server):
    base = live_server.url
    username = new_user(live_server)
    before, _ = browser_of(base, username)
    token = live_server.api(username)
    admin, _ = browser_of(base, "admin")

    page = admin.get(f"{base}/admin/users/{username}", timeout=TIMEOUT)
    refused = admin.post(f"{base}/admin/users/{username}/password", timeout=TIMEOUT,
                         data={"password": "short", "csrf_token": _csrf(page)})
    assert refused.status_code == 422 and "at least 12" in field_error(refused, "password")
    assert is_signed_in(before, base)  # a refused reset ends nothing

    shown = admin.post(f"{base}/admin/users/{username}/password", data={"password": "", "csrf_token": _csrf(page)},
                       timeout=TIMEOUT)
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    temporary = re.search(r'<output id="temporary-password"[^>]*>([^<]+)</output>', shown.text).group(1)
    assert len(temporary) >= 12 and temporary not in admin.get(f"{base}/admin/users/{username}", timeout=TIMEOUT).text
    assert not is_signed_in(before, base)
    assert token.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 401

    # no API token with a temporary password: it is changed on the web first
    asked = requests.post(base + "/api/v1/tokens", json={"username": username, "password": temporary}, timeout=TIMEOUT)
    assert asked.status_code == 403 and asked.headers["Content-Type"].startswith("application/problem+json")
    assert asked.json()["type"].endswith("/password-change-required") and "/account/password" in asked.json()["detail"]

    browser, signed = browser_of(base, username, temporary)
    assert signed.headers["Location"].endswith("/account/password")
    for path in ("/home", "/nominations", "/account", "/review", "/admin/users", "/workflow", "/"):
        answer = browser.get(base + path, allow_redirects=False, timeout=TIMEOUT)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/account/password"), path
    form = browser.get(base + "/account/password", timeout=TIMEOUT)
    assert form.status_code == 200 and "temporary" in form.text
    # a form elsewhere does nothing either: a new nomination is refused by the same redirect
    created = browser.post(base + "/nominations/new", data={"csrf_token": _csrf(form), "city_name": "Nowhere"},
                           allow_redirects=False, timeout=TIMEOUT)
    assert created.status_code == 302 and created.headers["Location"].endswith("/account/password")

    for data, field, message in [
        ({"current_password": temporary, "password": "short", "password_again": "short"}, "password", "at least 12"),
        ({"current_password": temporary, "password": "Password1234", "password_again": "Password1234"}, "password",
         "common passwords"),
        ({"current_password": temporary, "password": temporary, "password_again": temporary}, "password",
         "other than the current one"),
        ({"current_password": temporary, "password": NEW_PASSWORD, "password_again": NEW_PASSWORD + "x"},
         "password_again", "differ"),
        ({"current_password": "not-the-password", "password": NEW_PASSWORD, "password_again": NEW_PASSWORD},
         "current_password", "wrong"),
    ]:
        refused = post_form(browser, base, "/account/password", data)
        assert refused.status_code == 422 and message in field_error(refused, field), (data, refused.text[:2000])
        assert browser.get(base + "/home", allow_redirects=False, timeout=TIMEOUT).headers["Location"].endswith(
            "/account/password")

    changed = post_form(browser, base, "/account/password", {"current_password": temporary, "password": NEW_PASSWORD,
                                                              "password_again": NEW_PASSWORD})
    assert changed.status_code == 302 and changed.headers["Location"].endswith("/home")
    assert browser.get(base + "/nominations", timeout=TIMEOUT).status_code == 200
    assert requests.post(base + "/api/v1/tokens", json={"username": username, "password": NEW_PASSWORD},
                         timeout=TIMEOUT).status_code == 201
    assert requests.post(base + "/api/v1/tokens", json={"username": username, "password": temporary},
                         timeout=TIMEOUT).status_code == 401


def test_an_admin_may_type_the_temporary_password_or_create_a_user_with_one(live_server):
    base = live_server.url
    admin, _ = browser_of(base, "admin")
    username = new_user(live_server)
    page = admin.get(f"{base}/admin/users/{username}", timeout=TIMEOUT)
    typed = admin.post(f"{base}/admin/users/{username}/password", timeout=TIMEOUT, allow_redirects=False,
                       data={"password": "typed-temporary-words", "csrf_token": _csrf(page)})
    assert typed.status_code == 302
    assert "temporary" in admin.get(f"{base}/admin/users/{username}", timeout=TIMEOUT).text
    _, signed = browser_of(base, username, "typed-temporary-words")
    assert signed.headers["Location"].endswith("/account/password")

    created = f"reviewer-{uuid.uuid4().hex[:8]}"
    answer = post_form(admin, base, "/admin/users", {
        "username": created, "password": "first-temporary-words", "email": f"{created}@test.example",
        "role": "reviewer", "member_state": "", "name": "New Reviewer", "language": "id", "must_change_password": "on"})
    assert answer.status_code == 302, answer.text[:2000]
    assert listed(live_server, created)["name"] == "New Reviewer" and listed(live_server, created)["language"] == "id"
    browser, signed = browser_of(base, created, "first-temporary-words")
    assert signed.headers["Location"].endswith("/account/password")
    assert '<html lang="id">' in browser.get(base + "/account/password", timeout=TIMEOUT).text


# --- one's own account ----------------------------------------------------------------------------------

def test_the_account_page_changes_name_language_and_mail_choice(live_server):
    base = live_server.url
    username = new_user(live_server, name="First Name")
    browser, _ = browser_of(base, username)
    home = browser.get(base + "/nominations", timeout=TIMEOUT)
    assert 'href="/account"' in home.text and '<html lang="en">' in home.text
    page = browser.get(base + "/account", timeout=TIMEOUT)
    assert page.status_code == 200 and 'value="First Name"' in page.text
    assert re.search(r'value="event"\s+checked', page.text)

    for data, field in [({"language": "fr"}, "language"), ({"mail": "weekly"}, "mail"), ({"name": "y" * 121}, "name")]:
        refused = post_form(browser, base, "/account", {"name": "First Name", "language": "en", "mail": "event",
                                                        **data})
        assert refused.status_code == 422 and field_error(refused, field), (data, refused.text[:2000])

    saved = post_form(browser, base, "/account", {"name": "Nama Baru", "language": "id", "mail": "digest"})
    assert saved.status_code == 302
    page = browser.get(base + "/account", timeout=TIMEOUT)
    assert '<html lang="id">' in page.text and 'value="Nama Baru"' in page.text
    assert re.search(r'value="digest"\s+checked', page.text)
    assert '<html lang="id">' in browser.get(base + "/nominations", timeout=TIMEOUT).text
    assert listed(live_server, username)["name"] == "Nama Baru" and listed(live_server, username)["language"] == "id"
    svc = live_server.services()
    try:
        assert users.get_user(svc, username).mail_digest is True
    finally:
        svc.engine.dispose()

    saved = post_form(browser, base, "/account", {"name": "Nama Baru", "language": "en", "mail": "event"})
    assert saved.status_code == 302
    assert '<html lang="en">' in browser.get(base + "/account", timeout=TIMEOUT).text


def test_a_person_who_chose_no_language_reads_their_browsers(live_server):
    """users.language NULL: the browser's Accept-Language, else English; the account page offers it."""
    base = live_server.url
    username = new_user(live_server)
    assert listed(live_server, username)["language"] is None
    browser, _ = browser_of(base, username)
    assert '<html lang="en">' in browser.get(base + "/nominations", timeout=TIMEOUT).text
    browser.headers["Accept-Language"] = "id-ID,id;q=0.9,en;q=0.5"
    page = browser.get(base + "/account", timeout=TIMEOUT)
    assert '<html lang="id">' in page.text
    assert re.search(r'<option value=""\s+selected>Bahasa peramban', page.text), page.text[:3000]

    post_form(browser, base, "/account", {"name": "", "language": "en", "mail": "event"})  # chosen: it wins
    assert '<html lang="en">' in browser.get(base + "/nominations", timeout=TIMEOUT).text
    saved = post_form(browser, base, "/account", {"name": "", "language": "", "mail": "event"})  # the browser's again
    assert saved.status_code == 302
    assert listed(live_server, username)["language"] is None
    assert '<html lang="id">' in browser.get(base + "/nominations", timeout=TIMEOUT).text
    browser.headers["Accept-Language"] = "fr"
    assert '<html lang="en">' in browser.get(base + "/nominations", timeout=TIMEOUT).text


def test_the_account_page_changes_the_password_with_the_current_one(live_server):
    base = live_server.url
    username = new_user(live_server)
    browser, _ = browser_of(base, username)
    elsewhere, _ = browser_of(base, username)
    wrong = post_form(browser, base, "/account/password", {"current_password": "not-my-password",
                                                           "password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert wrong.status_code == 422 and "wrong" in field_error(wrong, "current_password")
    weak = post_form(browser, base, "/account/password", {"current_password": DEMO_PASSWORD, "password": "short",
                                                          "password_again": "short"})
    assert weak.status_code == 422 and "at least 12" in field_error(weak, "password")

    changed = post_form(browser, base, "/account/password", {"current_password": DEMO_PASSWORD,
                                                             "password": NEW_PASSWORD, "password_again": NEW_PASSWORD})
    assert changed.status_code == 302 and changed.headers["Location"].endswith("/account")
    assert is_signed_in(browser, base)  # this browser goes on
    assert not is_signed_in(elsewhere, base)  # the others are signed out
    assert requests.post(base + "/api/v1/tokens", json={"username": username, "password": DEMO_PASSWORD},
                         timeout=TIMEOUT).status_code == 401
    browser_of(base, username, NEW_PASSWORD)


# --- deactivation from the page -------------------------------------------------------------------------

def test_deactivation_from_the_page_ends_the_session_and_the_token_at_once(live_server):
    base = live_server.url
    username = new_user(live_server, role="reviewer")
    victim, _ = browser_of(base, username)
    token = live_server.api(username)
    assert is_signed_in(victim, base) and token.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 200

    admin, _ = browser_of(base, "admin")
    page = admin.get(f"{base}/admin/users/{username}", timeout=TIMEOUT)
    answer = admin.post(f"{base}/admin/users/{username}/active", data={"active": "0", "csrf_token": _csrf(page)},
                        timeout=TIMEOUT)
    assert answer.status_code == 200 and "deactivated" in answer.text
    refused = victim.get(base + "/review", allow_redirects=False, timeout=TIMEOUT)  # the very next request
    assert refused.status_code == 302 and "/login" in refused.headers["Location"]
    assert token.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 401
    assert "deactivated" in row_of(admin.get(base + "/admin/users", timeout=TIMEOUT), username)
