"""The delivery path piece by piece, on real services: the message a commit publishes (Redis and
RabbitMQ), a broker that is away, the kept SMTP connection, a refused mail, and the rule that no
SMTP or HTTP call is made while a database transaction or lock is held."""

from __future__ import annotations

import base64
import json
import threading

import psycopg
import pytest
import redis as redis_py
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.services import checks, handover, nominations, notifications, webhooks
from scn_workflow.services.effects import Outcome
from tests.conftest import ASSESSMENT, build_world, complete_draft, make_services
from tests.integration.conftest import MailSink
from tests.integration.test_worker_faults import lead_agency_webhook, rabbitmqctl

SECRET = "lead-agency-secret-0123456789"


def _app(sqlite_url, tmp_path, broker_url):
    return create_app({"database_url": sqlite_url, "broker_url": broker_url,
                       "instance_path": str(tmp_path), "embedded_autostart": False})


def _events(svc, nomination_id: int) -> dict[str, str]:
    with svc.engine.connect() as c:
        return dict(c.execute(sa.select(t.events.c.name, t.events.c.event_id)
                              .where(t.events.c.nomination_id == nomination_id).order_by(t.events.c.seq)).all())


def test_a_commit_publishes_one_message_per_queue_each_carrying_its_event_id(sqlite_url, tmp_path, redis_server):
    app = _app(sqlite_url, tmp_path, redis_server.url)
    svc = app.extensions["scn"]
    try:
        w = build_world(svc)
        n = nominations.create(svc, w.submitter_id, complete_draft())
        nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        submitted = _events(svc, n.id)["nomination.submitted"]
        client = redis_py.Redis.from_url(redis_server.url)
        queued = {queue: [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
                  for queue in ("checks", "notifications", "handover", "webhooks")}
        client.close()
        # The draft's creation reacts nowhere; the submission goes to the checks and to the mails.
        assert {queue: len(messages) for queue, messages in queued.items()} == {
            "checks": 1, "notifications": 1, "handover": 0, "webhooks": 0}
        for queue, task in (("checks", "scn.checks"), ("notifications", "scn.notifications")):
            message = queued[queue][0]
            assert message["headers"]["task"] == task
            assert message["headers"]["id"] == f"{submitted}:{queue}"
            assert json.loads(base64.b64decode(message["body"]))[0] == [submitted]
        with svc.engine.connect() as c:
            published = dict(c.execute(sa.select(t.outbox.c.event_name, t.outbox.c.published_at.is_not(None))).all())
        assert published == {"nomination.created": True, "nomination.submitted": True}
    finally:
        app.extensions["celery"].close()
        svc.engine.dispose()


def test_a_commit_while_the_broker_is_away_is_kept_for_the_sweep(sqlite_url, tmp_path, broker_url, request):
    app = _app(sqlite_url, tmp_path, broker_url)
    svc = app.extensions["scn"]
    try:
        w = build_world(svc)
        if "redis_server" in request.fixturenames:
            request.getfixturevalue("redis_server").stop()
        else:
            vhost = request.getfixturevalue("rabbitmq_vhost")
            rabbitmqctl("clear_permissions", "-p", vhost.name, "guest")
        n = nominations.create(svc, w.submitter_id, complete_draft())
        nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        assert nominations.get(svc, w.submitter_id, n.id).state == "submitted"  # the change is committed
        with svc.engine.connect() as c:
            rows = c.execute(sa.select(t.outbox.c.event_name, t.outbox.c.published_at, t.outbox.c.last_error)
                             .order_by(t.outbox.c.created_at)).all()
        submitted = [r for r in rows if r.event_name == "nomination.submitted"][0]
        assert submitted.published_at is None and submitted.last_error.startswith("publish failed")
    finally:
        app.extensions["celery"].close()
        svc.engine.dispose()


class RefusingSink(MailSink):
    """An SMTP server that refuses (554 after DATA) the first mail to `refuse`, then accepts all."""

    def __init__(self, refuse: str):
        super().__init__()
        self.refuse, self.refused = refuse, 0
        accept = self.controller.handler.handle_DATA
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if sink.refuse in envelope.rcpt_tos and not sink.refused:
                    sink.refused += 1
                    return "554 5.6.0 refused once by the test"
                return await accept(server, session, envelope)

        self.controller.handler = Handler()


def test_a_refused_mail_is_retried_alone_and_the_others_are_not_sent_again(pg_url, clock, tmp_path):
    sink = RefusingSink("sub-id2@test.example")
    sink.controller.start()
    svc = make_services(pg_url, clock, tmp_path, smtp_url=sink.url)
    try:
        w = build_world(svc)
        n = nominations.create(svc, w.submitter_id, complete_draft())
        nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        submitted = _events(svc, n.id)["nomination.submitted"]
        with pytest.raises(Exception, match="refused once"):
            notifications.notify(svc, submitted)
        assert [m["To"] for m in sink.received()] == ["sub-id@test.example"]
        assert notifications.notify(svc, submitted) == Outcome.DONE  # the retry
        assert notifications.notify(svc, submitted) == Outcome.ALREADY_DONE
        assert sorted(m["To"] for m in sink.received()) == ["sub-id2@test.example", "sub-id@test.example"]
    finally:
        sink.controller.stop()
        svc.engine.dispose()


def test_a_kept_smtp_connection_the_server_closed_is_opened_again(pg_url, clock, tmp_path):
    first = MailSink()
    first.controller.start()
    svc = make_services(pg_url, clock, tmp_path, smtp_url=first.url)
    try:
        w = build_world(svc)
        submitted = []
        for city in ("Banyuwangi", "Makassar"):
            n = nominations.create(svc, w.submitter_id, complete_draft(city))
            nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
            submitted.append(_events(svc, n.id)["nomination.submitted"])
        assert notifications.notify(svc, submitted[0]) == Outcome.DONE
        first.controller.stop()  # the kept connection dies with the server
        second = Controller(first.controller.handler, hostname="127.0.0.1", port=first.port)
        second.start()
        try:
            assert notifications.notify(svc, submitted[1]) == Outcome.DONE
        finally:
            second.stop()
        assert [(m["X-SCN-Event-Id"], m["To"]) for m in first.received()] == [
            (submitted[0], "sub-id@test.example"), (submitted[0], "sub-id2@test.example"),
            (submitted[1], "sub-id@test.example"), (submitted[1], "sub-id2@test.example")]
    finally:
        svc.engine.dispose()


def _held_elsewhere(pg_url: str) -> list[str]:
    """Other sessions of this database inside a transaction, and advisory locks anyone holds."""
    with psycopg.connect(sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False),
                         autocommit=True) as c:
        open_transactions = c.execute(
            "SELECT state, left(query, 80) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL").fetchall()
        advisory = c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
    return [f"{state}: {query}" for state, query in open_transactions] + (["advisory lock"] if advisory else [])


def test_no_smtp_or_http_call_is_made_while_a_transaction_or_lock_is_held(pg_url, clock, tmp_path,
                                                                           webhook_receiver):
    """Each SMTP and HTTP receiver looks at the database while it is being called: no session of the
    service may be inside a transaction then, nor hold an advisory lock."""
    seen: list[list[str]] = []
    sink = MailSink()
    accept = sink.controller.handler.handle_DATA

    class Watching:
        async def handle_DATA(self, server, session, envelope):
            seen.append(_held_elsewhere(pg_url))
            return await accept(server, session, envelope)

    sink.controller.handler = Watching()
    sink.controller.start()

    class WatchedCalls(list):  # the receiver records each POST here before it answers
        def append(self, call):
            seen.append(_held_elsewhere(pg_url))
            super().append(call)

    webhook_receiver.calls = WatchedCalls()
    svc = make_services(pg_url, clock, tmp_path, smtp_url=sink.url)
    try:
        w = build_world(svc)
        lead_agency_webhook(svc, webhook_receiver.url + "/handover")
        webhooks.subscribe(svc, w.admin, webhook_receiver.url + "/subscriber", SECRET, ["nomination.accepted"])
        n = nominations.create(svc, w.submitter_id, complete_draft())
        n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        checks.run_checks(svc, _events(svc, n.id)["nomination.submitted"])
        n = nominations.get(svc, w.reviewer_sg, n.id)
        n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
        n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
        accepted = _events(svc, n.id)["nomination.accepted"]
        assert notifications.notify(svc, accepted) == Outcome.DONE
        assert webhooks.deliver_event(svc, accepted) == Outcome.DONE
        assert handover.deliver(svc, accepted) == Outcome.DONE
        assert nominations.get(svc, w.submitter_id, n.id).state == "handed_over"
    finally:
        sink.controller.stop()
        svc.engine.dispose()
    # 2 mails to the submitters, the package mail; the subscriber and the lead agency's webhook.
    assert len(seen) == 5 and len(sink.received()) == 3 and len(webhook_receiver.calls) == 2
    assert seen == [[]] * 5, seen


def test_two_copies_of_a_message_at_once_call_out_once(pg_url, clock, tmp_path, webhook_receiver):
    """A copy that finds the event claimed by a worker still at it leaves the work to that worker."""
    svc = make_services(pg_url, clock, tmp_path)
    try:
        w = build_world(svc)
        webhooks.subscribe(svc, w.admin, webhook_receiver.url + "/subscriber", SECRET, ["nomination.created"])
        n = nominations.create(svc, w.submitter_id, complete_draft())
        created = _events(svc, n.id)["nomination.created"]
        webhook_receiver.delay = 0.5
        outcomes = []
        threads = [threading.Thread(target=lambda: outcomes.append(webhooks.deliver_event(svc, created)))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert sorted(outcomes) == sorted([Outcome.DONE, Outcome.IN_PROGRESS])
        assert len(webhook_receiver.calls) == 1
        assert webhooks.deliver_event(svc, created) == Outcome.ALREADY_DONE
    finally:
        svc.engine.dispose()
