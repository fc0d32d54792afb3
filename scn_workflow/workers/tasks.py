"""The Celery tasks: thin, each calls one service-layer function with one event id.

The four reactions retry through Celery (autoretry_for, with the backoff and max_retries of the
app's task class in workers/__init__.py, which records a failure when the retries are spent).
"""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from scn_workflow.services import alerts, attachments, digest, ops, outbox, web_sessions
from scn_workflow.services.reactions import HANDLERS, TASK_NAMES


def _react(queue: str, event_id: str) -> str:
    return HANDLERS[queue](current_app.extensions["scn"], event_id)


@shared_task(name=TASK_NAMES["checks"], autoretry_for=(Exception,))
def run_checks(event_id: str) -> str:
    """Run the automated checks of a submission."""
    return _react("checks", event_id)


@shared_task(name=TASK_NAMES["notifications"], autoretry_for=(Exception,))
def notify(event_id: str) -> str:
    """Mail the people an event concerns."""
    return _react("notifications", event_id)


@shared_task(name=TASK_NAMES["handover"], autoretry_for=(Exception,))
def hand_over(event_id: str) -> str:
    """Deliver an accepted nomination's package to the lead agency, then fire hand_over."""
    return _react("handover", event_id)


@shared_task(name=TASK_NAMES["webhooks"], autoretry_for=(Exception,))
def call_webhooks(event_id: str) -> str:
    """Call the webhook subscriptions that want the event."""
    return _react("webhooks", event_id)


@shared_task(name="scn.sweep")
def sweep():
    """Publish what a crash or an outage left in the outbox, and what is not done in time (beat)."""
    return outbox.publish(current_app.extensions["scn"])


@shared_task(name="scn.ops.sweep_attachments")
def sweep_attachments():
    """Remove stored files that no attachment names, once past their grace period (beat)."""
    return attachments.sweep_orphans(current_app.extensions["scn"])


@shared_task(name="scn.ops.sweep_sessions")
def sweep_sessions():
    """Remove the web sessions that ended or outlived their cookie (beat, hourly)."""
    return web_sessions.sweep(current_app.extensions["scn"])


@shared_task(name="scn.ops.sample")
def sample_queues():
    """Record queue depths for the dashboard's charts (beat, every minute)."""
    return ops.sample_queues(current_app.extensions["scn"])


@shared_task(name="scn.ops.watch")
def watch():
    """Open and clear incidents, alerting operators once each (beat, every 30 s)."""
    return alerts.watch(current_app.extensions["scn"], current_app.extensions["celery"])


@shared_task(name="scn.ops.remind")
def remind():
    """Remind reviewers of nominations waiting too long, once per period (beat, every 15 minutes)."""
    return alerts.remind(current_app.extensions["scn"])


@shared_task(name="scn.ops.digest")
def send_digests():
    """Send yesterday's daily digests not sent yet (beat, hourly: soon after midnight UTC, and again after a
    failure)."""
    return digest.send_digests(current_app.extensions["scn"])
