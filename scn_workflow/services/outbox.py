"""The outbox: publishing events to the queues that react to them, and knowing when they are done.

A message is one event id on one queue (`svc.publish(queue, event_id)`). A commit writes each
event's outbox row with the queues that react to it, and the process then sends them at once
(`send_committed`). The sweep (beat, or the embedded worker) publishes what a crash or a broker
outage left behind, and publishes again every event not complete SCN_REDELIVER_AFTER_S after it
was last published (a killed worker's messages). Each queue records
`done:<queue>` for the event when its work is recorded; the outbox row is complete when every queue
it was published to is done.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork, subscribed_events
from scn_workflow.domain.workflow import queues_for
from scn_workflow.services import Services
from scn_workflow.services.effects import record_effects

log = logging.getLogger(__name__)


def _done(uow: UnitOfWork, event_ids: list[str]) -> dict[str, set[str]]:
    """The queues done with each event."""
    done: dict[str, set[str]] = {}
    if event_ids:
        f = t.effects.c
        for event_id, effect in uow.session.execute(sa.select(f.event_id, f.effect).where(
                f.event_id.in_(event_ids), f.effect.like("done:%"))):
            done.setdefault(event_id, set()).add(effect.removeprefix("done:"))
    return done


def _send(svc: Services, event_id: str, queues: list[str]) -> str | None:
    """Publish the event to each queue; None, or why the broker refused it."""
    try:
        for queue in queues:
            svc.publish(queue, event_id)
    except Exception as exc:  # noqa: BLE001 - the broker is away: the row stays due for the sweep
        return f"publish failed: {exc}"[:1000]
    return None


def send_committed(svc: Services, committed: list[tuple[str, list[str]]]) -> None:
    """After a commit (`svc.after_commit` with a broker): send each event to its queues. The commit
    wrote the rows as published; one that could not be sent is marked unpublished for the sweep."""
    failed = {event_id: error for event_id, queues in committed if (error := _send(svc, event_id, queues))}
    if failed:
        log.warning("outbox: %d event(s) not published after commit, left to the sweep: %s",
                    len(failed), next(iter(failed.values())))
        try:
            with svc.uow() as uow:
                for event_id, error in failed.items():
                    uow.session.execute(sa.update(t.outbox).where(t.outbox.c.id == event_id).values(
                        published_at=None, publish_count=t.outbox.c.publish_count - 1, last_error=error))
                uow.commit()
        except Exception:  # noqa: BLE001 - then the sweep publishes them SCN_REDELIVER_AFTER_S later
            log.warning("outbox: could not mark them unpublished", exc_info=True)


def publish(svc: Services) -> int:
    """The sweep: publish the events never published, and again those not complete
    SCN_REDELIVER_AFTER_S after they were last published; at most SCN_SWEEP_BATCH. Returns how
    many messages went out.

    On PostgreSQL the rows are locked (FOR UPDATE SKIP LOCKED) until they are marked, so two sweeps
    never publish one row at the same moment. When the broker is down, the rest waits.
    """
    now = svc.clock()
    o = t.outbox.c
    with svc.uow() as uow:
        again = o.published_at < now - timedelta(seconds=svc.settings.redeliver_after_s)
        due = sa.and_(o.completed_at.is_(None), sa.or_(o.published_at.is_(None), again))
        stmt = sa.select(o.id, o.event_name, o.queues, o.publish_count).where(due).order_by(o.created_at) \
            .limit(svc.settings.sweep_batch)
        if uow.dialect == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = uow.session.execute(stmt).all()
        if not rows:
            return 0
        # Rows written before the outbox held its queues get them now.
        subscribed = subscribed_events(uow.session) if any(row.queues is None for row in rows) else set()
        done = _done(uow, [row.id for row in rows if row.publish_count])
        sent = 0
        for row in rows:
            queues = row.queues if row.queues is not None else queues_for(row.event_name,
                                                                           row.event_name in subscribed)
            pending = [q for q in queues if q not in done.get(row.id, set())]
            error = _send(svc, row.id, pending)
            if error:  # the broker is down: the next sweep tries again
                log.warning("outbox: publishing %s failed: %s", row.id, error)
                uow.session.execute(sa.update(t.outbox).where(o.id == row.id).values(last_error=error))
                break
            sent += len(pending)
            values = {"published_at": now, "publish_count": o.publish_count + 1, "queues": queues,
                      "last_error": None}
            if not pending:
                values.update(published_at=sa.func.coalesce(o.published_at, now), completed_at=now)
            uow.session.execute(sa.update(t.outbox).where(o.id == row.id).values(values))
        uow.commit()
    return sent


def mark_done(uow: UnitOfWork, event_id: str, queue: str, now, effects: list = ()) -> None:
    """Record, in the caller's transaction, that `queue` finished its work for the event (with the
    (event id, effect, detail) rows of `effects`, in the same INSERT), and complete the outbox row
    when every queue it went to is done."""
    o = t.outbox.c
    stmt = sa.select(o.queues).where(o.id == event_id)
    if uow.dialect == "postgresql":
        # Two queues finishing one event at once: the second waits here and sees the first's mark.
        stmt = stmt.with_for_update()
    row = uow.session.execute(stmt).one_or_none()
    record_effects(uow, [*effects, (event_id, f"done:{queue}", None)], now)
    if row is not None and set(row.queues or ()) <= _done(uow, [event_id]).get(event_id, set()):
        uow.session.execute(sa.update(t.outbox).where(o.id == event_id).values(completed_at=now))


def reopen(svc: Services, queue: str, event_id: str) -> None:
    """Undo a queue's done mark (an operator retries a failure), so the event is worked on again."""
    with svc.uow() as uow:
        uow.session.execute(sa.delete(t.effects).where(t.effects.c.event_id == event_id,
                                                       t.effects.c.effect == f"done:{queue}"))
        uow.session.execute(sa.update(t.outbox).where(t.outbox.c.id == event_id).values(completed_at=None))
        uow.commit()


def backlog(svc: Services) -> dict:
    """Outbox rows not yet published and not yet complete, with the age of the oldest unpublished."""
    now = svc.clock()
    o = t.outbox.c
    with svc.uow(read_only=True) as uow:
        unpublished, oldest = uow.session.execute(
            sa.select(sa.func.count(), sa.func.min(o.created_at)).where(o.published_at.is_(None))).one()
        incomplete = uow.session.scalar(sa.select(sa.func.count()).select_from(t.outbox)
                                        .where(o.completed_at.is_(None)))
    age = (now - oldest).total_seconds() if oldest else 0.0
    return {"unpublished": unpublished, "incomplete": incomplete, "oldest_unpublished_age_s": round(age, 3)}
