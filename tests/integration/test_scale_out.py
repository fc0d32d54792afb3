"""Scale-out: two gunicorn instances and two Celery workers on one PostgreSQL and one Redis.
Nominations driven through their whole lifecycle over HTTP, concurrently, each end handed over,
every effect happened exactly once, and the audit chains verify."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import audit
from tests.conftest import PASSWORD, build_world, complete_draft, make_services
from tests.integration.conftest import BIN, ROOT, free_port, wait_for, worker_env

COUNT = int(os.environ.get("SCN_SCALE_OUT_N", "300"))
MAILS_PER_NOMINATION = 12  # see test_mails_per_nomination below


class Client:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body=None, version=None):
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def _token(base: str, username: str) -> str:
    request = urllib.request.Request(base + "/api/v1/tokens", method="POST",
                                     data=json.dumps({"username": username, "password": PASSWORD}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["token"]


@pytest.fixture
def deployment(pg_url, redis_server, smtp_server, start_worker, tmp_path, clock):
    svc = make_services(pg_url, clock, tmp_path)
    build_world(svc)
    with svc.engine.begin() as c:  # room for every nomination of the test in the cycle
        c.execute(sa.update(t.cycles).values(limit_per_state=COUNT + 10))
    env = worker_env(pg_url, redis_server.url, smtp_server.url, tmp_path / "instance", SCN_REDELIVER_AFTER_S=30)
    start_worker(env, concurrency=2, beat=True)
    start_worker(env, concurrency=2, beat=False)
    servers, bases = [], []
    for i in range(2):
        port = free_port()
        log = open(tmp_path / f"gunicorn{i}.log", "wb")
        servers.append((subprocess.Popen([str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "web:app"],
                                         cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        bases.append(f"http://127.0.0.1:{port}")
    for base in bases:
        wait_for(lambda: _up(base), 30, what=f"gunicorn at {base}")
    yield svc, bases
    for process, log in servers:
        process.terminate()
        process.wait(20)
        log.close()
    svc.engine.dispose()


def _up(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1):
            return True
    except OSError:
        return False


def _lifecycle(i: int, clients: dict) -> str:
    """One nomination from drafted to handed over, through one of the two gunicorn instances."""
    side = i % 2
    submitter = clients[("sub-id" if i % 4 < 2 else "sub-id2", side)]
    reviewer, second = clients[("rev-sg", side)], clients[("rev-ph", 1 - side)]
    status, n = submitter.call("POST", "/api/v1/nominations",
                               complete_draft(f"Scale-out test city {i:03d} (placeholder)"))
    assert status == 201, n
    status, n = submitter.call("POST", f"/api/v1/nominations/{n['id']}/transitions", {"trigger": "submit"}, n["version"])
    assert status == 200, n
    deadline = time.monotonic() + 120
    while n["checks_outcome"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        _, n = reviewer.call("GET", f"/api/v1/nominations/{n['id']}")
    assert n["checks_outcome"] == "passed", n
    status, n = reviewer.call("POST", f"/api/v1/nominations/{n['id']}/transitions",
                              {"trigger": "review", "assessment": {"scores": {"civic_social": 4, "quality_environment": 4},
                                                                   "recommendation": "accept", "summary": "Scale-out."}},
                              n["version"])
    assert status == 200, n
    status, n = second.call("POST", f"/api/v1/nominations/{n['id']}/transitions", {"trigger": "accept"}, n["version"])
    assert status == 200, n
    while n["state"] != "handed_over" and time.monotonic() < deadline:
        time.sleep(0.3)
        _, n = submitter.call("GET", f"/api/v1/nominations/{n['id']}")
    return n["state"]


def test_mails_per_nomination():
    """submitted, reviewed, accepted, handed_over: both ID submitters (8); checks completed: the two
    reviewers not of ID (2); the lead agency: the package by mail and the handed-over notice (2)."""
    assert MAILS_PER_NOMINATION == 4 * 2 + 2 + 2


def test_scale_out_lifecycles_end_handed_over_exactly_once(deployment, smtp_server):
    svc, bases = deployment
    clients = {(user, side): Client(base, _token(base, user)) for side, base in enumerate(bases)
               for user in ("sub-id", "sub-id2", "rev-sg", "rev-ph")}
    with ThreadPoolExecutor(max_workers=12) as pool:
        states = list(pool.map(lambda i: _lifecycle(i, clients), range(COUNT)))
    assert Counter(states) == {"handed_over": COUNT}
    wait_for(lambda: len(smtp_server.received()) >= COUNT * MAILS_PER_NOMINATION, 120, what="every mail")
    with svc.engine.connect() as c:
        wait_for(lambda: c.scalar(sa.select(sa.func.count()).select_from(t.outbox)
                                  .where(t.outbox.c.completed_at.is_(None))) == 0, 120, what="every reaction")
        deliveries = c.execute(sa.select(t.deliveries.c.nomination_id, t.deliveries.c.status)).all()
        checks_runs = c.execute(sa.select(t.checks.c.event_id, sa.func.count()).group_by(t.checks.c.event_id)).all()
        failures = c.scalar(sa.select(sa.func.count()).select_from(t.failures))
    time.sleep(1)  # anything duplicated late would show now
    mails = Counter((m["X-SCN-Event-Id"] or m["Idempotency-Key"], m["To"]) for m in smtp_server.received())
    assert len(mails) == COUNT * MAILS_PER_NOMINATION
    assert max(mails.values()) == 1, [k for k, v in mails.items() if v > 1][:5]
    assert Counter(status for _, status in deliveries) == {"accepted": COUNT}
    assert len({nomination for nomination, _ in deliveries}) == COUNT
    assert len(checks_runs) == COUNT and {count for _, count in checks_runs} == {4}
    assert failures == 0
    assert audit.verify(svc) == (COUNT, [])
