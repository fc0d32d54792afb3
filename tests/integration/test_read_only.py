"""Reads do not write: every GET of the app, pages and API, answers while another connection holds
the SQLite database's write lock.

A unit of work that is not read-only begins with BEGIN IMMEDIATE, which waits for that lock and
then fails with "database is locked"; a read-only one begins with a plain BEGIN and reads on.
"""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import acknowledgements, attachments, nominations, web_sessions
from tests.api_support import PDF, open_api
from tests.conftest import complete_draft

LOCK_WAIT_MS = 200  # how long a blocked writer waits here before it gives up (the app's own is 10 s)
# Who asks for what: the default is the admin, who may see every page and every nomination.
ASKER = {"ui.new_nomination": "sub-id", "ui.edit_nomination": "sub-id", "ui.review_form": "rev-sg"}
SKIPPED = {"static", "swagger_assets"}  # files from disk, named by a path parameter


@pytest.fixture
def site(sqlite_url, clock, tmp_path):
    """The app on SQLite with a draft and a submitted nomination, each with an attachment."""
    api = open_api(sqlite_url, clock, tmp_path)
    svc, world = api.svc, api.world
    draft = nominations.create(svc, world.submitter_id, complete_draft("Banyuwangi"))
    attachments.add(svc, world.submitter_id, draft.id, "action_plan", "plan.pdf", PDF)
    submitted = nominations.create(svc, world.submitter_id, complete_draft("Makassar"))
    file = attachments.add(svc, world.submitter_id, submitted.id, "action_plan", "plan.pdf", PDF)
    nominations.fire(svc, world.submitter_id, submitted.id, "submit", None)
    # The public page of an accepted city: the state set directly, as only its reading is tested here.
    accepted = nominations.create(svc, world.submitter_id, complete_draft("DKI Jakarta"))
    with svc.engine.begin() as connection:
        connection.execute(sa.update(t.nominations).where(t.nominations.c.id == accepted.id).values(state="accepted"))
    for username in ("root", *ASKER.values()):
        api.token(username)
    # A writer blocked by the lock gives up after LOCK_WAIT_MS instead of the app's 10 s.
    sa.event.listen(svc.engine, "connect",
                    lambda connection, _record: connection.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}"))
    svc.engine.dispose()
    submit_event = nominations.events(svc, world.submitter_id, submitted.id)[-1]["event_id"]
    yield api, {"draft": draft.id, "submitted": submitted.id, "accepted": accepted.id, "attachment": file["id"],
                "handover_token": acknowledgements.make_token(svc, submitted.id, submit_event)}
    svc.engine.dispose()


def get_urls(app, ids: dict) -> list[tuple[str, str]]:
    """(endpoint, URL) of every GET route of the app, its parameters filled from `ids`."""
    out = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in rule.methods or rule.endpoint in SKIPPED:
                continue
            nomination = ids["draft"] if rule.endpoint == "ui.edit_nomination" else ids["submitted"]
            if rule.endpoint == "pages.city":
                nomination = ids["accepted"]
            values = {"nomination_id": nomination, "attachment_id": ids["attachment"], "trigger": "withdraw",
                      "username": "root", "token": ids["handover_token"]}
            out.append((rule.endpoint, rule.build({k: values[k] for k in rule.arguments}, append_unknown=False)[1]))
    return out


@pytest.fixture
def write_lock(sqlite_url):
    """Another connection holding the database's write lock."""
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield
    holder.execute("ROLLBACK")
    holder.close()


@pytest.fixture
def session_ids(site):
    """A signed-in web session of each asker, started before the lock (starting one writes)."""
    api, _ = site
    return {username: web_sessions.start(api.svc, username) for username in {*ASKER.values(), "root"}}


def test_every_get_answers_while_the_database_is_locked_for_writing(site, session_ids, write_lock):
    api, ids = site
    urls = get_urls(api.app, ids)
    assert {"pages.index", "ui.show_nomination", "ops_pages.dashboard", "nominations.get_nomination",
            "ops.get_status"} <= {endpoint for endpoint, _ in urls}
    failed = []
    for endpoint, url in urls:
        username = ASKER.get(endpoint, "root")
        client = api.app.test_client()
        with client.session_transaction() as session:
            session["sid"] = session_ids[username]
        # A page whose reads failed would sign its visitor out (to /login); /home redirects by role.
        with client.get(url, headers={"Authorization": f"Bearer {api.token(username)}"},
                        follow_redirects=True) as response:
            if response.status_code != 200 or (response.request.path == "/login" and url != "/login"):
                failed.append(f"{url} ({endpoint}) as {username}: {response.status_code} {response.request.path}")
    assert not failed, "GETs that did not answer while another connection writes:\n" + "\n".join(failed)


def test_a_writing_unit_of_work_waits_for_the_lock(site, write_lock):
    """The premise of the test above: the lock it holds stops whatever begins to write."""
    api, _ = site
    with pytest.raises(sa.exc.OperationalError, match="locked"):
        with api.svc.uow() as uow:
            uow.session.execute(sa.text("SELECT 1"))
    with api.svc.uow(read_only=True) as uow:
        assert uow.session.execute(sa.text("SELECT 1")).scalar() == 1
