"""The Flask app on a real SQLite database: health, readiness and the public register."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import sqlalchemy as sa

from scn_workflow.app import create_app
from scn_workflow.db import engine as engine_module
from scn_workflow.db import tables as t
from scn_workflow.domain.model import SYSTEM
from scn_workflow.services import checks, nominations
from tests.conftest import ASSESSMENT, PASSWORD, build_world, complete_draft, make_services

UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/x"


def _app(url: str, instance_path):
    # No background worker: these tests look at pages, not at reactions.
    app = create_app({"database_url": url, "instance_path": str(instance_path), "embedded_autostart": False})
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(sqlite_url, tmp_path):
    app = _app(sqlite_url, tmp_path / "instance")
    yield app.test_client()
    app.extensions["scn"].engine.dispose()


@pytest.fixture
def web_svc(sqlite_url, clock, tmp_path):
    services = make_services(sqlite_url, clock, tmp_path)
    yield services
    services.engine.dispose()


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_with_a_reachable_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"] == {"database": "ok", "broker": "embedded"}
    assert "failed" not in body


def test_readyz_names_an_unreachable_database(tmp_path):
    app = _app(UNREACHABLE_POSTGRES, tmp_path / "instance")
    try:
        response = app.test_client().get("/readyz")
    finally:
        app.extensions["scn"].engine.dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not ready"
    assert body["failed"] == ["database"]
    assert body["checks"]["database"].startswith("failed")
    assert body["checks"]["broker"] == "embedded"
    assert "127.0.0.1:1" not in response.get_data(as_text=True)  # no connection details leak out


def test_readyz_does_not_hang_on_a_database_that_never_answers(tmp_path, monkeypatch):
    """A server that accepts the connection and then says nothing (a hung PostgreSQL)."""
    monkeypatch.setattr(engine_module, "CONNECT_TIMEOUT_S", 1)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = _app(f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/x", tmp_path / "instance")
        started = time.monotonic()
        answers = []
        probe = threading.Thread(target=lambda: answers.append(app.test_client().get("/readyz")), daemon=True)
        probe.start()
        probe.join(10)
        took = time.monotonic() - started
    probe.join(10)  # closing the socket ends a probe that hung
    app.extensions["scn"].engine.dispose()
    assert took < 10, "/readyz still had no answer after 10 s"
    response = answers[0]
    assert response.status_code == 503
    assert response.get_json()["failed"] == ["database"]


def _walk(svc, world, city, target):
    """Drive a nomination of Indonesia to `target` through the service layer."""
    n = nominations.create(svc, world.submitter_id, complete_draft(city))
    if target == "drafted":
        return n
    if target == "withdrawn":
        return nominations.fire(svc, world.submitter_id, n.id, "withdraw", n.version)
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    if target == "submitted":
        return n
    with svc.engine.connect() as c:
        submission = c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == n.id, t.events.c.name == "nomination.submitted"))
    checks.run_checks(svc, submission)
    n = nominations.get(svc, world.reviewer_sg, n.id)
    n = nominations.fire(svc, world.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    if target == "reviewed":
        return n
    if target == "rejected":
        return nominations.fire(svc, world.reviewer_ph, n.id, "reject", n.version, comment="Not this time.")
    n = nominations.fire(svc, world.reviewer_ph, n.id, "accept", n.version)
    if target == "accepted":
        return n
    with svc.engine.begin() as c:
        c.execute(sa.insert(t.deliveries).values(nomination_id=n.id, event_id="placeholder", channel="email",
                                                 target="lead@id.example", status="accepted", attempts=1,
                                                 created_at=svc.clock()))
    return nominations.fire(svc, SYSTEM, n.id, "hand_over", n.version)


def test_the_register_lists_only_accepted_and_handed_over_cities(client, web_svc):
    world = build_world(web_svc)
    # Drafts of Indonesia, one per state; the cycle's limit is lifted so they can all be live at once.
    with web_svc.engine.begin() as c:
        c.execute(sa.insert(t.limit_overrides).values(cycle_code="ASCN-2026", member_state="ID", limit=10,
                                                      reason="test: one nomination in every state",
                                                      set_by="root", set_at=web_svc.clock()))
    hidden = {"drafted": "Hidden Draft City", "submitted": "Hidden Submitted City",
              "reviewed": "Hidden Reviewed City", "rejected": "Hidden Rejected City",
              "withdrawn": "Hidden Withdrawn City"}
    for state, city in hidden.items():
        assert _walk(web_svc, world, city, state).state == state
    accepted = _walk(web_svc, world, "Makassar", "accepted")
    handed_over = _walk(web_svc, world, "Banyuwangi", "handed_over")
    hostile = _walk(web_svc, world, '<script>alert("x")</script> & Co (placeholder)', "accepted")

    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<h1>Cities accepted into the ASEAN Smart Cities Network</h1>" in page
    assert "3 nominations." in page
    for n in (accepted, handed_over, hostile):
        assert n.reference in page
        assert f'<a href="/cities/{n.id}">' in page  # each row leads to the city's public page
    assert ">Makassar</a>" in page and ">Banyuwangi</a>" in page
    assert ">Indonesia<" in page and ">ID<" not in page  # the member state's name, not its code
    assert ">Accepted<" in page and ">Handed over<" in page
    assert ">ASCN-2026<" in page  # the cycle of the decision
    for city in hidden.values():
        assert city not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co (placeholder)" in page

    searched = client.get("/", query_string={"q": "makassar"}).get_data(as_text=True)
    assert "1 nomination." in searched and "Makassar" in searched and "Banyuwangi" not in searched
    assert "Hidden Draft City" not in client.get("/", query_string={"q": "hidden"}).get_data(as_text=True)


def test_the_register_escapes_the_search_box(client):
    page = client.get("/", query_string={"q": '"><img src=x onerror=alert(1)>'}).get_data(as_text=True)
    assert "<img src=x" not in page
    assert "No nominations found." in page


def test_an_accepted_city_has_a_public_page_without_personal_data(client, web_svc):
    world = build_world(web_svc)
    accepted = _walk(web_svc, world, "Makassar", "accepted")
    reviewed = _walk(web_svc, world, "Hidden Reviewed City", "reviewed")
    withdrawn = _walk(web_svc, world, "Hidden Withdrawn City", "withdrawn")

    response = client.get(f"/cities/{accepted.id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Makassar <small>Indonesia</small></h1>" in page
    assert "Accepted into the ASEAN Smart Cities Network on" in page and "in the ASCN-2026 cycle." in page
    assert "A test vision." in page and "Civic and Social, Quality Environment" in page
    assert "<li>Village e-services</li>" in page and "<li>Clean rivers</li>" in page
    for private in ("Test Officer", "csco@banyuwangi.example", "sub-id", "rev-sg", "rev-ph", "@test.example"):
        assert private not in page, private
    for hidden in (reviewed, withdrawn):
        assert client.get(f"/cities/{hidden.id}").status_code == 404
    assert client.get("/cities/999999").status_code == 404
    assert client.get("/cities/99999999999").status_code == 404


def test_the_embedded_worker_records_its_task_runs_for_the_dashboard(sqlite_url, tmp_path):
    from scn_workflow.services import ops
    app = _app(sqlite_url, tmp_path / "instance")
    svc = app.extensions["scn"]
    try:
        world = build_world(svc)
        n = nominations.create(svc, world.submitter_id, complete_draft())
        nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
        worker = app.extensions["scn_embedded_worker"]
        assert worker.run_once() >= 2  # the checks and the mails of the submission
        outcomes = ops.task_outcomes(svc)["hour"]
        assert outcomes["scn.checks"]["succeeded"] == 1 and outcomes["scn.notifications"]["succeeded"] == 1
        assert outcomes["scn.checks"]["median_ms"] is not None
        with svc.engine.connect() as c:
            assert c.scalar(sa.select(t.task_runs.c.worker).limit(1)).startswith("embedded@")
        signed_in = app.test_client()
        login = signed_in.get("/login").get_data(as_text=True)
        import re
        token = re.search(r'name="csrf_token" value="([^"]+)"', login).group(1)
        signed_in.post("/login", data={"username": "ops", "password": PASSWORD, "csrf_token": token})
        dashboard = signed_in.get("/ops").get_data(as_text=True)
        assert "No tasks ran." not in dashboard and "<td>scn.checks</td><td>1</td>" in dashboard
    finally:
        svc.engine.dispose()
