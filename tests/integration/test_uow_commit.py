"""What a unit of work writes when it commits a nomination's change: the change in one UPDATE, its
event and its outbox row; on both databases the same rows, the same refusals."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain import workflow
from scn_workflow.domain.audit import verify_chain
from scn_workflow.domain.errors import StaleVersion
from scn_workflow.domain.rules import Facts
from scn_workflow.services import nominations
from tests.conftest import ASSESSMENT, build_world, complete_draft


def _row(svc, nomination_id):
    with svc.engine.connect() as c:
        return c.execute(sa.select(t.nominations).where(t.nominations.c.id == nomination_id)).mappings().one()


def _events(svc, nomination_id):
    with svc.engine.connect() as c:
        events = c.execute(sa.select(t.events).where(t.events.c.nomination_id == nomination_id)
                           .order_by(t.events.c.seq)).all()
        outbox = c.scalars(sa.select(t.outbox.c.id).where(t.outbox.c.nomination_id == nomination_id)).all()
    return events, outbox


def test_each_change_is_written_whole_with_its_event_and_outbox_row(svc, clock):
    world = build_world(svc)
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    with svc.uow() as uow:  # the checks, as the worker records them
        loaded = uow.session.get(type(n), n.id)
        loaded.complete_checks("passed", [], svc.clock())
        uow.commit()
    n = nominations.fire(svc, world.reviewer_sg, n.id, "review", loaded.version, assessment=ASSESSMENT)
    n = nominations.fire(svc, world.reviewer_ph, n.id, "accept", n.version)

    row = _row(svc, n.id)
    for column in ("state", "version", "updated_at", "submitted_at", "reviewed_by", "assessment", "checks_outcome",
                   "last_event_hash", "event_count"):
        assert row[column] == getattr(n, column), column
    assert (row["state"], row["version"], row["reviewed_by"], row["assessment"]) == \
        ("accepted", 5, "rev-sg", ASSESSMENT)
    events, outbox = _events(svc, n.id)
    assert [e.name for e in events] == ["nomination.created", "nomination.submitted", "checks.completed",
                                        "nomination.reviewed", "nomination.accepted"]
    assert sorted(outbox) == sorted(e.event_id for e in events)
    assert verify_chain(n.id, events) is None
    assert row["last_event_hash"] == events[-1].hash and row["event_count"] == len(events)


def test_a_version_changed_after_loading_is_refused_and_nothing_is_written(pg_svc):
    # PostgreSQL only: SQLite holds the write lock from BEGIN, so no one else can change the row meanwhile.
    svc = pg_svc
    world = build_world(svc)
    n = nominations.create(svc, world.submitter_id, complete_draft())
    with svc.uow() as uow:
        loaded = nominations.load_visible(uow, world.submitter_id, n.id)
        workflow.fire(loaded, "withdraw", Facts(actor=world.submitter_id, now=svc.clock()))
        with svc.engine.begin() as other:  # someone else's change, committed meanwhile
            other.execute(sa.update(t.nominations).where(t.nominations.c.id == n.id)
                          .values(version=t.nominations.c.version + 1))
        with pytest.raises(StaleVersion):
            uow.commit()
    assert _row(svc, n.id)["state"] == "drafted"
    events, outbox = _events(svc, n.id)
    assert [e.name for e in events] == ["nomination.created"] and len(outbox) == 1


def test_a_unit_of_work_may_commit_twice_and_each_change_is_checked_against_the_one_before(svc, clock):
    world = build_world(svc)
    n = nominations.create(svc, world.submitter_id, complete_draft())
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", n.version)
    with svc.uow() as uow:
        loaded = uow.session.get(type(n), n.id)
        loaded.complete_checks("warning", [], svc.clock())
        uow.commit()
        assert not uow.session.dirty
        loaded.note_handover_failed("an example", "no-event", svc.clock())
        uow.commit()
    row = _row(svc, n.id)
    assert (row["version"], row["checks_outcome"], row["event_count"]) == (n.version + 2, "warning", 4)
    events, outbox = _events(svc, n.id)
    assert [e.name for e in events][-2:] == ["checks.completed", "handover.failed"] and len(outbox) == 4
    assert verify_chain(n.id, events) is None


def test_a_transition_updates_its_nomination_once(svc, clock):
    """The chain's columns (last_event_hash, event_count) go in the change's own UPDATE: a second
    UPDATE of the row makes PostgreSQL check its foreign keys again, locking the member state's row,
    which deadlocks with a submission holding that lock (seen racing submit and withdraw)."""
    world = build_world(svc)
    n = nominations.create(svc, world.submitter_id, complete_draft())
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(svc.engine, "before_cursor_execute", seen)
    try:
        nominations.fire(svc, world.submitter_id, n.id, "withdraw", n.version)
    finally:
        sa.event.remove(svc.engine, "before_cursor_execute", seen)
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE NOMINATIONS")]
    assert len(updates) == 1, updates
    assert "last_event_hash" in updates[0] and "state" in updates[0]
