"""/metrics against what the test did, and the correlation id of a request followed into its
events, outbox rows and the worker's JSON log lines, with Redis and a real worker."""

from __future__ import annotations

import json
import re

import pytest
import redis
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from scn_workflow.app import create_app
from scn_workflow.db import tables as t
from scn_workflow.domain.model import SYSTEM
from scn_workflow.services import nominations, utcnow
from tests.conftest import ASSESSMENT, PASSWORD, build_world, complete_draft, make_services
from tests.integration.conftest import free_port, wait_for, worker_env

SECRET = "lead-agency-secret-0123456789"
QUEUES = ["checks", "notifications", "handover", "webhooks"]
TRIGGERS = ["submit", "return_for_revision", "review", "accept", "reject", "withdraw", "hand_over"]


def scrape(client) -> dict[tuple, float]:
    """Every sample of /metrics: {(name, sorted labels): value}."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for (n, labels), value in samples.items() if n == name}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Client:
    """A JSON API client: one bearer token per person, from POST /api/v1/tokens."""

    def __init__(self, app):
        self.client = app.test_client()
        self.tokens: dict[str, str] = {}

    def headers(self, username: str, request_id: str | None) -> dict:
        if username not in self.tokens:
            issued = self.client.post("/api/v1/tokens", json={"username": username, "password": PASSWORD})
            assert issued.status_code == 201, issued.get_data(as_text=True)
            self.tokens[username] = issued.get_json()["token"]
        headers = {"Authorization": f"Bearer {self.tokens[username]}"}
        if request_id:
            headers["X-Request-ID"] = request_id
        return headers

    def create(self, username: str, city: str, request_id: str | None = None):
        response = self.client.post("/api/v1/nominations", json=complete_draft(city),
                                    headers=self.headers(username, request_id))
        assert response.status_code == 201, response.get_data(as_text=True)
        return response

    def fire(self, username: str, nomination: dict, trigger: str, request_id: str | None = None,
             status: int = 200, **body):
        response = self.client.post(f"/api/v1/nominations/{nomination['id']}/transitions",
                                    json={"trigger": trigger, **body},
                                    headers={**self.headers(username, request_id),
                                             "If-Match": f'"{nomination["version"]}"'})
        assert response.status_code == status, response.get_data(as_text=True)
        return response

    def get(self, username: str, nomination_id: int) -> dict:
        return self.client.get(f"/api/v1/nominations/{nomination_id}", headers=self.headers(username, None)).get_json()


@pytest.fixture
def stack(pg_url, redis_server, smtp_server, webhook_receiver, tmp_path):
    """The web side here, a worker's env; Indonesia's lead agency answers, Thailand's is unreachable."""
    app = create_app({"database_url": pg_url, "broker_url": redis_server.url, "smtp_url": smtp_server.url,
                      "instance_path": str(tmp_path / "web")})
    app.config["TESTING"] = True
    svc = app.extensions["scn"]
    world = build_world(svc)
    nowhere = f"http://127.0.0.1:{free_port()}/handover"  # nothing listens there
    with svc.engine.begin() as c:
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "ID").values(
            lead_agency_webhook_url=webhook_receiver.url + "/handover", lead_agency_webhook_secret=SECRET))
        c.execute(sa.update(t.member_states).where(t.member_states.c.code == "TH").values(
            lead_agency_webhook_url=nowhere, lead_agency_webhook_secret=SECRET))
    # No sweep, no redelivery: every task below runs exactly once.
    env = worker_env(pg_url, redis_server.url, smtp_server.url, tmp_path / "worker", SCN_MAX_RETRIES=1,
                     SCN_REDELIVER_AFTER_S=60, SCN_SWEEP_INTERVAL_S=60)
    yield app, svc, world, env
    app.extensions["celery"].close()
    svc.engine.dispose()


def outbox_done(svc) -> bool:
    with svc.engine.connect() as c:
        return c.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(t.outbox.c.completed_at.is_(None))) == 0


def checks_passed(svc, nomination_id: int) -> None:
    wait_for(lambda: nominations.get(svc, SYSTEM, nomination_id).checks_outcome == "passed", 30,
             what="the worker's checks to pass")


def walk_to_acceptance(api: Client, svc, submitter: str, city: str, request_id: str | None = None) -> dict:
    """Create, submit (the worker runs the checks), review and accept, through the API."""
    n = api.create(submitter, city, request_id).get_json()
    n = api.fire(submitter, n, "submit", request_id).get_json()
    checks_passed(svc, n["id"])
    n = api.get("rev-sg", n["id"])
    n = api.fire("rev-sg", n, "review", assessment=ASSESSMENT).get_json()
    return api.fire("rev-ph", n, "accept").get_json()


# Checks: two submissions. Notifications: Banyuwangi's submitted, checks.completed, reviewed,
# accepted, handed_over; Phuket's submitted, checks.completed, reviewed, accepted, handover.failed.
# Handover: Banyuwangi's at once, Phuket's tried twice (SCN_MAX_RETRIES=1).
RUNS = {("scn.checks", "succeeded"): 2, ("scn.handover", "succeeded"): 1, ("scn.handover", "retried"): 1,
        ("scn.handover", "failed"): 1}
NOTIFIED_EVENTS = 10


def runs_as_expected(runs: dict) -> bool:
    """RUNS exactly, and the notifications: a task for each of the 10 events that mail someone (and
    perhaps a sweep's copy of one, which finds it done), none failed."""
    notifications = {outcome: n for (task, outcome), n in runs.items() if task == "scn.notifications"}
    others = {key: n for key, n in runs.items() if key[0] != "scn.notifications"}
    return others == RUNS and set(notifications) == {"succeeded"} and \
        notifications["succeeded"] >= NOTIFIED_EVENTS


def task_runs(samples: dict) -> dict[tuple[str, str], float]:
    return {(dict(labels)["task"], dict(labels)["outcome"]): v for (n, labels), v in samples.items()
            if n == "scn_task_runs_total"}


def queued(broker_url: str) -> dict[str, list[str]]:
    """What waits in each Redis queue, read from Redis: "<task> <task id>" per message."""
    client = redis.Redis.from_url(broker_url)
    try:
        headers = {name: [json.loads(raw)["headers"] for raw in client.lrange(name, 0, -1)] for name in QUEUES}
        return {name: [f"{h['task']} {h['id']}" for h in messages] for name, messages in headers.items()}
    finally:
        client.close()


def event_id(svc, nomination_id: int, name: str) -> str:
    with svc.engine.connect() as c:
        return c.scalar(sa.select(t.events.c.event_id).where(t.events.c.nomination_id == nomination_id,
                                                             t.events.c.name == name))


def test_metrics_report_what_happened(stack, start_worker, tmp_path):
    app, svc, w, env = stack
    api = Client(app)
    before = scrape(app.test_client())
    worker = start_worker(env)

    # Indonesia's nomination is handed over; Thailand's handover fails for good (one retry).
    banyuwangi = walk_to_acceptance(api, svc, "sub-id", "Banyuwangi")
    walk_to_acceptance(api, svc, "sub-th", "Phuket")
    wait_for(lambda: api.get("sub-id", banyuwangi["id"])["state"] == "handed_over", 30, what="the handover")
    api.fire("rev-sg", api.get("rev-sg", banyuwangi["id"]), "accept", status=409)  # handed over: refused
    wait_for(lambda: outbox_done(svc), 30, what="every reaction to be recorded")
    # A task's run is recorded just after it returns (when its work is already marked done): the
    # worker is stopped once the last of them is in.
    wait_for(lambda: runs_as_expected(task_runs(scrape(app.test_client()))), 15,
             what=f"the task runs {RUNS} and {NOTIFIED_EVENTS} of scn.notifications")
    worker.stop()

    # With no worker: one more submission waits in its queues, and a submission made where nothing
    # publishes (another process, the broker unknown to it) waits in the outbox.
    makassar = api.create("sub-id", "Makassar").get_json()
    api.fire("sub-id", makassar, "submit")
    elsewhere = make_services(env["SCN_DATABASE_URL"], utcnow, tmp_path / "elsewhere")
    try:
        chonburi = nominations.create(elsewhere, w.submitter_th, complete_draft("Chonburi"))
        nominations.fire(elsewhere, w.submitter_th, chonburi.id, "submit", chonburi.version)
    finally:
        elsewhere.engine.dispose()

    after = scrape(app.test_client())
    assert by_label(after, "scn_transitions_total", "trigger") == {
        trigger: {"submit": 4, "review": 2, "accept": 2, "hand_over": 1}.get(trigger, 0) for trigger in TRIGGERS}
    # Every state has its series, 0 included, so a graph or an alert on one never loses it.
    assert by_label(after, "scn_nominations", "state") == {"handed_over": 1, "accepted": 1, "submitted": 2,
                                                           "drafted": 0, "reviewed": 0, "rejected": 0,
                                                           "withdrawn": 0}
    assert runs_as_expected(task_runs(after)), task_runs(after)
    assert set(by_label(after, "scn_task_duration_ms_mean", "task")) == {"scn.checks", "scn.notifications",
                                                                         "scn.handover"}
    assert value(after, "scn_failures_open") == 1
    assert value(after, "scn_outbox_unpublished") == 1
    assert value(after, "scn_outbox_oldest_unpublished_age_seconds") > 0
    # Queue depths: Redis's own count; among the messages, Makassar's submission's reactions (and,
    # perhaps, what the stopped worker's beat sent last: its own periodic tasks).
    waiting = queued(env["SCN_BROKER_URL"])
    assert by_label(after, "scn_queue_depth", "queue") == {name: len(waiting[name]) for name in QUEUES}
    submitted = event_id(svc, makassar["id"], "nomination.submitted")
    assert {name: [m for m in messages if not m.startswith("scn.sweep") and not m.startswith("scn.ops.")]
            for name, messages in waiting.items()} == {
        "checks": [f"scn.checks {submitted}:checks"], "notifications": [f"scn.notifications {submitted}:notifications"],
        "handover": [], "webhooks": []}
    assert set(by_label(after, "scn_queue_oldest_age_seconds", "queue")) == {"checks", "notifications"}

    def requests(endpoint, method, status):
        labels = {"endpoint": endpoint, "method": method, "status": status}
        return value(after, "scn_http_requests_total", **labels) - value(before, "scn_http_requests_total", **labels)

    assert requests("nominations.create_nomination", "POST", "201") == 3
    # submit x3, review x2, accept x2, and the refused accept
    assert requests("nominations.fire_transition", "POST", "200") == 7
    assert requests("nominations.fire_transition", "POST", "409") == 1
    assert requests("tokens.create_token", "POST", "201") == 4  # sub-id, rev-sg, sub-th, rev-ph
    assert requests("metrics.metrics", "GET", "200") == 0  # a scrape does not count itself
    latency = value(after, "scn_http_request_duration_seconds_count", endpoint="nominations.create_nomination") \
        - value(before, "scn_http_request_duration_seconds_count", endpoint="nominations.create_nomination")
    assert latency == 3


def log_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def test_a_request_id_follows_into_events_outbox_and_worker_logs(stack, start_worker):
    app, svc, w, env = stack
    api = Client(app)
    worker = start_worker(env)
    created = api.create("sub-id", "Sumedang", request_id="abc123")
    assert created.headers["X-Request-ID"] == "abc123"
    n = created.get_json()
    submitted = api.fire("sub-id", n, "submit", request_id="abc123")
    assert submitted.headers["X-Request-ID"] == "abc123"
    # An id that is not plain is not taken: the request gets one of its own.
    other = api.create("sub-id", "Makassar", request_id='abc"} {"injected": 1')
    own_id = other.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", own_id)
    checks_passed(svc, n["id"])
    wait_for(lambda: outbox_done(svc), 30, what="every reaction to be recorded")

    with svc.engine.connect() as c:
        events = c.execute(sa.select(t.events.c.event_id, t.events.c.name, t.events.c.correlation_id)
                           .where(t.events.c.nomination_id == n["id"]).order_by(t.events.c.seq)).all()
        outbox = dict(c.execute(sa.select(t.outbox.c.id, t.outbox.c.correlation_id)).all())
        other_events = c.scalars(sa.select(t.events.c.correlation_id).where(
            t.events.c.nomination_id == other.get_json()["id"])).all()
    assert [(name, cid) for _, name, cid in events] == [
        ("nomination.created", "abc123"), ("nomination.submitted", "abc123"),
        ("checks.completed", "abc123")]  # recorded by the worker, in the request's task
    assert all(outbox[event_id] == "abc123" for event_id, _, _ in events)
    assert other_events == [own_id]

    # The worker's JSON log lines about those tasks carry the request's id.
    submitted_id, completed_id = events[1].event_id, events[2].event_id
    lines = log_lines(worker.log())
    done = {(line["task"], line["event_id"]): line["correlation_id"] for line in lines
            if line.get("message") == "task succeeded"}
    assert done[("scn.checks", submitted_id)] == "abc123"
    assert done[("scn.notifications", submitted_id)] == "abc123"
    assert done[("scn.notifications", completed_id)] == "abc123"
    celery_lines = [line for line in lines if line["logger"] == "celery.app.trace" and submitted_id in line["message"]]
    assert celery_lines and {line["correlation_id"] for line in celery_lines} == {"abc123"}
    # ...and no line claims it that is not about this request.
    assert {line["event_id"] for line in lines
            if line["correlation_id"] == "abc123" and line.get("event_id")} == {submitted_id, completed_id}
