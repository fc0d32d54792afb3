"""The idempotency record: each effect of an event is written once, keyed by event id."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork


def already_done(uow: UnitOfWork, event_id: str, effect: str) -> bool:
    return uow.session.scalar(sa.select(sa.func.count()).select_from(t.effects).where(
        t.effects.c.event_id == event_id, t.effects.c.effect == effect)) > 0


def record_effect(uow: UnitOfWork, event_id: str, effect: str, now, detail: str | None = None) -> None:
    """Record an effect in the caller's transaction; a duplicate fails the whole transaction."""
    uow.session.execute(sa.insert(t.effects).values(event_id=event_id, effect=effect,
                                                    recorded_at=now, detail=detail))


@functools.cache
def _insert_effects(dialect: str):
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(t.effects).on_conflict_do_nothing().returning(t.effects.c.event_id, t.effects.c.effect)


def record_effects(uow: UnitOfWork, effects: list[tuple[str, str, str | None]], now) -> list[tuple[str, str]]:
    """Record (event id, effect, detail) rows unless already there; returns the keys this call recorded.

    A row another transaction is recording waits for it, then counts as not recorded here.
    Sorted, so two workers recording overlapping sets take their locks in the same order. One
    statement built once for any number of rows (SQLAlchemy sends them as one multi-row INSERT).
    """
    if not effects:
        return []
    rows = [{"event_id": e, "effect": effect, "recorded_at": now, "detail": detail}
            for e, effect, detail in sorted(effects)]
    return [tuple(row) for row in uow.session.execute(_insert_effects(uow.dialect), rows)]


def lock_effect(uow: UnitOfWork, event_id: str, effect: str) -> None:
    """Hold a lock on (event, effect) for this transaction, so two workers never both perform it.

    SQLite needs none: BEGIN IMMEDIATE already serialises writers.
    """
    if uow.dialect == "postgresql":
        uow.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                            {"key": f"{event_id}/{effect}"})
