"""Batches: the relay sends a burst of events to a queue as one message, and a real worker handles
them in one task: every mail arrives once, and a mail the SMTP server refuses at the last step
sends its event on alone to be retried, while the rest of the batch is done and not done again."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.services import nominations, relay
from scn_workflow.workers import publisher
from tests.conftest import complete_draft, make_services
from tests.integration.conftest import free_port, wait_for, worker_env
from tests.integration.test_worker_faults import (CITIES, add_submitters, assert_same_mails, build_world,
                                                  expected_mails, incomplete_outbox, notification_mails,
                                                  set_limits)


class RefusingSink:
    """An aiosmtpd server that answers 554 at the end of DATA to the first mail for `refuse`, then
    accepts everything; it keeps what it accepted."""

    def __init__(self, refuse: str):
        from aiosmtpd.controller import Controller
        self.messages, self.refused, self.refuse = [], [], refuse
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes
                message = message_from_bytes(envelope.content)
                with sink._lock:
                    if sink.refuse in envelope.rcpt_tos and not sink.refused:
                        sink.refused.append(message)
                        return "554 5.6.0 refused once by the test"
                    sink.messages.append(message)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.url = f"smtp://127.0.0.1:{self.port}"

    def received(self):
        with self._lock:
            return list(self.messages)


def submit_many(svc, w, count: int) -> list[int]:
    submitters = add_submitters(svc)
    set_limits(svc, 100)
    ids = []
    for i in range(count):
        member_state = ("ID", "MY", "PH", "VN")[i % 4]
        actor = w.submitter_id if member_state == "ID" else submitters[member_state]
        n = nominations.create(svc, actor, complete_draft(CITIES[member_state][i // 4 % len(CITIES[member_state])]))
        nominations.fire(svc, actor, n.id, "submit", n.version)
        ids.append(n.id)
    return ids


@pytest.fixture
def batch_stack(pg_url, broker_url, tmp_path, clock):
    """The web side's app (publishing), a plain service layer that commits without publishing (so a
    burst waits in the outbox), and the worker's environment."""
    def make(smtp_url):
        app = create_app({"database_url": pg_url, "broker_url": broker_url, "smtp_url": smtp_url,
                          "instance_path": str(tmp_path / "web")})
        quiet = make_services(pg_url, clock, tmp_path / "quiet", smtp_url=smtp_url)
        env = worker_env(pg_url, broker_url, smtp_url, tmp_path / "worker", SCN_REDELIVER_AFTER_S="60")
        made.append((app, quiet))
        return app, quiet, env

    made = []
    yield make
    for app, quiet in made:
        app.extensions["celery"].close()
        quiet.engine.dispose()
        app.extensions["scn"].engine.dispose()


def publish_burst(app) -> list[tuple[str, int]]:
    """Publish everything due in the outbox once, as the sweep would; returns (queue, events) per message."""
    messages = []
    publish = publisher(app.extensions["celery"])

    def recording(queue, event_ids, **kwargs):
        messages.append((queue, len(event_ids)))
        publish(queue, event_ids, **kwargs)

    relay.publish(app.extensions["scn"], recording)
    return messages


def test_a_burst_travels_as_one_message_a_queue_and_every_mail_arrives_once(batch_stack, smtp_server,
                                                                             start_worker):
    app, quiet, env = batch_stack(smtp_server.url)
    w = build_world(quiet)
    submit_many(quiet, w, 12)

    assert sorted(publish_burst(app)) == [("checks", 12), ("notifications", 12)]
    start_worker(env)
    wait_for(lambda: incomplete_outbox(quiet) == 0, 60, interval=0.2, what="every reaction of the burst")
    expected = expected_mails(quiet, ["nomination.submitted", "checks.completed"])
    # Submitted: ID's 2 submitters, MY's, PH's and VN's one each (3 of each state: 15); checks
    # completed: the reviewers of other states, 2 for ID and PH, 3 for MY and VN (30).
    assert sum(expected.values()) == 45
    wait_for(lambda: sum(notification_mails(smtp_server).values()) >= sum(expected.values()), 10,
             what="the last mails")
    assert_same_mails(notification_mails(smtp_server), expected)
    with quiet.engine.connect() as c:
        runs = c.execute(sa.select(t.task_runs.c.task, t.task_runs.c.outcome)).all()
    # The burst's 12 submissions were checked in one task and announced in another.
    assert runs.count(("scn.checks", "succeeded")) == 1
    assert ("scn.notifications", "succeeded") in runs


def test_a_mail_refused_in_a_batch_is_retried_alone_and_nothing_else_is_sent_twice(batch_stack, start_worker):
    refused_to = "sub-my@test.example"
    sink = RefusingSink(refused_to)
    sink.controller.start()
    try:
        app, quiet, env = batch_stack(sink.url)
        w = build_world(quiet)
        submit_many(quiet, w, 8)
        with quiet.engine.begin() as c:  # only the notifications of the 8 submissions: one message
            c.execute(sa.update(t.outbox).where(t.outbox.c.event_name == "nomination.submitted")
                      .values(queues=["notifications"]))
        assert publish_burst(app) == [("notifications", 8)]
        start_worker(env)
        wait_for(lambda: incomplete_outbox(quiet) == 0, 60, interval=0.2, what="the batch and the retry")

        expected = expected_mails(quiet, ["nomination.submitted"])
        wait_for(lambda: len(sink.received()) >= sum(expected.values()), 10, what="the retried mail")
        assert_same_mails(notification_mails(sink), expected)  # the refused one too, once
        assert [m["To"] for m in sink.refused] == [refused_to]
        retried = sink.refused[0]["X-SCN-Event-Id"]
        with quiet.engine.connect() as c:
            runs = c.execute(sa.select(t.task_runs.c.event_id, t.task_runs.c.outcome)
                             .where(t.task_runs.c.task == "scn.notifications")).all()
        # The batch, then the refused event's own message, which found only its missing mail to send.
        assert len(runs) == 2 and all(outcome == "succeeded" for _, outcome in runs)
        assert runs[-1].event_id == retried
    finally:
        sink.controller.stop()


def test_a_kept_smtp_connection_the_server_closed_is_reopened(pg_url, clock, tmp_path):
    """The worker keeps its SMTP connections open between tasks; when the server restarts meanwhile,
    the next mails go out over new connections, once each, without a failure or a retry."""
    from aiosmtpd.controller import Controller

    from scn_workflow.services import notifications
    from tests.integration.conftest import MailSink
    first = MailSink()
    first.controller.start()
    svc = make_services(pg_url, clock, tmp_path, smtp_url=first.url)
    try:
        w = build_world(svc)
        submit_many(svc, w, 2)
        with svc.engine.connect() as c:
            submitted = list(c.scalars(sa.select(t.events.c.event_id).where(
                t.events.c.name == "nomination.submitted").order_by(t.events.c.seq, t.events.c.nomination_id)))
        assert notifications.notify_many(svc, submitted[:1]) == (2, {})  # ID's two submitters
        first.controller.stop()
        # The same address, a new server: the kept connections are dead.
        second = Controller(first.controller.handler, hostname="127.0.0.1", port=first.port)
        second.start()
        try:
            assert notifications.notify_many(svc, submitted[1:]) == (1, {})  # MY's submitter
            # The handler (shared by both servers) kept every mail: each once, the last after the restart.
            assert [m["To"] for m in first.received()] == [
                "sub-id@test.example", "sub-id2@test.example", "sub-my@test.example"]
        finally:
            second.stop()
    finally:
        svc.engine.dispose()


def test_the_relay_counts_in_flight_only_what_was_published_lately(pg_svc, clock):
    """What the relay's wait grows with: events published in the last 10 s and not yet complete."""
    svc = pg_svc
    submit_many(svc, build_world(svc), 3)  # 3 created and 3 submitted events in the outbox, none published
    assert relay.in_flight(svc) == 0
    relay.publish(svc, lambda queue, event_ids, **_: None)  # the created ones need no queue: complete
    assert relay.in_flight(svc) == 3
    clock.advance(seconds=relay.IN_FLIGHT_WINDOW_S + 1)
    assert relay.in_flight(svc) == 0  # still incomplete, but stale: the sweep's business
