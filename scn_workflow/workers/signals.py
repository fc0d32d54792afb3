"""What the workers record about themselves, through Celery signals: each task's outcome and
duration (so the history survives restarts), and a heartbeat with the queues and what runs now."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import datetime, timezone

import sqlalchemy as sa
from celery import signals
from celery.worker import state as worker_state

from scn_workflow import logs
from scn_workflow.db import tables as t
from scn_workflow.services.ops import record_task_run

log = logging.getLogger("scn_workflow.worker")
_started: dict[str, float] = {}
_lock = threading.Lock()
HEARTBEAT_S = 5.0
_stopping = threading.Event()  # set at a warm shutdown: the heartbeat stops, its row is removed
_beat_lock = threading.Lock()
_heartbeat_of: dict = {}  # this worker's hostname and Flask app, for the shutdown


def _now():
    return datetime.now(timezone.utc)


def _record(task, outcome: str, task_id: str) -> None:
    with _lock:
        started = _started.pop(task_id, None)
    if started is None or task.name == "scn.sweep" or task.name.startswith("scn.ops."):
        return
    duration_ms = (time.monotonic() - started) * 1000
    event_id = task.request.args[0] if task.request.args else None
    try:
        record_task_run(task.flask_app.extensions["scn"].engine, task=task.name, event_id=event_id,
                        outcome=outcome, duration_ms=duration_ms, finished_at=_now(), worker=task.request.hostname)
    except Exception:  # noqa: BLE001 - bookkeeping must never fail the task
        log.exception("could not record the task run")
    log.info("task %s", outcome, extra={"task": task.name, "event_id": event_id, "duration_ms": round(duration_ms, 1)})


@signals.before_task_publish.connect
def _stamp(headers=None, **_):
    """Every message says when it was published (beat's too, the outbox sweep first among them), so
    the dashboard can tell the age of a queue's oldest message whatever that message is."""
    if headers is not None:
        headers.setdefault("published_at", time.time())


@signals.task_prerun.connect
def _prerun(task_id=None, task=None, **_):
    # The publisher's header (Celery 5 hands custom headers to the task as request.headers and as
    # attributes); never request.correlation_id, which Celery sets to the task id.
    headers = getattr(task.request, "headers", None) or {}
    logs.correlation_id.set(headers.get("scn_correlation_id") or getattr(task.request, "scn_correlation_id", None))
    with _lock:
        _started[task_id] = time.monotonic()


@signals.task_success.connect
def _success(sender=None, **_):
    _record(sender, "succeeded", sender.request.id)


@signals.task_retry.connect
def _retry(sender=None, request=None, **_):
    _record(sender, "retried", request.id if request else sender.request.id)


@signals.task_failure.connect
def _failure(sender=None, task_id=None, **_):
    _record(sender, "failed", task_id)


@signals.worker_process_init.connect
def _after_fork(**_):
    """A pool child must not reuse the connections its parent opened (SQLAlchemy's fork rule)."""
    from celery import current_app as celery_app
    flask_app = celery_app.conf.get("flask_app_ref")
    if flask_app is not None:
        flask_app.extensions["scn"].engine.dispose(close=False)


@signals.setup_logging.connect
def _logging(**_):
    logs.configure()


@signals.worker_ready.connect
def _ready(sender=None, **_):
    """Start the heartbeat: every few seconds, this worker's queues and running tasks."""
    consumer = sender
    app = consumer.app
    flask_app = app.conf.get("flask_app_ref")
    hostname = consumer.hostname or socket.gethostname()
    queues = sorted(q.name for q in consumer.task_consumer.queues) if consumer.task_consumer else []
    started = _now()

    def beat():
        engine = flask_app.extensions["scn"].engine
        while not _stopping.is_set():
            running = sorted(r.name for r in list(worker_state.active_requests))
            try:
                with _beat_lock, engine.begin() as connection:
                    if _stopping.is_set():
                        break
                    values = {"queues": queues, "running": running, "last_seen": _now()}
                    if connection.execute(sa.update(t.worker_heartbeats).where(
                            t.worker_heartbeats.c.hostname == hostname).values(**values)).rowcount == 0:
                        connection.execute(sa.insert(t.worker_heartbeats).values(hostname=hostname, started_at=started,
                                                                                 **values))
            except Exception:  # noqa: BLE001 - try again at the next beat
                log.warning("heartbeat not recorded", exc_info=True)
            _stopping.wait(HEARTBEAT_S)

    _stopping.clear()
    _heartbeat_of["hostname"], _heartbeat_of["app"] = hostname, flask_app
    threading.Thread(target=beat, name="scn-heartbeat", daemon=True).start()


@signals.worker_shutdown.connect
def _shutdown(**_):
    """A worker that stops on purpose says so at once: its heartbeat row goes, so its queues show
    no worker online now rather than when the heartbeat has been silent long enough."""
    flask_app, hostname = _heartbeat_of.get("app"), _heartbeat_of.get("hostname")
    with _beat_lock:
        _stopping.set()
        if flask_app is None or hostname is None:
            return
        try:
            with flask_app.extensions["scn"].engine.begin() as connection:
                connection.execute(sa.delete(t.worker_heartbeats).where(t.worker_heartbeats.c.hostname == hostname))
        except Exception:  # noqa: BLE001 - then it shows as silent once the heartbeat is old enough
            log.warning("heartbeat row not removed at shutdown", exc_info=True)
