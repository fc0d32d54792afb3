"""The Celery tasks: thin, each calls one service-layer function with an event id (or a list of them)."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from flask import current_app

from scn_workflow.services import checks, notifications, relay
from scn_workflow.services.reactions import HANDLERS, UNCHECKED, backoff, close, give_up

log = logging.getLogger(__name__)


def _react(task, queue: str, event_ids):
    """Perform a queue's work for one event (retried by Celery) or for several (a relay batch)."""
    svc = current_app.extensions["scn"]
    settings = svc.settings
    if not isinstance(event_ids, str):
        return _react_many(task, svc, queue, list(event_ids))
    try:
        return HANDLERS[queue](svc, event_ids)
    except Exception as exc:
        if task.request.retries >= settings.max_retries:
            give_up(svc, queue, event_ids, f"{type(exc).__name__}: {exc}", task.request.retries + 1)
            raise
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, settings.retry_base_s,
                                                    settings.retry_cap_s), max_retries=settings.max_retries)


def _react_many(task, svc, queue: str, event_ids: list[str]) -> int:
    """A batch: each event that fails goes on alone, as a message of its own with the usual retries
    (what succeeded is recorded and is not done again). Returns how many events were finished."""
    settings = svc.settings
    try:
        if queue == "notifications":
            _, failed = notifications.notify_many(svc, event_ids)
        elif queue == "checks":
            failed = _checks_many(svc, event_ids)
        else:
            failed = {}
            for event_id in event_ids:
                try:
                    HANDLERS[queue](svc, event_id)
                except Exception as exc:  # noqa: BLE001 - retried on its own below
                    failed[event_id] = exc
    except Exception as exc:  # the whole batch failed (the database is down, say): retry it as one
        if task.request.retries < settings.max_retries:
            raise task.retry(exc=exc, countdown=backoff(task.request.retries, settings.retry_base_s,
                                                        settings.retry_cap_s), max_retries=settings.max_retries)
        failed = {event_id: exc for event_id in event_ids}
    for event_id, exc in failed.items():
        log.warning("%s for %s failed in a batch, retried on its own: %s: %s", queue, event_id,
                    type(exc).__name__, exc)
        task.apply_async(args=[event_id], queue=queue, task_id=f"{event_id}:{queue}", retries=1,
                         countdown=backoff(0, settings.retry_base_s, settings.retry_cap_s),
                         headers={"published_at": time.time()})
    return len(event_ids) - len(failed)


def _checks_many(svc, event_ids: list[str]) -> dict[str, Exception]:
    """A batch's checks in one transaction; if that fails, each on its own (so one bad event does
    not hold back the others). Events that were no submission or already checked get their done
    mark as a single event's would, all in one more transaction."""
    try:
        outcomes = checks.run_checks_many(svc, event_ids)
    except Exception:  # noqa: BLE001 - one at a time below
        log.warning("checks of a batch of %d failed together; running them one at a time", len(event_ids),
                    exc_info=True)
    else:
        close(svc, "checks", [e for e, outcome in outcomes.items() if outcome in UNCHECKED])
        return {}
    failed = {}
    for event_id in event_ids:
        try:
            HANDLERS["checks"](svc, event_id)
        except Exception as exc:  # noqa: BLE001 - retried on its own by the caller
            failed[event_id] = exc
    return failed


@shared_task(bind=True, name="scn.checks")
def run_checks(self, event_id):
    return _react(self, "checks", event_id)


@shared_task(bind=True, name="scn.notifications")
def notify(self, event_id):
    return _react(self, "notifications", event_id)


@shared_task(bind=True, name="scn.handover")
def hand_over(self, event_id):
    return _react(self, "handover", event_id)


@shared_task(bind=True, name="scn.webhooks")
def call_webhooks(self, event_id):
    return _react(self, "webhooks", event_id)


@shared_task(name="scn.sweep")
def sweep():
    """Publish what a crash or an outage left in the outbox (run by beat)."""
    from scn_workflow.workers import publisher
    return relay.publish(current_app.extensions["scn"], publisher(current_app.extensions["celery"]))


@shared_task(name="scn.ops.sample")
def sample_queues():
    """Record queue depths for the dashboard's charts (beat, every minute)."""
    from scn_workflow.services import ops
    return ops.sample_queues(current_app.extensions["scn"])


@shared_task(name="scn.ops.watch")
def watch():
    """Open and clear incidents, alerting operators once each (beat, every 30 s)."""
    from scn_workflow.services import alerts
    return alerts.watch(current_app.extensions["scn"], current_app.extensions["celery"])


@shared_task(name="scn.ops.remind")
def remind():
    """Remind reviewers of nominations waiting too long, once per period (beat, every 15 minutes)."""
    from scn_workflow.services import alerts
    return alerts.remind(current_app.extensions["scn"])
