"""What each queue does with an event, and what happens when it gives up."""

from __future__ import annotations

import random

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import Services, checks, failures, handover, notifications, webhooks
from scn_workflow.services.effects import already_done
from scn_workflow.services.relay import mark_done_many

TASK_NAMES = {"checks": "scn.checks", "notifications": "scn.notifications", "handover": "scn.handover",
              "webhooks": "scn.webhooks"}


UNCHECKED = ("already done", "not a submission")  # run_checks outcomes that leave the queue's done mark to us


def close(svc: Services, queue: str, event_ids: list[str]) -> None:
    """Mark `queue` done, in one transaction, for each of the events not marked yet."""
    if not event_ids:
        return
    with svc.uow() as uow:
        todo = [e for e in event_ids if not already_done(uow, e, f"done:{queue}")]
        if todo:
            mark_done_many(uow, todo, queue, svc.clock())
            uow.commit()


def _checks(svc: Services, event_id: str):
    result = checks.run_checks(svc, event_id)  # marks the queue done when it runs or skips them
    if result in UNCHECKED:
        close(svc, "checks", [event_id])
    return result


HANDLERS = {"checks": _checks, "notifications": notifications.notify, "handover": handover.deliver,
            "webhooks": webhooks.deliver_event}


def backoff(retries: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: between half and all of base * 2^retries, at most cap."""
    return min(cap, base * (2 ** retries)) * random.uniform(0.5, 1.0)


def give_up(svc: Services, queue: str, event_id: str, error: str, attempts: int) -> int:
    """The retries are exhausted: record a failure an operator can retry, and close the queue's work.

    A handover that fails for good also records `handover.failed` on the nomination.
    """
    if queue == "handover":
        handover.record_failed(svc, event_id, error)
    failure_id = failures.record(svc, task=TASK_NAMES[queue], event_id=event_id, arguments=[queue, event_id],
                                 error=error, attempts=attempts)
    close(svc, queue, [event_id])  # so the sweep stops re-publishing it
    return failure_id


def reopen(svc: Services, queue: str, event_id: str) -> None:
    """Undo give_up's closing mark, before the work is published again by an operator."""
    with svc.uow() as uow:
        uow.session.execute(sa.delete(t.effects).where(t.effects.c.event_id == event_id,
                                                       t.effects.c.effect == f"done:{queue}"))
        uow.session.execute(sa.update(t.outbox).where(t.outbox.c.id == event_id).values(completed_at=None))
        uow.commit()
