"""What an operator sees, with real parts: a Redis server of our own (stopped and started by the
test), real `celery -A worker worker` processes, RabbitMQ, an SMTP server and webhook receivers.

Each figure is read where an operator reads it: the dashboard (/ops, signed in through /login,
forms posted with the session's CSRF token), the JSON under /api/v1/ops (a bearer token from
POST /api/v1/tokens), `scn-workflow ops status` (a separate process, its exit status), /readyz,
and the mails and webhook calls of the alerts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
import threading
import time
from html import unescape
from html.parser import HTMLParser

import pytest
import redis
import sqlalchemy as sa

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.services import alerts, checks, failures, nominations, ops, outbox, webhooks
from tests.conftest import ASSESSMENT, LOOPBACK, PASSWORD, build_world, complete_draft, make_services
from tests.integration.conftest import BIN, ROOT, wait_for, worker_env

SECRET = "lead-agency-secret-0123456789"
QUEUES = ["checks", "notifications", "handover", "webhooks"]
QUEUE_MAX_AGE_S = 1.0
OPERATORS = ["ops@test.example", "root@test.example"]  # the operator and the admin of the test world
OUTBOX = "outbox: # row(s) unpublished, the oldest for # s"  # incident keys: the problem, its numbers left out
FAILURES = "# failure(s) waiting for an operator"


# --- reading what an operator reads ---------------------------------------------------------------------


class _Tables(HTMLParser):
    """Every table of a page as rows of cell texts (header rows included)."""

    def __init__(self):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table(html: str, first_header: str) -> list[list[str]]:
    """The body rows of the page's table whose first column is headed `first_header`."""
    parser = _Tables()
    parser.feed(html)
    found = [rows for rows in parser.tables if rows and rows[0] and rows[0][0] == first_header]
    assert found, f"no table headed {first_header!r} on the page"
    return found[0][1:]


def problems_on(html: str) -> list[str]:
    """The 'Needs attention' list of the dashboard (empty when it says all is well)."""
    banner = re.search(r'<div class="banner" role="alert">(.*?)</div>', html, re.S)
    if banner is None:
        assert "All is well." in html
        return []
    return [unescape(p) for p in re.findall(r"<li>(.*?)</li>", banner.group(1), re.S)]


def queue_depths(html: str) -> dict[str, str]:
    return {row[0]: row[1] for row in table(html, "Queue")}


def outcomes(html: str) -> dict[str, list[str]]:
    """Task outcomes over the last hour (the first of the two tables): succeeded, retried, failed."""
    return {row[0]: row[1:4] for row in table(html, "Task") if len(row) > 1}


def token_in(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


class Operator:
    """An operator's browser (signed in through the form) and API client (a bearer token)."""

    def __init__(self, app, username: str = "ops"):
        self.client = app.test_client()
        page = self.client.get("/login").get_data(as_text=True)
        signed_in = self.client.post("/login", data={"username": username, "password": PASSWORD,
                                                     "csrf_token": token_in(page)})
        assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
        issued = self.client.post("/api/v1/tokens", json={"username": username, "password": PASSWORD})
        assert issued.status_code == 201, issued.get_data(as_text=True)
        self.bearer = {"Authorization": f"Bearer {issued.get_json()['token']}"}

    def dashboard(self) -> str:
        response = self.client.get("/ops")
        assert response.status_code == 200, response.get_data(as_text=True)[:2000]
        return response.get_data(as_text=True)

    def api(self, path: str) -> dict:
        response = self.client.get(f"/api/v1/ops/{path}", headers=self.bearer)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()


def cli_env(db_url: str, broker_url: str, instance, **extra) -> dict:
    return worker_env(db_url, broker_url, None, instance, SCN_QUEUE_MAX_AGE_S=QUEUE_MAX_AGE_S, **extra)


def ops_status(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "scn-workflow"), "ops", "status"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def cli_depths(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s+\S+$", stdout, re.M)
            if m.group(1) in QUEUES}


def count(svc, table_, *where) -> int:
    with svc.engine.connect() as c:
        return c.scalar(sa.select(sa.func.count()).select_from(table_).where(*where))


def heartbeats(svc) -> list:
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.worker_heartbeats)).all()


def submit(svc, who, city: str):
    n = nominations.create(svc, who, complete_draft(city))
    return nominations.fire(svc, who, n.id, "submit", n.version)


def subject(message) -> str:
    """The subject as a mail client shows it (a long one arrives folded)."""
    return " ".join(str(message["Subject"]).split())


def alert_mails(smtp_server) -> list[tuple[str, str, str]]:
    return sorted((m["X-SCN-Alert"], m["To"], subject(m)) for m in smtp_server.received() if m["X-SCN-Alert"])


# --- the stack ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_stack(pg_url, redis_server, smtp_server, webhook_receiver, tmp_path):
    """The web side in this process (publishing after commit to our Redis) and the env of a worker."""
    app = create_app({"database_url": pg_url, "broker_url": redis_server.url, "smtp_url": smtp_server.url,
                      "instance_path": str(tmp_path / "web"), "queue_max_age_s": QUEUE_MAX_AGE_S})
    app.config["TESTING"] = True
    svc = app.extensions["scn"]
    world = build_world(svc)
    with svc.engine.begin() as c:
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(
            lead_agency_webhook_url=webhook_receiver.url + "/handover", lead_agency_webhook_secret=SECRET))
    # No sweep and no redelivery within a test (the web side and the workers publish what they
    # commit): what waits in a queue is what the test caused, once.
    env = worker_env(pg_url, redis_server.url, smtp_server.url, tmp_path / "worker",
                     SCN_QUEUE_MAX_AGE_S=QUEUE_MAX_AGE_S, SCN_MAX_RETRIES=1, SCN_REDELIVER_AFTER_S=60,
                     SCN_SWEEP_INTERVAL_S=60)
    yield app, svc, world, env
    app.extensions["celery"].close()
    svc.engine.dispose()


# --- 1. queues fill while the worker is stopped, and drain when it starts again ------------------------


def test_queues_fill_while_no_worker_runs_and_drain_when_one_starts(redis_stack, redis_server, start_worker,
                                                                   smtp_server, tmp_path):
    app, svc, w, env = redis_stack
    operator = Operator(app)
    worker = start_worker(env)
    wait_for(lambda: heartbeats(svc), 15, what="the worker's first heartbeat")
    worker.stop()
    redis.Redis.from_url(redis_server.url).delete(*QUEUES)  # whatever its beat sent as it stopped

    # First in the `checks` queue: the outbox sweep, as beat sends it (beat may run on its own).
    app.extensions["celery"].send_task("scn.sweep")
    for city in ("Banyuwangi", "Makassar", "Sumedang"):
        submit(svc, w.submitter_id, city)
    time.sleep(QUEUE_MAX_AGE_S + 0.5)  # the oldest message is now older than the threshold

    # The JSON report: each queue's depth from Redis, the age of its oldest message.
    report = operator.api("queues")
    assert report["broker"] == "redis" and report["reachable"] is True
    depths = {q["name"]: q["depth"] for q in report["queues"]}
    assert depths == {"checks": 4, "notifications": 3, "handover": 0, "webhooks": 0}
    ages = {q["name"]: q["oldest_age_s"] for q in report["queues"]}
    assert QUEUE_MAX_AGE_S < ages["checks"] < 30 and QUEUE_MAX_AGE_S < ages["notifications"] < 30
    assert ages["handover"] is None and ages["webhooks"] is None
    assert not any(worker["online"] for worker in report["workers"]), report["workers"]
    assert report["outbox"]["unpublished"] == 0

    # The dashboard: the same depths, and what is wrong.
    page = operator.dashboard()
    assert queue_depths(page) == {"checks": "4", "notifications": "3", "handover": "0", "webhooks": "0"}
    problems = problems_on(page)
    for name in QUEUES:
        assert f"queue {name}: no worker online" in problems, problems
    assert any(p.startswith("queue checks: oldest message waits") for p in problems), problems
    assert any(p.startswith("queue notifications: oldest message waits") for p in problems), problems
    assert not any(p.startswith("queue handover: oldest") for p in problems), problems
    verdict = operator.api("status")
    assert verdict["ok"] is False
    assert sorted(map(alerts.incident_key, verdict["problems"])) == sorted(map(alerts.incident_key, problems))

    # `ops status`: the same, and exit status 1.
    cli = cli_env(env["SCN_DATABASE_URL"], env["SCN_BROKER_URL"], tmp_path / "cli")
    status = ops_status(cli)
    assert status.returncode == 1, status.stdout + status.stderr
    assert cli_depths(status.stdout) == {"checks": 4, "notifications": 3, "handover": 0, "webhooks": 0}
    assert "PROBLEM: queue checks: no worker online" in status.stdout
    assert "PROBLEM: queue checks: oldest message waits" in status.stdout

    # Beat's alerts: one incident per problem, one mail each to the operator and the admin.
    celery = app.extensions["celery"]
    opened = alerts.watch(svc, celery)["opened"]
    assert sorted(opened) == sorted([f"queue {name}: no worker online" for name in QUEUES] + [
        f"queue {name}: oldest message waits # s (threshold # s)" for name in ("checks", "notifications")])
    assert alerts.watch(svc, celery) == {"opened": [], "cleared": []}
    told = alert_mails(smtp_server)
    assert len(told) == 2 * len(opened) and {to for _, to, _ in told} == set(OPERATORS)
    assert ("opened", "ops@test.example", "[scn-workflow] ALERT: queue handover: no worker online") in told

    # A worker starts: the queues drain, and everyone says so.
    start_worker(env)
    wait_for(lambda: count(svc, t.outbox, t.outbox.c.completed_at.is_(None)) == 0, 30,
             what="every reaction to be recorded")
    wait_for(lambda: all(q["depth"] == 0 for q in operator.api("queues")["queues"]), 15,
             what="the queues to be empty")
    report = operator.api("queues")
    online = [worker for worker in report["workers"] if worker["online"]]
    assert len(online) == 1 and sorted(online[0]["queues"]) == sorted(QUEUES)
    assert online[0]["answers_ping"] is True

    page = operator.dashboard()
    assert queue_depths(page) == {name: "0" for name in QUEUES}
    assert problems_on(page) == []
    assert operator.api("status")["ok"] is True
    workers_rows = table(page, "Worker")
    assert len(workers_rows) == 1 and workers_rows[0][-1] == "answers"
    # Succeeded, retried, failed, as the worker recorded them (just after each task returned).
    wait_for(lambda: outcomes(operator.dashboard()).get("scn.checks") == ["3", "0", "0"], 10,
             what="three checks to show as succeeded")

    status = ops_status(cli)
    assert status.returncode == 0, status.stdout + status.stderr
    assert cli_depths(status.stdout) == {name: 0 for name in QUEUES}
    assert "status: OK" in status.stdout and "PROBLEM" not in status.stdout
    alerts.watch(svc, celery)  # (the new worker's beat may have been first to: the same mails either way)
    assert count(svc, t.incidents, t.incidents.c.closed_at.is_(None)) == 0
    assert sorted(key for (key,) in _closed_incidents(svc)) == sorted(opened)
    cleared = [mail for mail in alert_mails(smtp_server) if mail[0] == "cleared"]
    assert len(cleared) == 2 * len(opened)
    assert ("cleared", "root@test.example", "[scn-workflow] CLEARED: queue checks: no worker online") in cleared


def _closed_incidents(svc) -> list:
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.incidents.c.key).where(t.incidents.c.closed_at.is_not(None))).all()


# --- 2. a failure: on the dashboard, retried from it, and done ----------------------------------------


def accepted(svc, w, city: str):
    """Draft, submit, wait for the worker's checks, review and accept a nomination of Indonesia."""
    n = submit(svc, w.submitter_id, city)
    n = wait_for(lambda: (x := nominations.get(svc, w.reviewer_sg, n.id)).checks_outcome == "passed" and x,
                 30, what="the checks worker to pass the submission")
    n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    return nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)


def test_a_failed_handover_is_shown_retried_from_the_dashboard_and_done(redis_stack, start_worker, webhook_receiver):
    app, svc, w, env = redis_stack
    operator = Operator(app)
    start_worker(env)
    webhook_receiver.script = [500] * 100  # the lead agency's endpoint is broken
    n = accepted(svc, w, "Makassar")
    wait_for(lambda: count(svc, t.failures) == 1, 30, what="the handover to fail for good")
    with svc.engine.connect() as c:
        failure = c.execute(sa.select(t.failures)).mappings().one()
        event_id = c.scalar(sa.select(t.events.c.event_id).where(t.events.c.nomination_id == n.id,
                                                                 t.events.c.name == "nomination.accepted"))

    page = operator.dashboard()
    assert "Failures waiting (1)" in page
    rows = table(page, "#")
    assert len(rows) == 1
    number, task, event, attempts, _when, error, actions = rows[0]
    assert (number, task, event, attempts) == (str(failure["id"]), "scn.handover", event_id, "2")
    assert f"{webhook_receiver.url}/handover answered 500" in error
    assert actions == f"Retry #{failure['id']} Discard #{failure['id']}"
    assert "1 failure(s) waiting for an operator" in problems_on(page)
    wait_for(lambda: outcomes(operator.dashboard()).get("scn.handover") == ["0", "1", "1"], 10,
             what="the handover to show as retried once, then failed (SCN_MAX_RETRIES=1)")
    assert nominations.get(svc, w.submitter_id, n.id).state == "accepted"

    # The retry form of the dashboard: refused without the session's CSRF token...
    action = f"/ops/failures/{failure['id']}/retry"
    assert f'action="{action}"' in page
    assert operator.client.post(action, data={}).status_code == 400
    assert count(svc, t.failures, t.failures.c.status == "open") == 1

    # ...and, once the lead agency fixed its endpoint, done with it.
    webhook_receiver.script.clear()
    calls_before = len(webhook_receiver.calls)
    response = operator.client.post(action, data={"csrf_token": token_in(page)}, follow_redirects=True)
    assert response.status_code == 200 and response.request.path == "/ops"
    after = response.get_data(as_text=True)
    assert f"Failure {failure['id']} retried." in after
    assert "Failures waiting (0)" in after
    wait_for(lambda: nominations.get(svc, w.submitter_id, n.id).state == "handed_over", 30,
             what="the retried handover to succeed")
    with svc.engine.connect() as c:
        status, resolved_by = c.execute(sa.select(t.failures.c.status, t.failures.c.resolved_by)).one()
    assert (status, resolved_by) == ("retried", "ops")
    assert [c["status"] for c in webhook_receiver.calls[calls_before:] if c["path"] == "/handover"] == [200]
    listed = operator.api("failures")["items"]
    assert listed == []
    wait_for(lambda: count(svc, t.outbox, t.outbox.c.completed_at.is_(None)) == 0, 30,
             what="every reaction to be recorded")
    assert problems_on(operator.dashboard()) == []
    wait_for(lambda: outcomes(operator.dashboard())["scn.handover"] == ["1", "1", "1"], 10,
             what="the handover's success to show")


# --- 3. /readyz names the broker when Redis is stopped ---------------------------------------------------


def test_readyz_fails_naming_the_broker_while_redis_is_stopped(redis_stack, redis_server):
    app, svc, w, env = redis_stack
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "ok"}

    redis_server.stop()
    started = time.monotonic()
    down = client.get("/readyz")
    assert time.monotonic() - started < 5
    assert down.status_code == 503
    body = down.get_json()
    assert body["status"] == "not ready" and body["failed"] == ["broker"]
    assert body["checks"]["database"] == "ok" and body["checks"]["broker"].startswith("failed")
    operator = Operator(app)
    report = operator.api("queues")
    assert report["reachable"] is False
    assert all(q["depth"] is None and "broker unreachable" in q["error"] for q in report["queues"])
    assert any(p.startswith("broker unreachable") for p in problems_on(operator.dashboard()))

    redis_server.start()
    assert client.get("/readyz").status_code == 200


# --- 4. a broker that accepts connections and never answers does not hang the pages --------------------


class SilentBroker:
    """A TCP server on a free port that accepts every connection and never says a word."""

    def __init__(self):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.accepted.append(connection)  # kept open, never read, never answered

    def close(self):
        self._stop.set()
        self._thread.join(2)
        for connection in self.accepted:
            connection.close()
        self.server.close()


@pytest.fixture
def silent_broker():
    broker = SilentBroker()
    yield broker
    broker.close()


def timed(fn):
    started = time.monotonic()
    value = fn()
    return value, time.monotonic() - started


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_broker_that_never_answers_does_not_hang_the_pages(scheme, sqlite_url, silent_broker, tmp_path):
    url = (f"redis://127.0.0.1:{silent_broker.port}/0" if scheme == "redis"
           else f"amqp://guest:guest@127.0.0.1:{silent_broker.port}//")
    app = create_app({"database_url": sqlite_url, "broker_url": url, "instance_path": str(tmp_path / "web")})
    app.config["TESTING"] = True
    svc = app.extensions["scn"]
    try:
        build_world(svc)
        operator = Operator(app)

        ready, took = timed(lambda: operator.client.get("/readyz"))
        assert took < 3, f"/readyz took {took:.1f} s"
        assert ready.status_code == 503 and ready.get_json()["failed"] == ["broker"]

        report, took = timed(lambda: operator.api("queues"))
        assert took < 5, f"/api/v1/ops/queues took {took:.1f} s"
        assert report["reachable"] is False and "Timeout" in report["error"], report["error"]
        assert [q["name"] for q in report["queues"]] == QUEUES
        assert all(q["depth"] is None and q["error"].startswith("broker unreachable") for q in report["queues"])

        page, took = timed(operator.dashboard)
        assert took < 5, f"/ops took {took:.1f} s"
        assert f"({scheme}: unreachable" in page
        assert queue_depths(page) == {name: "?" for name in QUEUES}
        assert any(p.startswith("broker unreachable") for p in problems_on(page))
        scraped, took = timed(lambda: operator.client.get("/metrics"))
        assert took < 5 and scraped.status_code == 200, f"/metrics took {took:.1f} s"
        assert "scn_queue_depth{" not in scraped.get_data(as_text=True)  # no depth it could not read
        assert silent_broker.accepted, "nothing ever connected to the broker"
    finally:
        app.extensions["celery"].close()
        svc.engine.dispose()


# --- 5. the same queue report against RabbitMQ ---------------------------------------------------------


def test_queue_depths_from_rabbitmq_with_no_worker_consuming(sqlite_url, rabbitmq_vhost, tmp_path):
    app = create_app({"database_url": sqlite_url, "broker_url": rabbitmq_vhost.url,
                      "instance_path": str(tmp_path / "web"), "webhook_allowed_networks": LOOPBACK})
    app.config["TESTING"] = True
    svc = app.extensions["scn"]
    try:
        w = build_world(svc)
        webhooks.subscribe(svc, w.admin, "http://127.0.0.1:9/subscriber", "subscriber-secret-0123456789",
                           ["nomination.accepted"])
        submitted = []
        for city in ("Banyuwangi", "Makassar", "Sumedang"):
            submitted.append(submit(svc, w.submitter_id, city))
        # One of them goes on to acceptance, its checks run here (the checks message stays queued).
        n = submitted[0]
        with svc.engine.connect() as c:
            event_id = c.scalar(sa.select(t.events.c.event_id).where(t.events.c.nomination_id == n.id,
                                                                     t.events.c.name == "nomination.submitted"))
        checks.run_checks(svc, event_id)
        n = nominations.get(svc, w.reviewer_sg, n.id)
        n = nominations.fire(svc, w.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
        nominations.fire(svc, w.reviewer_ph, n.id, "accept", n.version)
        assert count(svc, t.outbox, t.outbox.c.published_at.is_(None)) == 0

        # checks: 3 submissions; notifications: 3 submissions, checks completed, reviewed, accepted;
        # handover and webhooks: the acceptance.
        expected = {"checks": 3, "notifications": 6, "handover": 1, "webhooks": 1}
        # Published on another connection: give RabbitMQ a moment to have enqueued them all.
        def as_expected():
            report = ops.queues(svc)
            return report if {q["name"]: q["depth"] for q in report["queues"]} == expected else None

        report = wait_for(as_expected, 5, what=f"the depths {expected}")
        assert report["broker"] == "amqp" and report["reachable"] is True
        assert {q["name"]: q["depth"] for q in report["queues"]} == expected
        assert all(q["oldest_age_s"] is None and q["error"] is None for q in report["queues"])

        operator = Operator(app)
        body = operator.api("queues")
        assert body["broker"] == "amqp" and body["reachable"] is True
        assert {q["name"]: q["depth"] for q in body["queues"]} == expected
        page = operator.dashboard()
        assert queue_depths(page) == {name: str(depth) for name, depth in expected.items()}
        problems = problems_on(page)
        assert sorted(problems) == sorted(f"queue {name}: no worker online" for name in QUEUES)
    finally:
        app.extensions["celery"].close()
        svc.engine.dispose()


# --- 6. alerts: one mail per operator when an incident opens, one when it clears --------------------------


def test_alerts_mail_each_operator_once_when_an_incident_opens_and_once_when_it_clears(
        db_url, clock, tmp_path, smtp_server, webhook_receiver):
    svc = make_services(db_url, clock, tmp_path, smtp_url=smtp_server.url, secret_key="alert-signing-key-0123456789",
                        alert_webhook_url=webhook_receiver.url + "/alerts")
    try:
        w = build_world(svc)
        assert alerts.watch(svc) == {"opened": [], "cleared": []}

        # Nothing publishes (these services have no publisher after commit): a submission's outbox row lags.
        n = nominations.create(svc, w.submitter_id, complete_draft())
        nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        clock.advance(seconds=svc.settings.outbox_max_age_s + 1)
        assert alerts.watch(svc) == {"opened": [OUTBOX], "cleared": []}
        assert alert_mails(smtp_server) == [
            ("opened", to, "[scn-workflow] ALERT: outbox: 1 row(s) unpublished, the oldest for 121 s")
            for to in OPERATORS]
        clock.advance(seconds=30)  # the numbers change, the incident is the same one
        assert alerts.watch(svc) == {"opened": [], "cleared": []}
        assert alerts.watch(svc) == {"opened": [], "cleared": []}
        assert len(alert_mails(smtp_server)) == 2
        assert len(webhook_receiver.calls) == 1

        # A second problem is a second incident.
        failure_id = failures.record(svc, task="scn.notifications", event_id=None,
                                     arguments=["notifications", "e-1"], error="SMTP refused", attempts=6)
        assert alerts.watch(svc)["opened"] == [FAILURES]
        assert alerts.watch(svc) == {"opened": [], "cleared": []}
        assert [m for m in alert_mails(smtp_server) if "failure" in m[2]] == [
            ("opened", to, "[scn-workflow] ALERT: 1 failure(s) waiting for an operator") for to in OPERATORS]

        # The relay catches up: the outbox incident clears, once; the failure's stays open.
        svc.publish = lambda queue, event_id: None
        outbox.publish(svc)
        assert alerts.watch(svc) == {"opened": [], "cleared": [OUTBOX]}
        assert alerts.watch(svc) == {"opened": [], "cleared": []}
        cleared = [m for m in alert_mails(smtp_server) if m[0] == "cleared"]
        assert cleared == [("cleared", to, "[scn-workflow] CLEARED: outbox: 1 row(s) unpublished, the oldest for 121 s")
                           for to in OPERATORS]

        failures.discard(svc, failure_id, w.operator)
        assert alerts.watch(svc)["cleared"] == [FAILURES]
        assert alerts.watch(svc) == {"opened": [], "cleared": []}
        assert len(alert_mails(smtp_server)) == 8  # 2 incidents x (opened, cleared) x 2 operators
        with svc.engine.connect() as c:
            assert c.scalar(sa.select(sa.func.count()).select_from(t.incidents)
                            .where(t.incidents.c.closed_at.is_(None))) == 0

        # SCN_ALERT_WEBHOOK_URL: one signed call per change.
        calls = webhook_receiver.calls
        assert [(c["path"], c["headers"]["x-scn-event"], json.loads(c["body"])["key"]) for c in calls] == [
            ("/alerts", "alert.opened", OUTBOX), ("/alerts", "alert.opened", FAILURES),
            ("/alerts", "alert.cleared", OUTBOX), ("/alerts", "alert.cleared", FAILURES)]
        for call in calls:
            digest = hmac.new(svc.settings.secret_key.encode(), call["body"], hashlib.sha256).hexdigest()
            assert call["headers"]["x-scn-signature"] == f"sha256={digest}"
        # Each change is news: a receiver that drops a repeated Idempotency-Key still gets all four.
        assert len({call["headers"]["idempotency-key"] for call in calls}) == 4

        # The same problem again later is a new incident: told again.
        clock.advance(seconds=60)
        failures.record(svc, task="scn.notifications", event_id=None, arguments=["notifications", "e-2"],
                        error="SMTP refused", attempts=6)
        assert alerts.watch(svc)["opened"] == [FAILURES]
        assert len(alert_mails(smtp_server)) == 10
        assert len({call["headers"]["idempotency-key"] for call in webhook_receiver.calls}) == 5
    finally:
        svc.engine.dispose()


# --- 7. reminders: once per waiting period ---------------------------------------------------------------


def reminder_mails(smtp_server) -> list[tuple[str, str]]:
    return sorted((m["To"], subject(m)) for m in smtp_server.received() if m["X-SCN-Reminder"])


def test_reviewers_are_reminded_once_per_period_of_waiting(db_url, clock, tmp_path, smtp_server):
    svc = make_services(db_url, clock, tmp_path, smtp_url=smtp_server.url, stuck_after_h=24.0)
    try:
        w = build_world(svc)
        n = submit(svc, w.submitter_id, "Banyuwangi")
        clock.advance(hours=23)
        assert alerts.remind(svc) == 0

        clock.advance(hours=2)  # 25 h in submitted: the first period
        assert alerts.remind(svc) == 2
        # Reviewers of other member states hear of it (not rev-id, of Indonesia, nor the submitters).
        first = [(to, f"[{n.reference}] Banyuwangi has waited 25 h for review")
                 for to in ("rev-ph@test.example", "rev-sg@test.example")]
        assert reminder_mails(smtp_server) == first
        assert alerts.remind(svc) == 0
        clock.advance(hours=20)  # 45 h: still the first period
        assert alerts.remind(svc) == 0
        assert len(reminder_mails(smtp_server)) == 2

        clock.advance(hours=4)  # 49 h: the second period
        assert alerts.remind(svc) == 2
        assert alerts.remind(svc) == 0
        assert reminder_mails(smtp_server) == sorted(first + [
            (to, f"[{n.reference}] Banyuwangi has waited 49 h for review")
            for to in ("rev-ph@test.example", "rev-sg@test.example")])

        # Returned, submitted again: a new wait, reminded again once its first period is over.
        n = nominations.fire(svc, w.reviewer_sg, n.id, "return_for_revision", n.version, comment="Add budgets.")
        n = nominations.fire(svc, w.submitter_id, n.id, "submit", n.version)
        clock.advance(hours=10)
        assert alerts.remind(svc) == 0
        clock.advance(hours=15)
        assert alerts.remind(svc) == 2
        assert alerts.remind(svc) == 0
        assert len(reminder_mails(smtp_server)) == 6
    finally:
        svc.engine.dispose()
