"""Sessions and tokens that end, users administered, sign-in limits and weak passwords, over HTTP
against a real server (gunicorn, two processes) on PostgreSQL.

Every "at once" below is the very next request, repeated so that both processes answer it."""

from __future__ import annotations

import html
import random
import re
import uuid

import pytest
import requests

from scn_workflow.services.seed import DEMO_PASSWORD
from tests.harness import RedisServer
from tests.integration import live
from tests.integration.live import live_server, start_live_server  # noqa: F401

TIMEOUT = 10
TWICE_PER_PROCESS = 4  # two gunicorn processes: four requests in a row reach both (or one many times)


def _csrf(page: requests.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return html.unescape(found.group(1))


def sign_in(base: str, username: str, password: str = DEMO_PASSWORD, headers: dict | None = None) -> requests.Session:
    """A browser: the sign-in form, signed in (its cookie in the session)."""
    browser = live.http_session()
    browser.headers.update(headers or {})
    form = browser.get(base + "/login", timeout=TIMEOUT)
    answer = browser.post(base + "/login", data={"username": username, "password": password, "csrf_token": _csrf(form)},
                          allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code == 302, answer.text[:500]
    return browser


def signed_in(browser: requests.Session, base: str) -> bool:
    """Whether the browser's cookie still opens a page for signed-in users (else: sent to sign in)."""
    answer = browser.get(base + "/home", allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (200, 302), answer.status_code
    return answer.status_code == 200 or "/login" not in answer.headers.get("Location", "")


def replay(cookies, base: str) -> bool:
    """A stranger's browser with a copied cookie."""
    stranger = live.http_session()
    stranger.cookies.update(cookies)
    return signed_in(stranger, base)


def new_user(server, role: str = "reviewer", **fields) -> str:
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    answer = server.api("admin").post(server.url + "/api/v1/users", timeout=TIMEOUT, json={
        "username": username, "password": DEMO_PASSWORD, "email": f"{username}@test.example", "role": role, **fields})
    assert answer.status_code == 201, answer.text
    return username


# --- sessions and tokens -------------------------------------------------------------------

def test_a_copied_cookie_is_refused_after_sign_out(live_server):
    base = live_server.url
    browser = sign_in(base, "reviewer")
    copied = browser.cookies.copy()
    assert replay(copied, base)  # the copy works while the session lives
    page = browser.get(base + "/login", timeout=TIMEOUT)
    out = browser.post(base + "/logout", data={"csrf_token": _csrf(page)}, allow_redirects=False, timeout=TIMEOUT)
    assert out.status_code == 302
    for _ in range(TWICE_PER_PROCESS):
        assert not replay(copied, base)


def test_deactivation_ends_the_browser_session_and_the_token_at_once(live_server):
    base = live_server.url
    username = new_user(live_server, name="Temporary Reviewer")
    browser = sign_in(base, username)
    token = live_server.api(username)
    assert signed_in(browser, base)
    assert token.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 200

    admin = live_server.api("admin")
    answer = admin.patch(f"{base}/api/v1/users/{username}", json={"active": False}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    assert answer.json()["active"] is False
    for _ in range(TWICE_PER_PROCESS):
        assert not signed_in(browser, base)
        assert token.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 401
    refused = requests.post(base + "/api/v1/tokens", json={"username": username, "password": DEMO_PASSWORD},
                            timeout=TIMEOUT)
    assert refused.status_code == 401

    # reactivated, the person signs in again; what deactivation ended stays ended
    assert admin.patch(f"{base}/api/v1/users/{username}", json={"active": True}, timeout=TIMEOUT).status_code == 200
    assert signed_in(sign_in(base, username), base)
    assert token.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 401


def test_a_password_reset_and_a_role_change_end_the_sessions(live_server):
    base = live_server.url
    username = new_user(live_server)
    admin = live_server.api("admin")
    browser = sign_in(base, username)
    changed = admin.patch(f"{base}/api/v1/users/{username}", json={"role": "operator"}, timeout=TIMEOUT)
    assert changed.status_code == 200 and changed.json()["role"] == "operator", changed.text
    assert not signed_in(browser, base)

    browser, token = sign_in(base, username), live_server.api(username)
    reset = admin.patch(f"{base}/api/v1/users/{username}", json={"password": "a-temporary-passphrase"},
                        timeout=TIMEOUT)
    assert reset.status_code == 200, reset.text
    assert not signed_in(browser, base)
    assert token.get(base + "/api/v1/ops/queues", timeout=TIMEOUT).status_code == 401
    assert signed_in(sign_in(base, username, "a-temporary-passphrase"), base)


def test_delete_tokens_current_revokes_the_token_it_is_sent_with(live_server):
    base = live_server.url
    kept, revoked = live_server.api("reviewer"), live_server.api("reviewer")
    answer = revoked.delete(base + "/api/v1/tokens/current", timeout=TIMEOUT)
    assert answer.status_code == 204, answer.text
    for _ in range(TWICE_PER_PROCESS):
        refused = revoked.get(base + "/api/v1/nominations", timeout=TIMEOUT)
        assert refused.status_code == 401
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert kept.get(base + "/api/v1/nominations", timeout=TIMEOUT).status_code == 200  # only that token
    assert revoked.delete(base + "/api/v1/tokens/current", timeout=TIMEOUT).status_code == 401
    spec = requests.get(base + "/api/openapi.json", timeout=TIMEOUT).json()
    assert "204" in spec["paths"]["/api/v1/tokens/current"]["delete"]["responses"]


# --- users administered ----------------------------------------------------------------------

def test_admins_list_and_change_users(live_server):
    base, admin = live_server.url, live_server.api("admin")
    username = new_user(live_server, role="submitter", member_state="ID", name="Siti Rahma", language="id")
    listed = admin.get(base + "/api/v1/users", timeout=TIMEOUT)
    assert listed.status_code == 200
    row = next(u for u in listed.json() if u["username"] == username)
    assert row == {"username": username, "name": "Siti Rahma", "email": f"{username}@test.example",
                   "role": "submitter", "member_state": "ID", "language": "id", "active": True}

    changed = admin.patch(f"{base}/api/v1/users/{username}", json={"name": "Siti R.", "language": "en",
                                                                    "email": "siti@test.example"}, timeout=TIMEOUT)
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("name", "language", "email")} == {
        "name": "Siti R.", "language": "en", "email": "siti@test.example"}

    refused = admin.patch(f"{base}/api/v1/users/{username}", json={"member_state": None}, timeout=TIMEOUT)
    assert refused.status_code == 422 and "member_state" in refused.json()["errors"]
    refused = admin.patch(f"{base}/api/v1/users/{username}", json={"language": "fr"}, timeout=TIMEOUT)
    assert refused.status_code == 422 and "language" in refused.json()["errors"]
    assert admin.patch(f"{base}/api/v1/users/nobody-here", json={"active": False},
                       timeout=TIMEOUT).status_code == 404
    itself = admin.patch(f"{base}/api/v1/users/admin", json={"active": False}, timeout=TIMEOUT)
    assert itself.status_code == 403 and "themselves" in itself.json()["detail"]
    assert live_server.api("reviewer").get(base + "/api/v1/users", timeout=TIMEOUT).status_code == 403
    assert live_server.api("reviewer").patch(f"{base}/api/v1/users/{username}", json={"active": False},
                                             timeout=TIMEOUT).status_code == 403


def test_the_admin_page_shows_roles_and_deactivates(live_server):
    base = live_server.url
    username = new_user(live_server, role="operator")
    victim = sign_in(base, username)
    admin = sign_in(base, "admin")
    page = admin.get(base + "/admin/users", timeout=TIMEOUT)
    row = re.search(rf"<tr><td>{username}</td>.*?</tr>", page.text, re.S)
    assert row and re.search(r"<td>operator</td>", row.group(0), re.I), page.text[:2000]  # a code or its label
    answer = admin.post(f"{base}/admin/users/{username}/active", data={"active": "0", "csrf_token": _csrf(page)},
                        timeout=TIMEOUT)
    assert answer.status_code == 200 and "deactivated" in answer.text
    assert not signed_in(victim, base)


@pytest.mark.parametrize("password, why", [("password", "at least 12"), ("abcdefghijk", "at least 12"),
                                           ("Password1234", "common passwords"),
                                           ("QWERTYUIOPASDF", "common passwords")])
def test_weak_passwords_are_refused_naming_the_field(live_server, password, why):
    base, admin = live_server.url, live_server.api("admin")
    created = admin.post(base + "/api/v1/users", timeout=TIMEOUT, json={
        "username": "weak-admin", "password": password, "email": "weak@test.example", "role": "admin"})
    assert created.status_code == 422, created.text
    assert why in " ".join(created.json()["errors"]["password"])
    reset = admin.patch(base + "/api/v1/users/reviewer", json={"password": password}, timeout=TIMEOUT)
    assert reset.status_code == 422 and why in " ".join(reset.json()["errors"]["password"])


# --- sign-in limits, shared by the two processes (Redis), behind one trusted proxy -------------

@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    """A server behind one trusted proxy (the test plays it: X-Forwarded-For), counting in its own Redis."""
    workdir = tmp_path_factory.mktemp("limits")
    redis = RedisServer(workdir)
    redis.start()
    server, stop = start_live_server(workdir, SCN_TRUSTED_PROXIES="1", SCN_RATELIMIT_STORAGE_URL=redis.url)
    yield server
    stop()
    redis.stop()


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def token_request(server, username: str, password: str, address: str) -> requests.Response:
    return requests.post(server.url + "/api/v1/tokens", json={"username": username, "password": password},
                         headers={"X-Forwarded-For": address}, timeout=TIMEOUT)


def assert_limited(answer: requests.Response) -> None:
    assert answer.status_code == 429, answer.text[:300]
    assert answer.headers["Retry-After"].isdigit() and int(answer.headers["Retry-After"]) > 0


def test_a_password_sprayed_over_many_usernames_from_one_address_is_stopped(limited_server):
    address = _address()
    answers = [token_request(limited_server, f"user-{i}-{uuid.uuid4().hex[:6]}", "Summer2026!", address).status_code
               for i in range(30)]
    assert 429 in answers, answers
    first = answers.index(429)
    assert first <= 20 and set(answers[first:]) == {429}, answers  # shared by both processes
    assert_limited(token_request(limited_server, "reviewer", DEMO_PASSWORD, address))
    # the sign-in form counts the same failures, and says how long to wait
    form = requests.get(limited_server.url + "/login", headers={"X-Forwarded-For": address}, timeout=TIMEOUT)
    page = requests.post(limited_server.url + "/login", cookies=form.cookies, timeout=TIMEOUT,
                         headers={"X-Forwarded-For": address},
                         data={"username": "reviewer", "password": DEMO_PASSWORD, "csrf_token": _csrf(form)})
    assert_limited(page)
    assert "Too many failed sign-ins" in page.text
    # another address is not held back
    assert token_request(limited_server, "reviewer", DEMO_PASSWORD, _address()).status_code == 201


def test_guessing_one_password_stops_the_guesser_not_its_owner(limited_server):
    attacker, owner = _address(), _address()
    answers = [token_request(limited_server, "reviewer-sg", f"guess-{i}-wrong", attacker).status_code
               for i in range(8)]
    assert answers[:5] == [401] * 5 and set(answers[5:]) == {429}, answers
    assert token_request(limited_server, "reviewer-sg", DEMO_PASSWORD, owner).status_code == 201
    assert signed_in(sign_in(limited_server.url, "reviewer-sg", headers={"X-Forwarded-For": owner}),
                     limited_server.url)


def test_guesses_from_many_addresses_are_capped_and_the_owner_still_signs_in(limited_server):
    botnet = [_address() for _ in range(25)]
    answers = [token_request(limited_server, "reviewer-ph", "Password-guess!", bot).status_code for bot in botnet]
    assert set(answers) == {401}, answers  # one guess each: no single address is over its own limits
    # the account has had its 20 failures this hour: an address that failed for it waits ...
    assert_limited(token_request(limited_server, "reviewer-ph", DEMO_PASSWORD, botnet[0]))
    # ... while its owner, at an address that has not failed for it, signs in
    assert token_request(limited_server, "reviewer-ph", DEMO_PASSWORD, _address()).status_code == 201


def test_the_forwarded_address_is_believed_only_from_the_trusted_proxy(limited_server):
    """The client's own X-Forwarded-For entries are ignored: only the last hop (the proxy's) counts."""
    attacker = _address()
    answers = [token_request(limited_server, f"nobody-{uuid.uuid4().hex[:6]}", "x-wrong-password",
                             f"{_address()}, {attacker}").status_code for _ in range(22)]
    assert answers[-1] == 429, answers
