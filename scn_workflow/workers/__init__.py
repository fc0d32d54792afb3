"""Celery, wired to the Flask app factory: tasks run inside the app context and take one event id."""

from __future__ import annotations

import time

from celery import Celery, Task
from flask import Flask

from scn_workflow.logs import correlation_id
from scn_workflow.services import attachments, digest, web_sessions
from scn_workflow.services.reactions import TASK_NAMES, give_up

QUEUE_OF_TASK = {name: queue for queue, name in TASK_NAMES.items()}


def celery_init_app(app: Flask) -> Celery:
    svc = app.extensions["scn"]
    settings = svc.settings

    class FlaskTask(Task):
        flask_app = app
        # The retry policy of the tasks declared with autoretry_for (tasks.py): Celery's own backoff.
        max_retries = settings.max_retries
        retry_backoff = settings.retry_base_s
        retry_backoff_max = settings.retry_cap_s
        retry_jitter = True

        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

        def on_failure(self, exc, task_id, args, kwargs, einfo):
            """A reaction whose retries are spent becomes a failure an operator can retry or discard."""
            if self.name in QUEUE_OF_TASK:
                with app.app_context():
                    give_up(svc, QUEUE_OF_TASK[self.name], args[0], f"{type(exc).__name__}: {exc}",
                            self.request.retries + 1)

    celery = Celery(app.import_name, task_cls=FlaskTask)
    celery.conf.update(
        broker_url=settings.broker_url or "memory://",
        task_ignore_result=True,
        task_acks_late=True,  # a message is acknowledged after its task ran, not before
        task_reject_on_worker_lost=True,  # a killed worker's message goes back to the queue
        worker_prefetch_multiplier=1,  # long tasks are not hoarded by one worker
        task_default_queue="notifications",
        task_routes={name: {"queue": queue} for name, queue in QUEUE_OF_TASK.items()} | {
            "scn.sweep": {"queue": "checks"}, "scn.ops.*": {"queue": "notifications"}},
        broker_transport_options={"visibility_timeout": 3600,  # longer than any task
                                  "socket_timeout": 5, "socket_connect_timeout": 2,
                                  # A publish fails at once when the broker is down (instead of kombu
                                  # retrying on every transition); the outbox keeps the event and the
                                  # sweep publishes it later.
                                  "max_retries": 0},
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        # No Celery task events: they cost broker messages for every task, and task_runs and the
        # heartbeats feed the dashboard. Flower turns them on while it runs (its enable_events option).
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        beat_schedule={
            "outbox-sweep": {"task": "scn.sweep", "schedule": settings.sweep_interval_s},
            "attachments-sweep": {"task": "scn.ops.sweep_attachments", "schedule": attachments.SWEEP_EVERY_S},
            "sessions-sweep": {"task": "scn.ops.sweep_sessions", "schedule": web_sessions.SWEEP_EVERY_S},
            "queue-samples": {"task": "scn.ops.sample", "schedule": 60.0},
            "alerts": {"task": "scn.ops.watch", "schedule": 30.0},
            "reminders": {"task": "scn.ops.remind", "schedule": 900.0},
            "daily-digest": {"task": "scn.ops.digest", "schedule": digest.SEND_EVERY_S},
        },
    )
    celery.conf.flask_app_ref = app
    celery.set_default()
    app.extensions["celery"] = celery
    from scn_workflow.workers import signals, tasks  # noqa: F401 - registers the tasks and signal handlers
    return celery


def publisher(celery: Celery):
    """`svc.publish` with a broker: one message, id "<event id>:<queue>", the event id its argument."""

    def publish(queue: str, event_id: str) -> None:
        # published_at lets the dashboard tell the age of the oldest message in a queue. The request's
        # id travels as scn_correlation_id: Celery keeps "correlation_id" for itself (the task id).
        celery.send_task(TASK_NAMES[queue], args=[event_id], queue=queue, task_id=f"{event_id}:{queue}",
                         retry=False, headers={"scn_correlation_id": correlation_id.get(),
                                               "published_at": time.time()})

    return publish
