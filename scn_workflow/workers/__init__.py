"""Celery, wired to the Flask app factory: tasks run inside the app context and take ids."""

from __future__ import annotations

import time

from celery import Celery, Task
from flask import Flask

from scn_workflow.services.reactions import TASK_NAMES


def celery_init_app(app: Flask) -> Celery:
    settings = app.extensions["scn"].settings

    class FlaskTask(Task):
        flask_app = app

        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.broker_url or "memory://",
        task_ignore_result=True,
        task_acks_late=True,  # a message is acknowledged after its task ran, not before
        task_reject_on_worker_lost=True,  # a killed worker's message goes back to the queue
        worker_prefetch_multiplier=1,  # long tasks are not hoarded by one worker
        task_default_queue="notifications",
        task_routes={name: {"queue": queue} for queue, name in TASK_NAMES.items()} | {
            "scn.sweep": {"queue": "checks"}, "scn.ops.*": {"queue": "notifications"}},
        broker_transport_options={"visibility_timeout": 3600,  # longer than any task
                                  "socket_timeout": 5, "socket_connect_timeout": 2,
                                  # A publish fails at once when the broker is down (else kombu sleeps
                                  # and retries for broker_connection_timeout on every transition); the
                                  # outbox keeps the message and the sweep publishes it later.
                                  "max_retries": 0},
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        # No Celery task events by default: they cost 3-4 broker messages a task, and our own
        # task_runs and heartbeats feed the dashboard. Flower turns them on while it runs (its
        # enable_events option broadcasts `enable_events` to the workers).
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        beat_schedule={
            "outbox-sweep": {"task": "scn.sweep", "schedule": settings.sweep_interval_s},
            "queue-samples": {"task": "scn.ops.sample", "schedule": 60.0},
            "alerts": {"task": "scn.ops.watch", "schedule": 30.0},
            "reminders": {"task": "scn.ops.remind", "schedule": 900.0},
        },
    )
    if (settings.broker_url or "").startswith("redis://"):
        celery.conf.broker_transport = "scn_workflow.workers.transport:Transport"
    celery.conf.flask_app_ref = app
    celery.set_default()
    app.extensions["celery"] = celery
    from scn_workflow.workers import signals, tasks  # noqa: F401 - registers the tasks and signal handlers
    return celery


def publisher(celery: Celery):
    """The relay's publisher: one message per queue for one event (id "<outbox id>:<queue>", the
    event id its argument) or for several (id "<first id>+<more>:<queue>", the list its argument)."""

    def publish(queue: str, event_ids, correlation_id: str | None = None) -> None:
        event_ids = [event_ids] if isinstance(event_ids, str) else list(event_ids)
        if len(event_ids) == 1:
            args, task_id = [event_ids[0]], f"{event_ids[0]}:{queue}"
        else:
            args, task_id = [event_ids], f"{event_ids[0]}+{len(event_ids) - 1}:{queue}"
        # published_at lets the dashboard tell the age of the oldest message in a queue. The request's
        # id travels as scn_correlation_id: Celery keeps "correlation_id" for itself (the task id).
        # argsrepr: what Celery would show of the arguments (its own saferepr of 50 ids costs more
        # than the rest of the message).
        celery.send_task(TASK_NAMES[queue], args=args, queue=queue, task_id=task_id, retry=False,
                         argsrepr=repr(args) if len(event_ids) == 1 else f"[[{len(event_ids)} event ids]]",
                         kwargsrepr="{}",
                         headers={"scn_correlation_id": correlation_id, "published_at": time.time()})

    publish.waiting = _waiting_messages(celery.conf.broker_url or "")
    return publish


def _waiting_messages(broker_url: str):
    """How many messages wait in the queues, not yet taken by a worker: one Redis round trip (the
    LLEN of each queue). None for other brokers (the relay then goes by the outbox instead)."""
    if not broker_url.startswith("redis://"):
        return None
    import redis
    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)

    def waiting(queues) -> int:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(queue)
            return sum(pipe.execute())

    return waiting
