"""The outbox relay: which queues react to an event, publishing after commit, and the sweep.

Publishing is injected (`Publisher`): Celery in a deployment, the in-process worker in
embedded mode, so this module knows nothing of Celery. A message is (queue, event id) and
its id is "<outbox id>:<queue>". A queue's handler records `done:<queue>` against the
event when all its effects are recorded; an event is complete when every queue is done.
The sweep publishes rows never published (a crash or a broker outage) and re-publishes the
queues not done within SCN_REDELIVER_AFTER_S (a killed worker), so delivery never waits on
the broker's own redelivery; a row re-published and still not done waits longer each time.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Callable, Iterable

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.services import Services
from scn_workflow.services.effects import record_effect

log = logging.getLogger(__name__)

QUEUES = ("checks", "notifications", "handover", "webhooks")

NOTIFIED = frozenset({"nomination.submitted", "checks.completed", "nomination.returned", "nomination.reviewed",
                      "nomination.accepted", "nomination.rejected", "nomination.withdrawn",
                      "nomination.handed_over", "handover.failed"})

Publisher = Callable[..., None]  # (queue, event id, correlation_id=...); raises when the broker is unreachable


def queues_for(event_name: str, subscribed: bool) -> list[str]:
    """The queues that react to an event (webhooks only when a subscription wants it)."""
    queues = []
    if event_name == "nomination.submitted":
        queues.append("checks")
    if event_name in NOTIFIED:
        queues.append("notifications")
    if event_name == "nomination.accepted":
        queues.append("handover")
    if subscribed:
        queues.append("webhooks")
    return queues


def _subscribed_events(uow: UnitOfWork) -> set[str]:
    wanted = set()
    for events in uow.session.scalars(sa.select(t.webhooks.c.events).where(t.webhooks.c.active.is_(True))):
        wanted.update(events or [])
    return wanted


def _done(uow: UnitOfWork, event_ids: Iterable[str]) -> dict[str, set[str]]:
    done: dict[str, set[str]] = {}
    event_ids = list(event_ids)
    if not event_ids:
        return done
    rows = uow.session.execute(sa.select(t.effects.c.event_id, t.effects.c.effect).where(
        t.effects.c.event_id.in_(list(event_ids)), t.effects.c.effect.like("done:%")))
    for event_id, effect in rows:
        done.setdefault(event_id, set()).add(effect.removeprefix("done:"))
    return done


def _republish_before(now, settings):
    """When a row not done is published again: SCN_REDELIVER_AFTER_S after its first publishing,
    then twice as long after each re-publishing, up to 8 times. A backlog that takes longer than
    SCN_REDELIVER_AFTER_S to drain is then not flooded with copies of its own messages."""
    o = t.outbox.c

    def before(factor):
        return sa.literal(now - timedelta(seconds=settings.redeliver_after_s * factor), o.published_at.type)

    return sa.case((o.publish_count <= 1, before(1)), (o.publish_count == 2, before(2)),
                   (o.publish_count == 3, before(4)), else_=before(8))


def publish(svc: Services, publisher: Publisher, outbox_ids: list[str] | None = None, *,
            stale_only: bool = False, limit: int = 500) -> int:
    """Publish the given outbox rows (or those due); mark them published. Returns messages sent.

    On PostgreSQL the rows are claimed with FOR UPDATE SKIP LOCKED, so several relays can
    run at once without publishing a row twice at the same moment.
    """
    now = svc.clock()
    sent = 0
    with svc.uow() as uow:
        o = t.outbox.c
        stmt = sa.select(o.id, o.event_name, o.queues, o.published_at, o.publish_count, o.correlation_id) \
            .order_by(o.created_at).limit(limit)
        if outbox_ids is not None:
            stmt = stmt.where(o.id.in_(outbox_ids), o.published_at.is_(None))
        else:
            due = sa.and_(o.completed_at.is_(None), o.published_at < _republish_before(now, svc.settings))
            stmt = stmt.where(due if stale_only else sa.or_(o.published_at.is_(None), due))
        if uow.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = uow.session.execute(stmt).all()
        if not rows:
            return 0
        subscribed = _subscribed_events(uow) if any(r.queues is None for r in rows) else set()
        # A row never published has no reactions recorded yet (the relay after a commit sees only
        # those): no query for them. Were one recorded by hand, its handler would skip it anyway.
        done = _done(uow, [r.id for r in rows if r.publish_count])
        published, completed = [], []
        for row in rows:
            queues = row.queues if row.queues is not None else queues_for(row.event_name,
                                                                           row.event_name in subscribed)
            pending = [q for q in queues if q not in done.get(row.id, set())]
            try:
                for queue in pending:
                    if row.correlation_id:
                        publisher(queue, row.id, correlation_id=row.correlation_id)
                    else:
                        publisher(queue, row.id)
                    sent += 1
            except Exception as exc:  # noqa: BLE001 - the broker is down: the sweep retries later
                log.warning("outbox relay: publishing %s failed: %s", row.id, exc)
                uow.session.execute(sa.update(t.outbox).where(o.id == row.id).values(
                    queues=queues, last_error=f"publish failed: {exc}"[:1000]))
                break
            (published if pending else completed).append((row.id, queues))
        for outbox_id, queues in published:
            uow.session.execute(sa.update(t.outbox).where(o.id == outbox_id).values(
                queues=queues, published_at=now, publish_count=o.publish_count + 1, last_error=None))
        for outbox_id, queues in completed:
            uow.session.execute(sa.update(t.outbox).where(o.id == outbox_id).values(
                queues=queues, published_at=sa.func.coalesce(o.published_at, now), completed_at=now))
        uow.commit()
    return sent


def mark_done(uow: UnitOfWork, event_id: str, queue: str, now) -> None:
    """Record, in the caller's transaction, that `queue` finished its work for the event."""
    stmt = sa.select(t.outbox.c.queues, t.outbox.c.event_name).where(t.outbox.c.id == event_id)
    if uow.dialect == "postgresql":
        # Two queues finishing the same event at once: the second waits and sees the first's mark,
        # so one of them closes the event.
        stmt = stmt.with_for_update()
    row = uow.session.execute(stmt).one_or_none()
    record_effect(uow, event_id, f"done:{queue}", now)
    if row is None:
        return
    # The relay may not have committed its bookkeeping yet: derive the queues the same way.
    queues = row.queues if row.queues is not None else queues_for(
        row.event_name, row.event_name in _subscribed_events(uow))
    done = _done(uow, [event_id]).get(event_id, set()) | {queue}
    if set(queues) <= done:
        uow.session.execute(sa.update(t.outbox).where(t.outbox.c.id == event_id).values(completed_at=now))


def backlog(svc: Services) -> dict:
    """Outbox rows not yet published and not yet complete, with the age of the oldest."""
    now = svc.clock()
    with svc.uow() as uow:
        o = t.outbox.c
        unpublished, oldest = uow.session.execute(
            sa.select(sa.func.count(), sa.func.min(o.created_at)).where(o.published_at.is_(None))).one()
        incomplete = uow.session.scalar(sa.select(sa.func.count()).select_from(t.outbox)
                                        .where(o.completed_at.is_(None)))
    age = (now - oldest).total_seconds() if oldest else 0.0
    return {"unpublished": unpublished, "incomplete": incomplete, "oldest_unpublished_age_s": round(age, 3)}
