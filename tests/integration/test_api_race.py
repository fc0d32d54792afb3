"""Two clients race on one nomination over HTTP: a real server (gunicorn, two worker processes)
on PostgreSQL. Both send the same If-Match at the same moment; exactly one transition wins,
the other is refused (412 stale, or 409 not from this state), and the audit trail holds one
event of it. Repeated, so that the requests really meet in different processes.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import utcnow
from tests.conftest import PASSWORD, build_world, complete_draft, make_services
from tests.integration.conftest import BIN, ROOT, free_port, wait_for
from tests.processes import stop_process_group

# Rounds of a race: enough that in some of them the two requests land on the two gunicorn processes
# (6 rounds left all of them on one process in one CI run of about eight).
ROUNDS = 12
EVENTS = {"submit": "nomination.submitted", "withdraw": "nomination.withdrawn"}


class Server:
    """`gunicorn -w 2 web:app` on a free port, with the embedded worker (no broker)."""

    def __init__(self, db_url: str, instance, log_path):
        self.port = free_port()
        self.log_path = log_path
        self.access_log = log_path.with_suffix(".access")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCN_")}
        env.update(SCN_DATABASE_URL=db_url, SCN_INSTANCE_PATH=str(instance), PYTHONPATH=str(ROOT))
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{self.port}", "--timeout", "30",
                 "--access-logfile", str(self.access_log), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s",
                 "web:app"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._ready, 60, what="gunicorn to answer /healthz")

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log_path.read_text()[-3000:]
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def connect(self) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        connection.connect()
        return connection

    def request(self, method, path, body=None, headers=None, connection=None):
        own = connection is None
        connection = connection or self.connect()
        try:
            data = json.dumps(body).encode() if body is not None else None
            connection.request(method, path, body=data, headers={
                **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})})
            response = connection.getresponse()
            raw = response.read()
            return response.status, dict(response.getheaders()), json.loads(raw) if raw else None
        finally:
            if own:
                connection.close()

    def served_by(self, method: str, path: str) -> list[str]:
        """The worker processes (pids) that answered `method path`, from the access log."""
        lines = self.access_log.read_text().splitlines() if self.access_log.exists() else []
        return [line.split()[0].strip("<>") for line in lines if line.split()[1:3] == [method, path]]

    def stop(self) -> None:
        stop_process_group(self.process)


@pytest.fixture
def server(pg_url, tmp_path):
    svc = make_services(pg_url, utcnow, tmp_path)
    build_world(svc)
    now = utcnow()
    with svc.engine.begin() as connection:  # the server runs on the real clock: its cycle is open now
        connection.execute(sa.update(t.cycles).values(opens_at=now - timedelta(days=1),
                                                      closes_at=now + timedelta(days=365)))
    svc.engine.dispose()
    running = Server(pg_url, tmp_path / "instance", tmp_path / "gunicorn.log")
    yield running
    running.stop()


def _token(server, username: str) -> dict:
    status, _, body = server.request("POST", "/api/v1/tokens", {"username": username, "password": PASSWORD})
    assert status == 201, body
    return {"Authorization": f"Bearer {body['token']}"}


def _race(server, shots):
    """Fire each (headers, trigger, etag, nomination id) from its own thread, all at one moment."""
    connections = [server.connect() for _ in shots]  # connected first: the race is about the change
    barrier = threading.Barrier(len(shots))
    results: list = [None] * len(shots)

    def shoot(i, headers, trigger, etag, nomination_id):
        barrier.wait(timeout=30)
        try:
            results[i] = server.request("POST", f"/api/v1/nominations/{nomination_id}/transitions",
                                        {"trigger": trigger}, {**headers, "If-Match": etag}, connections[i])
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[i] = exc

    threads = [threading.Thread(target=shoot, args=(i, *shot)) for i, shot in enumerate(shots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for connection in connections:
        connection.close()
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert not any(isinstance(r, Exception) for r in results), results
    return results


def _withdraw(server, headers, nomination_id) -> None:
    """Withdraw; the embedded worker's checks may change the nomination meanwhile (412): retry."""
    for _ in range(20):
        status, _, body = server.request("POST", f"/api/v1/nominations/{nomination_id}/transitions",
                                         {"trigger": "withdraw"}, {**headers, "If-Match": "*"})
        if status == 200:
            return
        assert status == 412, body
    raise AssertionError("could not withdraw")


@pytest.mark.postgres
@pytest.mark.parametrize("triggers", [("submit", "submit"), ("submit", "withdraw")], ids=["same", "different"])
def test_two_clients_racing_on_one_nomination(server, triggers):
    alice, bob = _token(server, "sub-id"), _token(server, "sub-id2")  # both submitters of Indonesia
    root = _token(server, "root")
    concurrent = 0
    for round_ in range(ROUNDS):
        status, headers, created = server.request("POST", "/api/v1/nominations",
                                                  complete_draft(f"Placeholder City {round_}"), alice)
        assert status == 201, created
        etag = headers["ETag"]
        results = _race(server, [(alice, triggers[0], etag, created["id"]), (bob, triggers[1], etag, created["id"])])

        statuses = sorted(status for status, _, _ in results)
        assert statuses[0] == 200 and statuses[1] in (409, 412), (round_, results)
        (winner, loser) = (0, 1) if results[0][0] == 200 else (1, 0)
        won_trigger = triggers[winner]
        assert results[winner][2]["state"] == {"submit": "submitted", "withdraw": "withdrawn"}[won_trigger]
        assert results[winner][1]["ETag"] == '"2"'
        refusal = results[loser]
        assert refusal[1]["Content-Type"] == "application/problem+json" and refusal[2]["status"] == refusal[0]

        status, _, events = server.request("GET", f"/api/v1/nominations/{created['id']}/events", headers=root)
        assert status == 200
        transitions = [e["name"] for e in events["items"] if e["name"] in EVENTS.values()]
        assert transitions == [EVENTS[won_trigger]], (round_, events["items"])
        for before, after in zip(events["items"], events["items"][1:]):
            assert after["prev_hash"] == before["hash"]
        if won_trigger == "submit":  # free the member state's limit for the next round
            _withdraw(server, alice, created["id"])
        path = f"/api/v1/nominations/{created['id']}/transitions"
        concurrent += len(set(wait_for(lambda: server.served_by("POST", path)[:2] if len(
            server.served_by("POST", path)) >= 2 else None, 10, what="the access log"))) == 2
    # The race was real: in some rounds the two requests were answered by two different processes.
    assert concurrent > 0
