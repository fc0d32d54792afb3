"""PostgreSQL round trips per operation: an HTTP transition, a list request, the relay, each reaction.

    .venv/bin/python bench/roundtrips.py

Round trips, unlike rates, do not depend on what else the machine is doing: on a busy machine each
one costs a wake-up of the server process and of ours, so their number is what the optimisations of
docs/performance.md reduce. Counted inside psycopg: every statement sent (including pool pings) and
every BEGIN, COMMIT and ROLLBACK. The app runs in this process (Flask's test client, no broker, the
relay called by hand) on a temporary PostgreSQL database (SCN_TEST_POSTGRES_URL, default
postgresql://postgres@127.0.0.1:5432/postgres), dropped at the end. Mail goes to an aiosmtpd server
in this process that accepts every mail.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import psycopg._connection_base as _connection_base  # noqa: E402
import psycopg._cursor_base as _cursor_base  # noqa: E402

COUNTS: collections.Counter = collections.Counter()
_exec_command = _connection_base.BaseConnection._exec_command
_execute_send = _cursor_base.BaseCursor._execute_send
_send_query_prepared = _cursor_base.BaseCursor._send_query_prepared


def _counted_command(self, command, *args, **kwargs):
    COUNTS[(command.decode() if isinstance(command, bytes) else str(command)).split()[0]] += 1
    return _exec_command(self, command, *args, **kwargs)


def _counted_statement(self, *args, **kwargs):
    COUNTS["statements"] += 1
    return _execute_send(self, *args, **kwargs)


def _counted_prepared(self, *args, **kwargs):  # a statement psycopg has prepared on the server
    COUNTS["statements"] += 1
    return _send_query_prepared(self, *args, **kwargs)


@contextlib.contextmanager
def service_in_process():
    """The app in this process on a temporary PostgreSQL database with bench/lifecycle.py's world,
    its mail going to an aiosmtpd server in this process and its relay left to the caller (called
    by hand): yields (svc, Flask test client, token(username) -> a bearer token)."""
    from bench.lifecycle import PASSWORD, build_world
    from bench.workers import TimedSink, temporary_database
    from scn_workflow.app import create_app

    sink = TimedSink()
    sink.controller.start()
    try:
        with tempfile.TemporaryDirectory() as instance, temporary_database() as url:
            app = create_app({"database_url": url, "instance_path": instance, "embedded_autostart": False,
                              "smtp_url": sink.url})
            svc = app.extensions["scn"]
            svc.after_commit = None
            build_world(svc)
            client = app.test_client()

            def token(username: str) -> str:
                return client.post("/api/v1/tokens", json={"username": username, "password": PASSWORD}).json["token"]
            try:
                yield svc, client, token
            finally:
                svc.engine.dispose()
    finally:
        sink.controller.stop()


def main() -> int:
    _connection_base.BaseConnection._exec_command = _counted_command
    _cursor_base.BaseCursor._execute_send = _counted_statement
    _cursor_base.BaseCursor._send_query_prepared = _counted_prepared
    from bench.lifecycle import content
    from scn_workflow.services import relay
    from scn_workflow.services.reactions import HANDLERS

    rows = []

    def measure(label: str, fn) -> None:
        COUNTS.clear()
        fn()
        rows.append((label, sum(COUNTS.values()), dict(COUNTS)))

    with service_in_process() as (svc, client, token):
        submitter, reviewer = token("sub-id-1"), token("rev-a")
        nomination = client.post("/api/v1/nominations", json=content("Probe"),
                                 headers={"Authorization": f"Bearer {submitter}"}).json
        state = {"version": nomination["version"]}

        def fire(bearer: str, body: dict) -> None:
            answer = client.post(f"/api/v1/nominations/{nomination['id']}/transitions", json=body,
                                 headers={"Authorization": f"Bearer {bearer}", "If-Match": f'"{state["version"]}"'})
            assert answer.status_code == 200, answer.json
            state["version"] = answer.json["version"]

        published: list[tuple[str, str]] = []
        measure("HTTP POST .../transitions submit", lambda: fire(submitter, {"trigger": "submit"}))
        measure("relay: publish one event", lambda: relay.publish(
            svc, lambda q, ids, **_: published.extend((q, e) for e in ids)))
        for queue, event_id in list(published):
            measure(f"reaction {queue} (nomination.submitted)", lambda: HANDLERS[queue](svc, event_id))
        state["version"] += 1  # checks.completed
        measure("HTTP POST .../transitions return", lambda: fire(reviewer, {"trigger": "return_for_revision",
                                                                             "comment": "Please revise."}))
        measure("HTTP GET /api/v1/nominations", lambda: client.get(
            "/api/v1/nominations", headers={"Authorization": f"Bearer {submitter}"}))
        time.sleep(2.5)
        measure("HTTP GET one, after 2.5 s idle", lambda: client.get(
            f"/api/v1/nominations/{nomination['id']}", headers={"Authorization": f"Bearer {submitter}"}))

    width = max(len(label) for label, _, _ in rows)
    for label, total, detail in rows:
        print(f"{label:{width}s}  {total:3d}  " + ", ".join(f"{k} {v}" for k, v in sorted(detail.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
