"""What each queue does with an event, and what happens when its retries run out."""

from __future__ import annotations

from scn_workflow.domain.workflow import QUEUES
from scn_workflow.services import Services, checks, failures, handover, notifications, outbox, webhooks

TASK_NAMES = {queue: f"scn.{queue}" for queue in QUEUES}  # the Celery task that does each queue's work

HANDLERS = {"checks": checks.run_checks, "notifications": notifications.notify, "handover": handover.deliver,
            "webhooks": webhooks.deliver_event}


def give_up(svc: Services, queue: str, event_id: str, error: str, attempts: int) -> int:
    """The retries are spent: record a failure an operator can retry or discard, and mark the queue
    done with the event so the sweep stops publishing it. A handover that fails for good also
    records `handover.failed` on the nomination."""
    if queue == "handover":
        handover.record_failed(svc, event_id, error)
    failure_id = failures.record(svc, task=TASK_NAMES[queue], event_id=event_id, arguments=[queue, event_id],
                                 error=error, attempts=attempts)
    with svc.uow() as uow:
        outbox.mark_done(uow, event_id, queue, svc.clock())
        uow.commit()
    return failure_id
