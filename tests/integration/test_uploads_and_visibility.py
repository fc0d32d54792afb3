"""Uploads and who may read or act, over HTTP against a real server (gunicorn) on PostgreSQL.

- An upload that is refused (not the uploader's nomination, not a draft, a stale If-Match) leaves
  no file behind: it is refused before its body is read.
- A file is a PDF when it starts with "%PDF-"; it is stored and served under a clean ".pdf" name.
- Stored files that no attachment names are removed by the sweep once past their grace period.
- Operators read submitted nominations only, never a draft (DESIGN.md, Roles).
- Accept and reject: a reviewer not of the nomination's member state (DESIGN.md, the workflow).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid

import pytest
import requests

from scn_workflow.services import attachments
from scn_workflow.services.seed import DEMO_PASSWORD
from tests.api_support import PDF
from tests.conftest import ASSESSMENT, complete_draft
from tests.integration import live
from tests.integration.live import live_server, start_live_server  # noqa: F401

TIMEOUT = 30
ID_REVIEWER_PASSWORD = "Kedaulatan-rakyat-2026"

_SESSIONS: dict[tuple[str, str], requests.Session] = {}


def api_of(server, username: str, password: str = DEMO_PASSWORD) -> requests.Session:
    """One token per user and server: sign-in is rate-limited per address and username."""
    key = (server.url, username)
    if key not in _SESSIONS:
        _SESSIONS[key] = server.api(username, password)
    return _SESSIONS[key]


def stored(server) -> set[str]:
    """The names in the server's upload folder."""
    folder = server.instance / "attachments"
    return set(os.listdir(folder)) if folder.exists() else set()


def unique_pdf() -> bytes:
    """A valid PDF no earlier upload had (files are stored under their SHA-256)."""
    return PDF[:-6] + f"% {uuid.uuid4().hex}\n".encode() + b"%%EOF\n"


def city() -> str:
    return f"Upload test city {uuid.uuid4().hex[:8]} (placeholder)"


def create(server, username: str) -> dict:
    response = api_of(server, username).post(server.url + "/api/v1/nominations", json=complete_draft(city()),
                                             timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()


def fire(server, username: str, nomination: dict, trigger: str, status: int = 200, **body) -> dict:
    response = api_of(server, username).post(
        f"{server.url}/api/v1/nominations/{nomination['id']}/transitions", json={"trigger": trigger, **body},
        headers={"If-Match": f'"{nomination["version"]}"'}, timeout=TIMEOUT)
    assert response.status_code == status, response.text
    return response.json()


def read(server, username: str, nomination_id: int) -> requests.Response:
    return api_of(server, username).get(f"{server.url}/api/v1/nominations/{nomination_id}", timeout=TIMEOUT)


def submitted(server, username: str) -> dict:
    return fire(server, username, create(server, username), "submit")


def checked(server, username: str) -> dict:
    """A submitted nomination whose checks (run by the server's embedded worker) have finished."""
    n = submitted(server, username)
    deadline = time.monotonic() + 60
    while n["checks_outcome"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        n = read(server, username, n["id"]).json()
    assert n["checks_outcome"] == "passed", n
    return n


def reviewed(server, username: str) -> dict:
    n = checked(server, username)
    return fire(server, "reviewer-sg", n, "review", assessment=ASSESSMENT)


def upload(server, username: str, nomination: dict, content: bytes, filename: str = "action-plan.pdf",
           if_match: str | None = None) -> requests.Response:
    headers = {"If-Match": if_match} if if_match else {}
    return api_of(server, username).post(
        f"{server.url}/api/v1/nominations/{nomination['id']}/attachments", headers=headers, timeout=TIMEOUT,
        data={"kind": "action_plan"}, files={"file": (filename, content, "application/pdf")})


def rules(response: requests.Response) -> list[str]:
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.text[:300]
    return [v["rule"] for v in response.json().get("violations") or []]


class Browser(live.Browser):
    """A signed-in browser that also uploads through the nomination page's form."""

    def upload(self, nomination: dict, content: bytes, version: int, token_from: str) -> requests.Response:
        token = live.csrf_of(self.get(token_from).text)
        return self.session.post(f"{self.server.url}/nominations/{nomination['id']}/attachments",
                                 params={"version": version}, timeout=TIMEOUT, allow_redirects=False,
                                 data={"kind": "action_plan", "version": version, "csrf_token": token},
                                 files={"file": ("action-plan.pdf", content, "application/pdf")})


_BROWSERS: dict[tuple[str, str], Browser] = {}


def browser_of(server, username: str) -> Browser:
    key = (server.url, username)
    if key not in _BROWSERS:
        _BROWSERS[key] = Browser(server, username)
    return _BROWSERS[key]


# --- refused uploads leave nothing on disk -------------------------------------------------------------

@pytest.mark.parametrize("who, owner, target, status, rule", [
    ("submitter-th", "submitter-id", "draft", 404, None),  # another member state's: not even visible
    ("reviewer-sg", "submitter-id", "draft", 404, None),  # a reviewer does not see a draft
    ("reviewer-sg", "submitter-th", "submitted", 403, "submitter_of_member_state"),  # sees it, may not change it
    ("operator", "submitter-ph", "submitted", 403, "submitter_of_member_state"),
    ("submitter-my", "submitter-my", "submitted", 422, "editable_only_when_drafted"),  # no longer a draft
    ("submitter-id", "submitter-id", "stale", 412, "current_version"),
])
def test_a_refused_upload_stores_no_file(live_server, who, owner, target, status, rule):
    n = submitted(live_server, owner) if target == "submitted" else create(live_server, owner)
    if_match = f'"{n["version"] - 1}"' if target == "stale" else f'"{n["version"]}"'
    if target == "stale":  # an edit after the uploader loaded the nomination
        changed = api_of(live_server, owner).patch(f"{live_server.url}/api/v1/nominations/{n['id']}",
                                                   json={"vision": "Changed meanwhile."},
                                                   headers={"If-Match": f'"{n["version"]}"'}, timeout=TIMEOUT)
        assert changed.status_code == 200, changed.text
        if_match = f'"{n["version"]}"'
    before = stored(live_server)
    response = upload(live_server, who, n, unique_pdf(), if_match=if_match)
    assert response.status_code == status, response.text
    if rule:
        assert rule in rules(response)
    assert stored(live_server) == before
    assert read(live_server, owner, n["id"]).json()["attachments"] == []


def test_a_refused_upload_through_the_page_stores_no_file(live_server):
    n = create(live_server, "submitter-id")
    own_page = f"/nominations/{n['id']}"
    before = stored(live_server)
    # another member state's submitter, with a valid token of its own session
    other = browser_of(live_server, "submitter-th")
    refused = other.upload(n, unique_pdf(), n["version"], token_from="/nominations")
    assert refused.status_code in (302, 404), refused.text[:300]
    # its own submitter, from a page of a version that is no longer current
    mine = browser_of(live_server, "submitter-id")
    token_page = mine.get(own_page)
    assert token_page.status_code == 200
    changed = api_of(live_server, "submitter-id").patch(f"{live_server.url}/api/v1/nominations/{n['id']}",
                                                        json={"vision": "Changed meanwhile."},
                                                        headers={"If-Match": f'"{n["version"]}"'}, timeout=TIMEOUT)
    assert changed.status_code == 200
    stale = mine.upload(n, unique_pdf(), n["version"], token_from=own_page)
    assert stale.status_code == 302 and stale.headers["Location"].endswith(own_page)
    assert "nothing was attached" in mine.get(own_page).text
    # a reviewer
    reviewer = browser_of(live_server, "reviewer-sg")
    assert reviewer.upload(n, unique_pdf(), n["version"], token_from="/review").status_code == 403
    assert stored(live_server) == before
    assert read(live_server, "submitter-id", n["id"]).json()["attachments"] == []

    accepted = mine.upload(n, unique_pdf(), n["version"] + 1, token_from=own_page)
    assert accepted.status_code == 302
    assert len(stored(live_server) - before) == 1
    assert len(read(live_server, "submitter-id", n["id"]).json()["attachments"]) == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_an_upload_over_the_limit_is_refused_unstored_with_or_without_a_length(live_server, chunked):
    n = create(live_server, "submitter-id")
    boundary = "scn-" + uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\naction_plan\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
            f"Content-Type: application/pdf\r\n\r\n").encode()
    content = PDF[:-6] + b" " * (attachments.MAX_BYTES + 128 * 1024) + b"%%EOF\n"
    tail = f"\r\n--{boundary}--\r\n".encode()

    def pieces():
        yield head
        for start in range(0, len(content), 256 * 1024):
            yield content[start:start + 256 * 1024]
        yield tail

    before = stored(live_server)
    response = api_of(live_server, "submitter-id").post(
        f"{live_server.url}/api/v1/nominations/{n['id']}/attachments", timeout=TIMEOUT,
        data=pieces() if chunked else head + content + tail,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert ("Transfer-Encoding" in response.request.headers) is chunked
    assert response.status_code == 413, response.text[:300]
    assert "8 MiB" in response.json()["detail"]
    assert stored(live_server) == before


# --- what a PDF is, and the names it is kept under -------------------------------------------------------

def test_a_file_with_the_pdf_header_further_in_is_refused(live_server):
    n = create(live_server, "submitter-id")
    before = stored(live_server)
    response = upload(live_server, "submitter-id", n, b"<html>    " + unique_pdf())  # "%PDF-" at byte 10
    assert response.status_code == 422, response.text
    assert set(response.json()["errors"]) == {"file"}
    assert stored(live_server) == before
    assert upload(live_server, "submitter-id", n, unique_pdf()).status_code == 201


@pytest.mark.parametrize("sent, kept", [
    ("report.html", "report.pdf"),
    ("../../etc/passwd", "passwd.pdf"),
    ("Plan.PDF", "Plan.pdf"),
    ("plan\u202efdp.exe", "planfdp.pdf"),  # a right-to-left override would show it as "planexe.pdf"
    ("x" * 300 + ".pdf", "x" * attachments.NAME_LIMIT + ".pdf"),
])
def test_a_file_is_kept_and_served_under_a_clean_pdf_name(live_server, sent, kept):
    n = create(live_server, "submitter-id")
    response = upload(live_server, "submitter-id", n, unique_pdf(), filename=sent)
    assert response.status_code == 201, response.text
    assert response.json()["filename"] == kept
    download = api_of(live_server, "submitter-id").get(
        f"{live_server.url}/api/v1/nominations/{n['id']}/attachments/{response.json()['id']}", timeout=TIMEOUT)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == f"attachment; filename={kept}"


def test_a_name_with_line_breaks_is_kept_without_them(live_server):
    """A line break cannot stand in a part's header as it is; RFC 2231's filename* carries one,
    and Werkzeug decodes it."""
    n = create(live_server, "submitter-id")
    boundary = "scn-" + uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\naction_plan\r\n'
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename*=UTF-8''report%0Ahtml%0D%0AX-Injected%3A%201%1B.html\r\n"
            f"Content-Type: application/pdf\r\n\r\n").encode() + unique_pdf() + f"\r\n--{boundary}--\r\n".encode()
    response = api_of(live_server, "submitter-id").post(
        f"{live_server.url}/api/v1/nominations/{n['id']}/attachments", data=body, timeout=TIMEOUT,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 201, response.text
    name = response.json()["filename"]
    assert name == "reporthtmlX-Injected: 1.pdf"
    listed = read(live_server, "submitter-id", n["id"]).json()["attachments"]
    assert [a["filename"] for a in listed] == [name]
    download = api_of(live_server, "submitter-id").get(
        f"{live_server.url}/api/v1/nominations/{n['id']}/attachments/{response.json()['id']}", timeout=TIMEOUT)
    disposition = download.headers["Content-Disposition"]
    assert "X-Injected" not in download.headers
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in disposition)
    assert disposition.endswith('.pdf"') or disposition.endswith(".pdf")


# --- the sweep of orphaned files --------------------------------------------------------------------------

def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_old_orphans_and_keeps_young_ones_and_named_files(live_server):
    n = create(live_server, "submitter-id")
    named = upload(live_server, "submitter-id", n, unique_pdf()).json()["sha256"]
    folder = live_server.instance / "attachments"
    old_orphan, young_orphan, leftover = folder / ("a" * 64), folder / ("b" * 64), folder / ("c" * 64 + ".1.tmp")
    for path in (old_orphan, young_orphan, leftover):
        path.write_bytes(unique_pdf())
    _age(old_orphan, 2 * 3600)
    _age(leftover, 2 * 3600)
    _age(folder / named, 2 * 3600)  # old, but an attachment names it

    svc = live_server.services()
    try:
        removed = attachments.sweep_orphans(svc)
    finally:
        svc.engine.dispose()

    assert removed >= 2
    assert not old_orphan.exists() and not leftover.exists()
    assert young_orphan.exists()  # perhaps an upload between storing its file and committing its row
    assert (folder / named).exists()
    download = api_of(live_server, "submitter-id").get(
        f"{live_server.url}/api/v1/nominations/{n['id']}/attachments/"
        f"{read(live_server, 'submitter-id', n['id']).json()['attachments'][0]['id']}", timeout=TIMEOUT)
    assert download.status_code == 200


def test_the_sweep_from_the_command_line(live_server):
    folder = live_server.instance / "attachments"
    folder.mkdir(exist_ok=True)
    orphan = folder / ("d" * 64)
    orphan.write_bytes(unique_pdf())
    env = {**os.environ, "SCN_DATABASE_URL": live_server.database_url, "SCN_INSTANCE_PATH": str(live_server.instance)}
    env.pop("SCN_BROKER_URL", None)
    command = [os.path.join(os.path.dirname(sys.executable), "scn-workflow"), "attachments", "sweep"]
    kept = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 0, kept.stderr
    assert orphan.exists()  # young: left alone
    swept = subprocess.run(command + ["--grace", "0"], env=env, capture_output=True, text=True, timeout=120)
    assert swept.returncode == 0, swept.stderr
    assert not orphan.exists()
    assert re.search(r"removed [1-9]\d* stored file", swept.stdout), swept.stdout


# --- operators read submitted nominations only -------------------------------------------------------------

def test_operators_do_not_see_drafts_but_see_submitted_nominations(live_server):
    draft = create(live_server, "submitter-vn")
    file_id = upload(live_server, "submitter-vn", draft, unique_pdf()).json()["id"]
    ops = api_of(live_server, "operator")
    base = f"{live_server.url}/api/v1/nominations/{draft['id']}"
    for path in ("", "/events", "/checks", f"/attachments/{file_id}"):
        assert ops.get(base + path, timeout=TIMEOUT).status_code == 404, path
    # as for anyone who may not see a nomination: the same answer as for one that does not exist
    assert ops.get(f"{live_server.url}/api/v1/nominations/2000000000", timeout=TIMEOUT).status_code == 404
    listed = ops.get(f"{live_server.url}/api/v1/nominations", params={"q": draft["city_name"]}, timeout=TIMEOUT)
    assert listed.json()["total"] == 0
    drafts = ops.get(f"{live_server.url}/api/v1/nominations", params={"state": "drafted", "per_page": 100},
                     timeout=TIMEOUT)
    assert drafts.json()["total"] == 0 and drafts.json()["items"] == []
    page = browser_of(live_server, "operator")
    assert page.get(f"/nominations/{draft['id']}").status_code == 404
    assert draft["city_name"] not in page.get("/nominations?q=Upload+test+city").text

    n = read(live_server, "submitter-vn", draft["id"]).json()
    fire(live_server, "submitter-vn", n, "submit")
    assert ops.get(base, timeout=TIMEOUT).status_code == 200
    for path in ("/events", "/checks", f"/attachments/{file_id}"):
        assert ops.get(base + path, timeout=TIMEOUT).status_code == 200, path
    listed = ops.get(f"{live_server.url}/api/v1/nominations", params={"q": draft["city_name"]}, timeout=TIMEOUT)
    assert [item["id"] for item in listed.json()["items"]] == [draft["id"]]
    assert page.get(f"/nominations/{draft['id']}").status_code == 200
    assert draft["city_name"] in page.get("/nominations?q=Upload+test+city").text


# --- accept and reject: a reviewer not of the nomination's member state --------------------------------------

@pytest.fixture(scope="module")
def indonesian_reviewer(live_server):
    response = api_of(live_server, "admin").post(f"{live_server.url}/api/v1/users", timeout=TIMEOUT, json={
        "username": "reviewer-id", "password": ID_REVIEWER_PASSWORD, "email": "reviewer-id@scn-demo.example",
        "role": "reviewer", "member_state": "ID"})
    assert response.status_code == 201, response.text
    return "reviewer-id"


@pytest.mark.parametrize("trigger, body", [("accept", {}), ("reject", {"comment": "Not ready this cycle."})])
def test_a_reviewer_of_the_member_state_may_not_accept_or_reject_but_another_may(live_server, indonesian_reviewer,
                                                                               trigger, body):
    api_of(live_server, indonesian_reviewer, ID_REVIEWER_PASSWORD)
    n = reviewed(live_server, "submitter-id")
    shown = read(live_server, indonesian_reviewer, n["id"]).json()
    assert trigger not in shown["allowed_triggers"]
    refused = api_of(live_server, indonesian_reviewer).post(
        f"{live_server.url}/api/v1/nominations/{n['id']}/transitions", json={"trigger": trigger, **body},
        headers={"If-Match": f'"{n["version"]}"'}, timeout=TIMEOUT)
    assert refused.status_code == 403, refused.text
    assert rules(refused) == ["reviewer_not_of_member_state"]
    assert "ID" in refused.json()["detail"]
    assert read(live_server, "submitter-id", n["id"]).json()["state"] == "reviewed"

    assert trigger in read(live_server, "reviewer-ph", n["id"]).json()["allowed_triggers"]
    done = fire(live_server, "reviewer-ph", n, trigger, **body)
    assert done["state"] == {"accept": "accepted", "reject": "rejected"}[trigger]
