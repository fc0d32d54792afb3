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

import functools
import json
import logging
from datetime import timedelta
from typing import Callable, Iterable

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.services import Services
from scn_workflow.services.effects import record_effects

log = logging.getLogger(__name__)

QUEUES = ("checks", "notifications", "handover", "webhooks")

NOTIFIED = frozenset({"nomination.submitted", "checks.completed", "nomination.returned", "nomination.reviewed",
                      "nomination.accepted", "nomination.rejected", "nomination.withdrawn",
                      "nomination.handed_over", "handover.failed"})

# (queue, event ids, correlation_id=...): one message for up to EVENTS_PER_MESSAGE events of a
# queue; raises when the broker is unreachable.
Publisher = Callable[..., None]
EVENTS_PER_MESSAGE = 50


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


def _subscriptions():
    """The event names of every active webhook, as one column: JSON lists, one to a line. A scalar
    subquery, so the statement that reads outbox rows brings them along instead of a query of its own."""
    w = t.webhooks.c
    return sa.select(sa.func.aggregate_strings(sa.cast(w.events, sa.Text), "\n")).where(
        w.active.is_(True)).scalar_subquery()


def _queues(row, subscribed: set[str]) -> list[str]:
    """The queues an outbox row goes to: those the relay recorded, else derived from its event."""
    return row.queues if row.queues is not None else queues_for(row.event_name, row.event_name in subscribed)


def _subscribed(aggregated: str | None) -> set[str]:
    wanted = set()
    for events in (aggregated or "").split("\n"):
        if events:
            wanted.update(json.loads(events) or [])
    return wanted


@functools.cache
def _committed_rows(lock: bool) -> sa.Select:
    """The rows a commit just wrote, if no one published them yet, with the subscriptions; built once."""
    o = t.outbox.c
    stmt = sa.select(o.id, o.event_name, o.queues, o.published_at, o.publish_count, o.correlation_id,
                     _subscriptions().label("subscribed")) \
        .where(o.id.in_(sa.bindparam("ids", expanding=True)), o.published_at.is_(None)) \
        .order_by(o.created_at).limit(sa.bindparam("limit"))
    return stmt.with_for_update(skip_locked=True) if lock else stmt


@functools.cache
def _publish_marks() -> dict[str, sa.Update]:
    """What publish() writes back to a row (executemany, by b_id): published, completed at once (no
    queue to publish to), or failed. Built once."""
    o = t.outbox.c
    now = sa.bindparam("b_now", type_=o.published_at.type)

    def update(**values):
        return sa.update(t.outbox).where(o.id == sa.bindparam("b_id")).values(queues=sa.bindparam("b_queues"),
                                                                             **values)

    return {"published": update(published_at=now, publish_count=o.publish_count + 1, last_error=None),
            "completed": update(published_at=sa.func.coalesce(o.published_at, now), completed_at=now),
            "failed": update(last_error=sa.bindparam("b_error"))}


@functools.cache
def _done_marks() -> sa.Select:
    f = t.effects.c
    return sa.select(f.event_id, f.effect).where(f.event_id.in_(sa.bindparam("event_ids", expanding=True)),
                                                 f.effect.like("done:%"))


def _done(uow: UnitOfWork, event_ids: Iterable[str]) -> dict[str, set[str]]:
    done: dict[str, set[str]] = {}
    event_ids = list(event_ids)
    if not event_ids:
        return done
    for event_id, effect in uow.session.execute(_done_marks(), {"event_ids": event_ids}):
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
    """Publish the given outbox rows (or those due); mark them published. Returns how many
    (queue, event) pairs were published.

    The events due for a queue travel together, up to EVENTS_PER_MESSAGE to a message, so a
    worker handles a burst of events in one task. On PostgreSQL the rows are claimed with FOR
    UPDATE SKIP LOCKED, so several relays can run at once without publishing a row twice at the
    same moment.
    """
    now = svc.clock()
    with svc.uow() as uow:
        o = t.outbox.c
        if outbox_ids is not None:  # after a commit: the usual case, one statement built once
            rows = uow.session.execute(_committed_rows(uow.dialect == "postgresql"),
                                       {"ids": list(outbox_ids), "limit": limit}).all()
        else:
            due = sa.and_(o.completed_at.is_(None), o.published_at < _republish_before(now, svc.settings))
            stmt = sa.select(o.id, o.event_name, o.queues, o.published_at, o.publish_count, o.correlation_id,
                             _subscriptions().label("subscribed")) \
                .where(due if stale_only else sa.or_(o.published_at.is_(None), due)) \
                .order_by(o.created_at).limit(limit)
            if uow.dialect == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = uow.session.execute(stmt).all()
        if not rows:
            return 0
        subscribed = _subscribed(rows[0].subscribed)
        # A row never published has no reactions recorded yet (the relay after a commit sees only
        # those): no query for them. Were one recorded by hand, its handler would skip it anyway.
        done = _done(uow, [r.id for r in rows if r.publish_count])
        queues_of, pending, by_queue = {}, {}, {}  # pending: outbox id -> its queues not done yet
        for row in rows:
            queues_of[row.id] = _queues(row, subscribed)
            for queue in queues_of[row.id]:
                if queue not in done.get(row.id, set()):
                    pending.setdefault(row.id, []).append(queue)
                    by_queue.setdefault(queue, []).append(row)
        failed: dict[str, str] = {}  # outbox id -> why a message for it could not be published
        out: set[tuple[str, str]] = set()  # (queue, outbox id) published
        sent = 0
        for queue, due_rows in by_queue.items():
            for start in range(0, len(due_rows), EVENTS_PER_MESSAGE):
                chunk = due_rows[start:start + EVENTS_PER_MESSAGE]
                ids = [row.id for row in chunk]
                correlation_ids = {row.correlation_id for row in chunk}
                try:
                    if len(correlation_ids) == 1 and None not in correlation_ids:
                        publisher(queue, ids, correlation_id=chunk[0].correlation_id)
                    else:
                        publisher(queue, ids)
                    sent += len(ids)
                    out.update((queue, outbox_id) for outbox_id in ids)
                except Exception as exc:  # noqa: BLE001 - the broker is down: the sweep retries later
                    log.warning("outbox relay: publishing %d event(s) to %s failed: %s", len(ids), queue, exc)
                    failed.update((outbox_id, f"publish failed: {exc}"[:1000]) for outbox_id in ids)
                    break
            if failed:
                break  # the broker is down: leave the rest to the sweep
        # Published: every queue due got its message. A row whose turn never came stays as it was.
        published = [{"b_id": row.id, "b_queues": queues_of[row.id]} for row in rows if row.id in pending
                     and row.id not in failed and all((q, row.id) in out for q in pending[row.id])]
        completed = [{"b_id": row.id, "b_queues": queues_of[row.id]} for row in rows if row.id not in pending]
        marks = _publish_marks()
        if published:  # executemany: one round trip on PostgreSQL (psycopg's pipeline)
            uow.session.execute(marks["published"], [dict(row, b_now=now) for row in published])
        if completed:
            uow.session.execute(marks["completed"], [dict(row, b_now=now) for row in completed])
        if failed:
            uow.session.execute(marks["failed"], [
                {"b_id": outbox_id, "b_queues": queues_of[outbox_id], "b_error": error}
                for outbox_id, error in failed.items()])
        uow.commit()
    return sent


def mark_done(uow: UnitOfWork, event_id: str, queue: str, now) -> None:
    """Record, in the caller's transaction, that `queue` finished its work for the event."""
    mark_done_many(uow, [event_id], queue, now)


@functools.cache
def _rows_to_mark(lock: bool) -> sa.Select:
    o = t.outbox.c
    stmt = sa.select(o.id, o.queues, o.event_name, _subscriptions().label("subscribed")) \
        .where(o.id.in_(sa.bindparam("ids", expanding=True))).order_by(o.id)
    # Two queues finishing the same event at once: the second waits and sees the first's mark,
    # so one of them closes the event. In id order, so two batches never wait on each other.
    return stmt.with_for_update() if lock else stmt


@functools.cache
def _complete() -> sa.Update:
    o = t.outbox.c
    return sa.update(t.outbox).where(o.id.in_(sa.bindparam("ids", expanding=True))).values(
        completed_at=sa.bindparam("now", type_=o.completed_at.type))


def mark_done_many(uow: UnitOfWork, event_ids: Iterable[str], queue: str, now) -> None:
    """Record, in the caller's transaction, that `queue` finished its work for each event, and
    complete the outbox rows whose every queue is now done. (The statements are built once.)"""
    event_ids = sorted(set(event_ids))
    if not event_ids:
        return
    rows = uow.session.execute(_rows_to_mark(uow.dialect == "postgresql"), {"ids": event_ids}).all()
    record_effects(uow, [(event_id, f"done:{queue}", None) for event_id in event_ids], now)
    if not rows:
        return
    # The relay may not have committed its bookkeeping yet: derive the queues the same way.
    subscribed = _subscribed(rows[0].subscribed)
    done = _done(uow, [row.id for row in rows])
    complete = [row.id for row in rows if set(_queues(row, subscribed)) <= done.get(row.id, set()) | {queue}]
    if complete:
        uow.session.execute(_complete(), {"ids": complete, "now": now})


IN_FLIGHT_WINDOW_S = 10.0


def in_flight(svc: Services) -> int:
    """Outbox rows published in the last IN_FLIGHT_WINDOW_S and not yet complete: the events the
    workers are working through now. Older ones (a queue without a worker, messages a broker lost)
    are the sweep's and the operators' business, and must not slow everything else down."""
    o = t.outbox.c
    since = sa.literal(svc.clock() - timedelta(seconds=IN_FLIGHT_WINDOW_S), o.published_at.type)
    with svc.uow(read_only=True) as uow:
        return uow.session.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(
            o.completed_at.is_(None), o.published_at >= since))


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
