"""The Celery tasks: thin, each calls one service-layer function with an event id."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from scn_workflow.services import relay
from scn_workflow.services.reactions import HANDLERS, backoff, give_up


def _react(task, queue: str, event_id: str):
    svc = current_app.extensions["scn"]
    settings = svc.settings
    try:
        return HANDLERS[queue](svc, event_id)
    except Exception as exc:
        if task.request.retries >= settings.max_retries:
            give_up(svc, queue, event_id, f"{type(exc).__name__}: {exc}", task.request.retries + 1)
            raise
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, settings.retry_base_s,
                                                    settings.retry_cap_s), max_retries=settings.max_retries)


@shared_task(bind=True, name="scn.checks")
def run_checks(self, event_id: str):
    return _react(self, "checks", event_id)


@shared_task(bind=True, name="scn.notifications")
def notify(self, event_id: str):
    return _react(self, "notifications", event_id)


@shared_task(bind=True, name="scn.handover")
def hand_over(self, event_id: str):
    return _react(self, "handover", event_id)


@shared_task(bind=True, name="scn.webhooks")
def call_webhooks(self, event_id: str):
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
