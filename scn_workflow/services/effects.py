"""The idempotency record: each effect of an event is written once, keyed by event id.

An effect is a name such as `mail:<address>`, `webhook:<id>`, `handover:<channel>`, `checks` or
`done:<queue>` (the queue finished its work for the event). A queue that calls out over the network
first claims the event (`claim:<queue>`), so that two copies of one message never call out at once.
"""

from __future__ import annotations

import enum
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork


class Outcome(enum.StrEnum):
    """What a reaction did with an event, besides the checks' own outcomes."""
    DONE = "done"
    ALREADY_DONE = "already done"
    IN_PROGRESS = "in progress elsewhere"  # another worker holds the claim; it finishes the work
    NOT_A_SUBMISSION = "not a submission"
    SKIPPED = "skipped"  # the submission is no longer the current one


def _insert(uow: UnitOfWork):
    return (postgresql.insert if uow.dialect == "postgresql" else sqlite.insert)(t.effects)


def recorded(uow: UnitOfWork, event_id: str) -> set[str]:
    """Every effect recorded for the event."""
    return set(uow.session.scalars(sa.select(t.effects.c.effect).where(t.effects.c.event_id == event_id)))


def record_effects(uow: UnitOfWork, effects: list[tuple[str, str, str | None]], now) -> list[tuple[str, str]]:
    """Record (event id, effect, detail) rows unless already there; returns the keys this call recorded.

    Sorted, so two transactions recording overlapping sets take their locks in the same order.
    """
    if not effects:
        return []
    rows = [{"event_id": e, "effect": effect, "recorded_at": now, "detail": detail}
            for e, effect, detail in sorted(effects)]
    stmt = _insert(uow).on_conflict_do_nothing().returning(t.effects.c.event_id, t.effects.c.effect)
    return [tuple(row) for row in uow.session.execute(stmt, rows)]


def claim(uow: UnitOfWork, event_id: str, queue: str, now, lease_s: float) -> bool:
    """Claim the queue's work for the event for `lease_s` seconds, in the caller's transaction.

    False when another worker holds a claim younger than that. A worker that dies holding a claim
    loses it when the lease ends, and the sweep's next publishing of the event then goes ahead.
    """
    insert = _insert(uow).values(event_id=event_id, effect=f"claim:{queue}", recorded_at=now)
    stmt = insert.on_conflict_do_update(
        index_elements=[t.effects.c.event_id, t.effects.c.effect], set_={"recorded_at": now},
        where=t.effects.c.recorded_at < now - timedelta(seconds=lease_s)).returning(t.effects.c.event_id)
    return uow.session.execute(stmt).first() is not None


def begin(uow: UnitOfWork, event_id: str, queue: str, now, lease_s: float) -> tuple[Outcome | None, set[str]]:
    """Start a queue's work on an event, in the caller's transaction: (ALREADY_DONE, …) when the queue
    is done with it, (IN_PROGRESS, …) when another worker holds the claim, else claim it and return
    (None, the effects recorded so far)."""
    done = recorded(uow, event_id)
    if f"done:{queue}" in done:
        return Outcome.ALREADY_DONE, done
    if not claim(uow, event_id, queue, now, lease_s):
        return Outcome.IN_PROGRESS, done
    return None, done


def release(uow: UnitOfWork, event_id: str, queue: str) -> None:
    """Give up the claim, in the caller's transaction, so that a retry may claim the work at once."""
    uow.session.execute(sa.delete(t.effects).where(t.effects.c.event_id == event_id,
                                                   t.effects.c.effect == f"claim:{queue}"))
