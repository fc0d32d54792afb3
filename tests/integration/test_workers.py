"""The event-driven core with real parts: Redis, `celery -A worker worker`, an SMTP server and a
webhook receiver. A nomination walked from drafted to handed_over causes exactly the expected
mails and webhook calls, once each."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import sqlalchemy as sa

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.services import nominations, webhooks
from tests.conftest import ASSESSMENT, LOOPBACK, build_world, complete_draft
from tests.integration.conftest import body_json, wait_for, worker_env

SECRET = "lead-agency-secret-0123456789"
SUB_SECRET = "subscriber-secret-0123456789"


@pytest.fixture
def stack(pg_url, broker_url, smtp_server, webhook_receiver, start_worker, tmp_path, clock):
    """The web side (this process, publishing after commit) and one worker process, on Redis or RabbitMQ."""
    app = create_app({"database_url": pg_url, "broker_url": broker_url, "smtp_url": smtp_server.url,
                      "instance_path": str(tmp_path / "web"), "redeliver_after_s": 3.0,
                      "webhook_allowed_networks": LOOPBACK})
    svc = app.extensions["scn"]
    world = build_world(svc)
    with svc.engine.begin() as c:
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(
            lead_agency_webhook_url=webhook_receiver.url + "/handover", lead_agency_webhook_secret=SECRET))
    env = worker_env(pg_url, broker_url, smtp_server.url, tmp_path / "worker")
    worker = start_worker(env)
    yield app, svc, world, worker
    app.extensions["celery"].close()  # its broker connections
    svc.engine.dispose()


def _outbox_complete(svc):
    with svc.engine.connect() as c:
        return c.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.completed_at.is_(None))) == 0


def test_lifecycle_mails_and_webhooks_once_each(stack, smtp_server, webhook_receiver):
    app, svc, w, worker = stack
    webhooks.subscribe(svc, w.admin, webhook_receiver.url + "/subscriber", SUB_SECRET,
                       ["nomination.submitted", "nomination.handed_over"])
    n = nominations.create(svc, w.submitter_id, complete_draft())
    n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
    n = wait_for(lambda: (x := nominations.get(svc, w.reviewer_sg, n.id)).checks_outcome == "passed" and x,
                 30, what="checks to complete")
    n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
    wait_for(lambda: nominations.get(svc, w.submitter_id, n.id).state == "handed_over", 30,
             what="the handover worker to hand over")
    wait_for(lambda: _outbox_complete(svc), 30, what="every reaction to be recorded")

    # Mails: submitters of ID (sub-id, sub-id2) hear of submitted, reviewed, accepted, handed_over;
    # reviewers not of ID (rev-sg, rev-ph) hear checks completed; the lead agency hears handed_over.
    got = sorted((m["X-SCN-Event"], m["To"]) for m in smtp_server.received())
    expected = sorted(
        [(e, u) for e in ("nomination.submitted", "nomination.reviewed", "nomination.accepted",
                          "nomination.handed_over") for u in ("sub-id@test.example", "sub-id2@test.example")]
        + [("checks.completed", "rev-sg@test.example"), ("checks.completed", "rev-ph@test.example"),
           ("nomination.handed_over", "lead@id.example"), ("nomination.accepted", "lead@id.example")])
    assert got == expected
    package_mail = [m for m in smtp_server.received() if m["To"] == "lead@id.example"
                    and m["X-SCN-Event"] == "nomination.accepted"][0]
    assert "Handover package" in package_mail["Subject"]
    text = [m for m in smtp_server.received() if m["X-SCN-Event"] == "nomination.reviewed"][0]
    assert n.reference in text["Subject"] and "Banyuwangi" in text["Subject"]

    # The lead agency's webhook got the package once, signed; the subscriber got its two events.
    handover = webhook_receiver.accepted("/handover")
    assert len(handover) == 1
    call = handover[0]
    assert call["headers"]["x-scn-signature"] == "sha256=" + hmac.new(SECRET.encode(), call["body"],
                                                                      hashlib.sha256).hexdigest()
    assert call["headers"]["x-scn-event"] == "nomination.accepted"
    package = body_json(call)
    assert package["nomination"]["reference"] == n.reference
    assert [e["name"] for e in package["audit_trail"]][-1] == "nomination.accepted"
    assert {c["name"] for c in package["checks"]} >= {"completeness", "duplicate_city"}
    subscriber = webhook_receiver.accepted("/subscriber")
    assert sorted(c["headers"]["x-scn-event"] for c in subscriber) == ["nomination.handed_over",
                                                                       "nomination.submitted"]
    assert all(c["headers"]["idempotency-key"] == body_json(c)["event_id"] for c in subscriber)
    with svc.engine.connect() as c:
        statuses = c.execute(sa.select(t.deliveries.c.channel, t.deliveries.c.status)).all()
    assert sorted(statuses) == [("email", "accepted"), ("webhook", "accepted")]


def test_task_outcomes_and_heartbeats_are_recorded_by_the_worker(stack):
    app, svc, w, worker = stack
    n = nominations.create(svc, w.submitter_id, complete_draft())
    nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
    wait_for(lambda: _outbox_complete(svc), 30, what="the submission's reactions")
    with svc.engine.connect() as c:
        runs = c.execute(sa.select(t.task_runs.c.task, t.task_runs.c.outcome)).all()
        beats = wait_for(lambda: c.execute(sa.select(t.worker_heartbeats)).all(), 15, what="a heartbeat")
    assert ("scn.checks", "succeeded") in runs and ("scn.notifications", "succeeded") in runs
    assert set(beats[0].queues) == {"checks", "notifications", "handover", "webhooks"}
