"""The workers under faults: a SIGKILLed worker, a Redis outage, a failing lead agency endpoint,
retries that run out, redelivered messages, two relays at once, and the embedded worker.

Each test asserts what users see: the mails that arrive (counted by event and recipient), the
lead agency's webhook calls, the nomination's state and audit trail, the operator's failures.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.domain.model import Actor, Role
from scn_workflow.services import handover, nominations, outbox, webhooks
from scn_workflow.services.reactions import HANDLERS
from tests.conftest import ASSESSMENT, LOOPBACK, build_world, complete_draft, make_services
from tests.integration.conftest import BIN, ROOT, body_json, free_port, wait_for, worker_env

SECRET = "lead-agency-secret-0123456789"
SUB_SECRET = "subscriber-secret-0123456789"
CYCLE = "ASCN-2026"
CHECK_NAMES = ["completeness", "duplicate_city", "focus_areas_covered", "state_limit"]

# Cities of the ASCN cohorts (reference/ascn.json), by member state.
CITIES = {
    "ID": ["Banyuwangi", "DKI Jakarta", "Makassar", "Sumedang"],
    "TH": ["Bangkok", "Chonburi", "Phuket", "Chiang Mai", "Khon Kaen", "Rayong"],
    "MY": ["Johor Bahru", "Kota Kinabalu", "Kuala Lumpur", "Kuching"],
    "PH": ["Cebu City", "Davao City", "Manila"],
    "VN": ["Da Nang", "Hanoi", "Ho Chi Minh City"],
}
# build_world has submitters for ID (two) and TH; these add one for each other state used here.
EXTRA_SUBMITTERS = {"MY": "sub-my", "PH": "sub-ph", "VN": "sub-vn"}
SUBMITTERS = {"ID": ["sub-id", "sub-id2"], "TH": ["sub-th"]} | {ms: [u] for ms, u in EXTRA_SUBMITTERS.items()}
REVIEWERS = {"rev-sg": "SG", "rev-ph": "PH", "rev-id": "ID"}


def address(username: str) -> str:
    return f"{username}@test.example"


def expected_recipients(event_name: str, member_state: str) -> list[str]:
    """Who the design says hears of an event: the state's submitters, or reviewers of other states."""
    if event_name == "checks.completed":
        return [address(u) for u, ms in REVIEWERS.items() if ms != member_state]
    return [address(u) for u in SUBMITTERS[member_state]]


def lead_agency_webhook(svc, url: str) -> None:
    """Indonesia's lead agency takes the handover package at `url`, signed with SECRET."""
    with svc.engine.begin() as c:
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(
            lead_agency_webhook_url=url, lead_agency_webhook_secret=SECRET))


def add_submitters(svc) -> dict[str, Actor]:
    with svc.engine.begin() as c:
        c.execute(sa.insert(t.users), [{"username": u, "email": address(u), "role": "submitter",
                                        "member_state": ms, "password_hash": "!"}
                                       for ms, u in EXTRA_SUBMITTERS.items()])
    return {ms: Actor(u, Role.SUBMITTER, ms) for ms, u in EXTRA_SUBMITTERS.items()}


def set_limits(svc, limit: int) -> None:
    """An admin's recorded override of the per-state limit, so one state can submit many."""
    with svc.engine.begin() as c:
        c.execute(sa.insert(t.limit_overrides), [
            {"cycle_code": CYCLE, "member_state": ms, "limit": limit, "reason": "worker fault test",
             "set_by": "root", "set_at": datetime(2026, 1, 2, tzinfo=timezone.utc)} for ms in CITIES])


def notification_mails(smtp_server) -> Counter:
    """(event id, recipient) of every notification mail that arrived, with how often it arrived."""
    return Counter((m["X-SCN-Event-Id"], m["To"]) for m in smtp_server.received() if m["X-SCN-Event-Id"])


def package_mails(smtp_server) -> list:
    return [m for m in smtp_server.received() if "Handover package" in (m["Subject"] or "")]


def expected_mails(svc, event_names) -> Counter:
    """Every (event id, recipient) the design promises for the stored events named, once each."""
    with svc.engine.connect() as c:
        rows = c.execute(sa.select(t.events.c.event_id, t.events.c.name, t.nominations.c.member_state)
                         .join(t.nominations, t.nominations.c.id == t.events.c.nomination_id)
                         .where(t.events.c.name.in_(event_names))).all()
    return Counter({(event_id, to): 1 for event_id, name, ms in rows for to in expected_recipients(name, ms)})


def incomplete_outbox(svc) -> int:
    with svc.engine.connect() as c:
        return c.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.completed_at.is_(None)))


def assert_nothing_lost(smtp_server, expected: Counter) -> int:
    """The guarantee of DESIGN.md: every expected mail arrived, nothing unexpected did, and a mail that
    arrived more than once is the same message each time (the same Message-ID). Returns the repeats."""
    got = notification_mails(smtp_server)
    missing = sorted(k for k in expected if k not in got)
    extra = sorted(k for k in got if k not in expected)
    assert not (missing or extra), (f"{len(missing)} lost, {len(extra)} unexpected; "
                                    f"lost {missing[:5]}, unexpected {extra[:5]}")
    ids: dict[tuple, set] = {}
    for m in smtp_server.received():
        if m["X-SCN-Event-Id"]:
            ids.setdefault((m["X-SCN-Event-Id"], m["To"]), set()).add(m["Message-ID"])
    assert {k: v for k, v in ids.items() if len(v) > 1} == {}, "a repeated mail is not the same message"
    return sum(n - 1 for n in got.values())


def assert_same_mails(got: Counter, expected: Counter) -> None:
    missing = sorted(k for k in expected if k not in got)
    extra = sorted(k for k in got if k not in expected)
    twice = sorted((k, n) for k, n in got.items() if n > 1)
    assert not (missing or extra or twice), (
        f"{len(missing)} missing, {len(extra)} unexpected, {len(twice)} more than once; "
        f"missing {missing[:5]}, unexpected {extra[:5]}, more than once {twice[:5]}")


def checks_per_submission(svc) -> dict[str, list[str]]:
    with svc.engine.connect() as c:
        submissions = c.scalars(sa.select(t.events.c.event_id).where(t.events.c.name == "nomination.submitted")).all()
        rows = c.execute(sa.select(t.checks.c.event_id, t.checks.c.name)).all()
    out: dict[str, list[str]] = {event_id: [] for event_id in submissions}
    for event_id, name in rows:
        out.setdefault(event_id, []).append(name)
    return {event_id: sorted(names) for event_id, names in out.items()}


def events_of(svc, nomination_id: int) -> list:
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.events).where(t.events.c.nomination_id == nomination_id)
                         .order_by(t.events.c.seq)).all()


@dataclass
class Stack:
    app: object
    svc: object
    world: object
    env: dict
    submitters: dict


def make_stack(broker_url, pg_url, smtp_server, webhook_receiver, tmp_path):
    """The web side in this process (publishing after commit) and the env of a worker process.

    Indonesia's lead agency has a signed webhook (the test's receiver) and an email.
    """
    app = create_app({"database_url": pg_url, "broker_url": broker_url, "smtp_url": smtp_server.url,
                      "instance_path": str(tmp_path / "web"), "redeliver_after_s": 3.0,
                      "webhook_allowed_networks": LOOPBACK})
    svc = app.extensions["scn"]
    world = build_world(svc)
    lead_agency_webhook(svc, webhook_receiver.url + "/handover")
    submitters = {"ID": world.submitter_id, "TH": world.submitter_th} | add_submitters(svc)
    env = worker_env(pg_url, broker_url, smtp_server.url, tmp_path / "worker")
    return Stack(app, svc, world, env, submitters)


@pytest.fixture
def stack(pg_url, redis_server, smtp_server, webhook_receiver, tmp_path):
    made = make_stack(redis_server.url, pg_url, smtp_server, webhook_receiver, tmp_path)
    yield made
    made.app.extensions["celery"].close()  # its broker connections
    made.svc.engine.dispose()


@pytest.fixture
def any_broker_stack(pg_url, broker_url, smtp_server, webhook_receiver, tmp_path):
    """The same on each broker: Redis and RabbitMQ."""
    made = make_stack(broker_url, pg_url, smtp_server, webhook_receiver, tmp_path)
    yield made
    made.app.extensions["celery"].close()
    made.svc.engine.dispose()


def accept(svc, w, city: str = "Banyuwangi"):
    """Draft, submit, wait for the worker's checks, review and accept a nomination of Indonesia."""
    n = nominations.create(svc, w.submitter_id, complete_draft(city))
    n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
    n = wait_for(lambda: (x := nominations.get(svc, w.reviewer_sg, n.id)).checks_outcome == "passed" and x,
                 30, what="the checks worker to pass the submission")
    n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    return nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)


def accepted_event_id(svc, nomination_id: int) -> str:
    return [e.event_id for e in events_of(svc, nomination_id) if e.name == "nomination.accepted"][-1]


# 1. SIGKILL in the middle -------------------------------------------------------------------

PER_STATE = 40  # 5 states x 40: 200 submissions, each causing checks.completed too; 760 mails


def test_sigkill_mid_stream_loses_nothing_and_repeats_only_the_same_message(any_broker_stack, smtp_server,
                                                                           webhook_receiver, start_worker):
    stack = any_broker_stack
    svc = stack.svc
    set_limits(svc, PER_STATE)
    webhooks.subscribe(svc, stack.world.admin, webhook_receiver.url + "/subscriber", SUB_SECRET,
                       ["nomination.submitted", "checks.completed"])
    first = start_worker(stack.env)
    for i in range(PER_STATE):
        for ms, cities in CITIES.items():
            who = stack.submitters[ms]
            n = nominations.create(svc, who, complete_draft(cities[i % len(cities)],
                                                            csco_email=f"csco{i}@{ms.lower()}.example"))
            nominations.fire(svc, who, n.id, "submit", n.version)
    total = sum((len(SUBMITTERS[ms]) + len(expected_recipients("checks.completed", ms))) * PER_STATE
                for ms in CITIES)

    wait_for(lambda: len(smtp_server.received()) >= total // 4, 60, what="a quarter of the mails")
    first.kill()
    at_kill = len(smtp_server.received())
    assert first.process.returncode == -9
    assert 0 < at_kill < total, f"the kill did not land mid-stream: {at_kill} of {total} mails had arrived"

    start_worker(stack.env)
    wait_for(lambda: incomplete_outbox(svc) == 0, 90, interval=0.2, what="every outbox row to complete")

    expected = expected_mails(svc, ["nomination.submitted", "checks.completed"])
    assert sum(expected.values()) == total
    # A kill after the SMTP server accepted a mail but before its record committed sends that mail
    # again when the event is redelivered: the same message, with the same Message-ID.
    repeated = assert_nothing_lost(smtp_server, expected)
    print(f"\nSIGKILL: {total} mails expected, lost 0, repeated {repeated}")
    assert repeated <= 2 * 4, "more repeats than the mails a killed worker (-c 2) can have had in hand"
    # The subscriber: every event called, a repeat carrying the same Idempotency-Key (the event id).
    calls = [c for c in webhook_receiver.calls if c["path"] == "/subscriber"]
    called = Counter(body_json(c)["event_id"] for c in calls)
    assert set(called) == {event_id for event_id, _ in expected}
    assert all(c["headers"]["idempotency-key"] == body_json(c)["event_id"] for c in calls)
    print(f"SIGKILL: {len(called)} webhook calls expected, lost 0, repeated {sum(called.values()) - len(called)}")
    checks = checks_per_submission(svc)
    assert len(checks) == len(CITIES) * PER_STATE
    assert {e: names for e, names in checks.items() if names != CHECK_NAMES} == {}
    with svc.engine.connect() as c:
        pending = c.scalar(sa.select(sa.func.count()).select_from(t.nominations)
                           .where(t.nominations.c.checks_outcome == "pending"))
        completed = c.execute(sa.select(t.events.c.nomination_id, sa.func.count()).where(
            t.events.c.name == "checks.completed").group_by(t.events.c.nomination_id)).all()
    assert pending == 0
    assert len(completed) == len(CITIES) * PER_STATE and {count for _, count in completed} == {1}


# 2. Redis outage ------------------------------------------------------------------------------

def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class TcpProxy:
    """A port on loopback forwarded to RabbitMQ's. `stop` closes it and every connection through it,
    as a broker that went down would; `start` opens it again on the same port."""

    def __init__(self, target_port: int):
        self.target, self.port = ("127.0.0.1", target_port), free_port()
        self.server, self.sockets, self.lock = None, [], threading.Lock()

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def _accept(self, server) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        self.server.close()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture(params=["redis", "rabbitmq"])
def outage_stack(request, pg_url, smtp_server, webhook_receiver, tmp_path):
    """A stack whose broker can go away and come back: the Redis server stops (and starts again on
    the same port, empty); RabbitMQ is reached through a TcpProxy that closes, then opens again."""
    if request.param == "redis":
        redis_server = request.getfixturevalue("redis_server")
        url, begin, end, proxy = redis_server.url, redis_server.stop, redis_server.start, None
    else:
        vhost = request.getfixturevalue("rabbitmq_vhost")
        proxy = TcpProxy(5672)
        proxy.start()
        url, begin, end = vhost.url.replace(":5672/", f":{proxy.port}/"), proxy.stop, proxy.start
    made = make_stack(url, pg_url, smtp_server, webhook_receiver, tmp_path)
    yield made, begin, end
    made.app.extensions["celery"].close()
    made.svc.engine.dispose()
    if proxy is not None:
        proxy.stop()


def test_transitions_during_a_broker_outage_commit_and_are_delivered_later(outage_stack, smtp_server, start_worker):
    stack, begin_outage, end_outage = outage_stack
    svc, w = stack.svc, stack.world
    worker = start_worker(stack.env)
    drafts = []
    for ms in CITIES:
        for city in CITIES[ms][:2]:
            who = stack.submitters[ms]
            drafts.append((who, nominations.create(svc, who, complete_draft(city))))
    wait_for(lambda: incomplete_outbox(svc) == 0, 20, what="the drafts' events to complete")

    begin_outage()
    started = time.monotonic()
    fired = 0
    for who, n in drafts:  # submit, return, submit, return, submit: 5 transitions each, 50 in all
        for step in range(5):
            if step % 2 == 0:
                n = nominations.fire(svc, who, n.id, "submit", n.version)
            else:
                n = nominations.fire(svc, w.reviewer_sg, n.id, "return_for_revision", n.version,
                                     comment="Please add the project budgets.")
            fired += 1
    took = time.monotonic() - started
    assert fired == 50
    assert took < 15, f"50 transitions took {took:.1f}s with the broker down: publishing waits on it"
    with svc.engine.connect() as c:
        states = [tuple(r) for r in c.execute(sa.select(t.nominations.c.state, sa.func.count())
                                              .group_by(t.nominations.c.state))]
        unpublished = c.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(
            t.outbox.c.published_at.is_(None)))
    assert states == [("submitted", 10)]
    assert unpublished == 50
    assert notification_mails(smtp_server) == Counter()

    end_outage()
    if worker.process.poll() is not None or "Unrecoverable error" in worker.log():
        # Celery 5.7 sometimes exits on the lost connection ("Unrecoverable error: AttributeError:
        # 'NoneType' object has no attribute 'hostname'" while restoring an unacked message);
        # docker-compose restarts it (restart: unless-stopped), and so does this test.
        worker.stop()
        start_worker(stack.env)
    wait_for(lambda: incomplete_outbox(svc) == 0, 60, interval=0.2, what="the outage's events to be delivered")
    expected = expected_mails(svc, ["nomination.submitted", "nomination.returned", "checks.completed"])
    # 30 submissions and 20 returns to the state's submitters, and the checks of the 10 current
    # submissions to reviewers of other states.
    assert sum(expected.values()) == sum(10 * len(SUBMITTERS[ms]) + 2 * len(expected_recipients("checks.completed", ms))
                                         for ms in CITIES)
    repeated = assert_nothing_lost(smtp_server, expected)
    print(f"\noutage: {sum(expected.values())} mails expected, lost 0, repeated {repeated}")
    assert repeated == 0  # no worker died: nothing may repeat
    returned = [m for m in smtp_server.received() if m["X-SCN-Event"] == "nomination.returned"
                and m["To"] == address("sub-th")]
    assert len(returned) == 4 and {m["Subject"] for m in returned} == {
        f"[{n.reference}] {n.city_name} was returned for revision" for who, n in drafts if who.member_state == "TH"}
    checks = checks_per_submission(svc)
    assert sorted(len(names) for names in checks.values()) == [0] * 20 + [len(CHECK_NAMES)] * 10


# 3. A lead agency endpoint that fails three times, then accepts ------------------------------

# The retries under test take about 1.5 s (SCN_RETRY_BASE_S=0.1, doubling); a sweep re-publishing
# the handover meanwhile would start a second chain of attempts, so it waits longer here.
SLOW_SWEEP = {"SCN_REDELIVER_AFTER_S": "20"}


def test_handover_retries_until_the_lead_agency_accepts(stack, webhook_receiver, smtp_server, start_worker):
    svc, w = stack.svc, stack.world
    start_worker(stack.env | SLOW_SWEEP)
    webhook_receiver.script = [500, 500, 500]
    n = accept(svc, w, "Makassar")
    wait_for(lambda: nominations.get(svc, w.submitter_id, n.id).state == "handed_over", 30,
             what="the handover to succeed after three failures")
    wait_for(lambda: incomplete_outbox(svc) == 0, 20, what="every reaction to be recorded")

    event_id = accepted_event_id(svc, n.id)
    calls = [c for c in webhook_receiver.calls if c["path"] == "/handover"]
    assert [c["status"] for c in calls] == [500, 500, 500, 200]
    assert {c["headers"]["idempotency-key"] for c in calls} == {event_id}
    assert body_json(calls[-1])["nomination"]["reference"] == n.reference
    with svc.engine.connect() as c:
        rows = c.execute(sa.select(t.deliveries.c.channel, t.deliveries.c.status, t.deliveries.c.attempts)
                         .where(t.deliveries.c.event_id == event_id).order_by(t.deliveries.c.id)).all()
        failures = c.scalar(sa.select(sa.func.count()).select_from(t.failures))
    assert [tuple(r) for r in rows] == [("webhook", "failed", 1), ("webhook", "failed", 2),
                                        ("webhook", "failed", 3), ("webhook", "accepted", 4),
                                        ("email", "accepted", 1)]
    assert failures == 0
    assert len(package_mails(smtp_server)) == 1
    assert "handover.failed" not in [e.name for e in events_of(svc, n.id)]


# 4. Retries run out; an operator fixes the endpoint and retries ------------------------------

def failure_rows(svc) -> list:
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.failures)).mappings().all()


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "scn-workflow"), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_exhausted_handover_becomes_a_failure_an_operator_retries(stack, webhook_receiver, smtp_server,
                                                                  start_worker, tmp_path):
    svc, w = stack.svc, stack.world
    start_worker(stack.env | SLOW_SWEEP)
    webhook_receiver.script = [500] * 100
    n = accept(svc, w, "DKI Jakarta")
    failures = wait_for(lambda: failure_rows(svc), 30, what="the handover to fail for good")
    event_id = accepted_event_id(svc, n.id)
    assert len(failures) == 1
    failure = failures[0]
    assert (failure["task"], failure["event_id"], failure["attempts"], failure["status"]) == (
        "scn.handover", event_id, 5, "open")
    assert f"{webhook_receiver.url}/handover answered 500" in failure["error"]
    assert len([c for c in webhook_receiver.calls if c["path"] == "/handover"]) == 5
    assert nominations.get(svc, w.submitter_id, n.id).state == "accepted"
    failed_event = [e for e in events_of(svc, n.id) if e.name == "handover.failed"]
    # The receiver's answer stays with operators (the failure above); the audit trail says only that.
    assert len(failed_event) == 1 and failed_event[0].comment == handover.FAILED_COMMENT
    # Operators and admins hear of it, not the submitters.
    wait_for(lambda: incomplete_outbox(svc) == 0, 20, what="the failure's notifications")
    told = sorted(m["To"] for m in smtp_server.received() if m["X-SCN-Event"] == "handover.failed")
    assert told == [address("ops"), address("root")]

    env = worker_env(stack.env["SCN_DATABASE_URL"], stack.env["SCN_BROKER_URL"], None, tmp_path / "cli")
    listed = cli(env, "failures", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"event {event_id}" in listed.stdout and "1 failure(s)" in listed.stdout

    webhook_receiver.script.clear()  # the lead agency fixed its endpoint
    retried = cli(env, "failures", "retry", str(failure["id"]), "--as", "ops")
    assert retried.returncode == 0, retried.stderr
    assert f"failure {failure['id']} retried" in retried.stdout
    wait_for(lambda: nominations.get(svc, w.submitter_id, n.id).state == "handed_over", 30,
             what="the retried handover to succeed")
    wait_for(lambda: incomplete_outbox(svc) == 0, 20, what="every reaction to be recorded")

    assert len(webhook_receiver.accepted("/handover")) == 1
    assert len(package_mails(smtp_server)) == 1
    listed = cli(env, "failures", "list")
    assert listed.returncode == 0 and "0 failure(s)" in listed.stdout and event_id not in listed.stdout
    refused = cli(env, "failures", "discard", str(failure["id"]))
    assert refused.returncode == 1
    assert f"Failure {failure['id']} is already retried." in refused.stderr
    with svc.engine.connect() as c:
        status, resolved_by = c.execute(sa.select(t.failures.c.status, t.failures.c.resolved_by)).one()
    assert (status, resolved_by) == ("retried", "ops")


# 5. Redelivery changes nothing ------------------------------------------------------------------

def test_redelivered_messages_send_nothing_twice(db_url, clock, tmp_path, smtp_server, webhook_receiver):
    svc = make_services(db_url, clock, tmp_path, smtp_url=smtp_server.url)
    try:
        w = build_world(svc)
        lead_agency_webhook(svc, webhook_receiver.url + "/handover")
        webhooks.subscribe(svc, w.admin, webhook_receiver.url + "/subscriber", SUB_SECRET,
                           ["nomination.submitted", "nomination.accepted"])
        sent: list[tuple[str, str]] = []
        svc.publish = lambda queue, event_id: sent.append((queue, event_id))

        def perform_twice():
            """Perform every published message twice, as a redelivering broker would."""
            while sent:
                queue, event_id = sent.pop(0)
                for _ in range(2):
                    HANDLERS[queue](svc, event_id)

        n = nominations.create(svc, w.submitter_id, complete_draft("Sumedang"))
        n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        submitted = events_of(svc, n.id)[-1].event_id
        assert outbox.publish(svc) == 3  # checks, notifications, webhooks of the submission
        assert outbox.publish(svc) == 0  # published just now
        clock.advance(seconds=svc.settings.redeliver_after_s + 1)
        assert outbox.publish(svc) == 3  # not done in time: published again
        clock.advance(seconds=svc.settings.redeliver_after_s - 1)
        assert outbox.publish(svc) == 0
        clock.advance(seconds=2)
        assert outbox.publish(svc) == 3
        assert sorted(sent) == sorted([("checks", submitted), ("notifications", submitted),
                                       ("webhooks", submitted)] * 3)
        with svc.engine.connect() as c:
            assert c.scalar(sa.select(t.outbox.c.publish_count).where(t.outbox.c.id == submitted)) == 3
        perform_twice()
        while outbox.publish(svc):  # checks.completed
            perform_twice()

        n = nominations.get(svc, w.reviewer_sg, n.id)
        assert n.checks_outcome == "passed"
        n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
        n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
        while outbox.publish(svc):  # reviewed, accepted, then handed_over
            perform_twice()

        assert nominations.get(svc, w.submitter_id, n.id).state == "handed_over"
        assert incomplete_outbox(svc) == 0
        assert checks_per_submission(svc) == {submitted: CHECK_NAMES}
        expected = expected_mails(svc, ["nomination.submitted", "checks.completed", "nomination.reviewed",
                                        "nomination.accepted", "nomination.handed_over"])
        handed_over = events_of(svc, n.id)[-1].event_id
        expected[(handed_over, "lead@id.example")] = 1
        assert_same_mails(notification_mails(smtp_server), expected)
        assert len(package_mails(smtp_server)) == 1
        assert [(c["path"], c["headers"]["x-scn-event"], c["status"]) for c in webhook_receiver.calls] == [
            ("/subscriber", "nomination.submitted", 200), ("/handover", "nomination.accepted", 200),
            ("/subscriber", "nomination.accepted", 200)]
    finally:
        svc.engine.dispose()


def test_a_redelivery_while_the_first_delivery_runs_sends_nothing_twice(pg_url, clock, tmp_path, smtp_server,
                                                                       webhook_receiver):
    """The sweep re-publishes work not done within SCN_REDELIVER_AFTER_S, so a slow lead agency
    can have two workers deliver the same acceptance at once: the second must wait and find it done."""
    svc = make_services(pg_url, clock, tmp_path, smtp_url=smtp_server.url)
    w = build_world(svc)
    lead_agency_webhook(svc, webhook_receiver.url + "/handover")
    webhooks.subscribe(svc, w.admin, webhook_receiver.url + "/subscriber", SUB_SECRET, ["nomination.accepted"])
    n = nominations.create(svc, w.submitter_id, complete_draft("Banyuwangi"))
    n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
    HANDLERS["checks"](svc, events_of(svc, n.id)[-1].event_id)
    n = nominations.get(svc, w.reviewer_sg, n.id)
    n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
    accepted = accepted_event_id(svc, n.id)

    webhook_receiver.delay = 0.4  # a slow lead agency and subscriber
    workers = [make_services(pg_url, clock, tmp_path, smtp_url=smtp_server.url) for _ in range(2)]
    barrier = threading.Barrier(2)
    refused: list[Exception] = []

    def deliver(worker):
        barrier.wait(10)
        for queue in ("handover", "webhooks", "notifications"):
            try:
                HANDLERS[queue](worker, accepted)
            except Exception as exc:  # noqa: BLE001 - a worker would retry; the retry is below
                refused.append(exc)

    threads = [threading.Thread(target=deliver, args=(s,)) for s in workers]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    for queue in ("handover", "webhooks", "notifications"):  # the retries of whatever was refused
        HANDLERS[queue](svc, accepted)
    for s in (svc, *workers):
        s.engine.dispose()

    assert not any(th.is_alive() for th in threads)
    assert all("hand_over was refused" in str(e) or "duplicate key" in str(e) for e in refused), refused
    assert [(c["path"], c["headers"]["idempotency-key"]) for c in webhook_receiver.calls
            if c["path"] == "/handover"] == [("/handover", accepted)]
    assert [c["path"] for c in webhook_receiver.calls if c["path"] == "/subscriber"] == ["/subscriber"]
    assert len(package_mails(smtp_server)) == 1
    told = Counter(m["To"] for m in smtp_server.received() if m["X-SCN-Event-Id"] == accepted)
    assert told == Counter({address("sub-id"): 1, address("sub-id2"): 1})
    assert nominations.get(svc, w.submitter_id, n.id).state == "handed_over"
    svc.engine.dispose()


# 6. Two relays at once ---------------------------------------------------------------------------

def test_two_relays_at_once_publish_each_row_once(pg_url, clock, tmp_path, webhook_receiver):
    setup = make_services(pg_url, clock, tmp_path)
    w = build_world(setup)
    webhooks.subscribe(setup, w.admin, webhook_receiver.url, SUB_SECRET, ["nomination.created"])
    with setup.engine.begin() as c:
        c.execute(sa.update(t.cycles).values(limit_per_state=100))
    for i in range(100):
        nominations.create(setup, w.submitter_id, complete_draft(CITIES["ID"][i % 4]))
    with setup.engine.connect() as c:
        rows = set(c.scalars(sa.select(t.outbox.c.id).where(t.outbox.c.published_at.is_(None))))
    assert len(rows) == 100
    relays = [make_services(pg_url, clock, tmp_path, sweep_batch=10) for _ in range(2)]
    published: list[list[str]] = [[], []]
    barrier = threading.Barrier(2)
    errors = []

    def run(i):
        def publish(queue, event_id):
            time.sleep(0.003)  # a slow broker, so the two relays overlap
            published[i].append(event_id)
        relays[i].publish = publish
        try:
            barrier.wait(10)
            while outbox.publish(relays[i]):
                pass
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    with setup.engine.connect() as c:
        counts = [tuple(r) for r in c.execute(sa.select(t.outbox.c.publish_count, sa.func.count())
                                              .group_by(t.outbox.c.publish_count))]
    for s in (setup, *relays):
        s.engine.dispose()
    assert errors == []
    both = published[0] + published[1]
    assert sorted(both) == sorted(rows), "a row was published twice or not at all"
    assert published[0] and published[1], "the two relays did not run at the same time"
    assert counts == [(1, 100)]


# 7. Embedded mode --------------------------------------------------------------------------------

def test_embedded_worker_walks_a_nomination_to_handed_over(sqlite_url, smtp_server, tmp_path, monkeypatch):
    monkeypatch.delenv("SCN_BROKER_URL", raising=False)
    app = create_app({"database_url": sqlite_url, "broker_url": None, "smtp_url": smtp_server.url,
                      "instance_path": str(tmp_path / "embedded"), "embedded_autostart": True,
                      "sweep_interval_s": 0.2})
    svc = app.extensions["scn"]
    worker = app.extensions["scn_embedded_worker"]
    w = build_world(svc)
    worker.start()
    try:
        n = nominations.create(svc, w.submitter_id, complete_draft())
        n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        n = wait_for(lambda: (x := nominations.get(svc, w.reviewer_sg, n.id)).checks_outcome == "passed" and x,
                     20, what="the embedded worker's checks")
        n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
        n = nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
        wait_for(lambda: nominations.get(svc, w.submitter_id, n.id).state == "handed_over", 20,
                 what="the embedded worker to hand over")
        wait_for(lambda: incomplete_outbox(svc) == 0, 20, what="every reaction to be recorded")
    finally:
        worker.stop()
    assert not worker.is_alive()

    expected = expected_mails(svc, ["nomination.submitted", "checks.completed", "nomination.reviewed",
                                    "nomination.accepted", "nomination.handed_over"])
    handed_over = events_of(svc, n.id)[-1]
    assert handed_over.name == "nomination.handed_over"
    expected[(handed_over.event_id, "lead@id.example")] = 1
    assert_same_mails(notification_mails(smtp_server), expected)
    packages = package_mails(smtp_server)
    assert len(packages) == 1 and packages[0]["To"] == "lead@id.example"
    assert packages[0]["Idempotency-Key"] == accepted_event_id(svc, n.id)
    svc.engine.dispose()
