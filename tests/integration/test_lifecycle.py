"""The whole lifecycle through the service layer, on SQLite and PostgreSQL."""

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.model import SYSTEM
from scn_workflow.services import audit, checks, nominations
from tests.conftest import ASSESSMENT, complete_draft


def _submission_event(svc, nomination_id):
    with svc.engine.connect() as c:
        return c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == nomination_id, t.events.c.name == "nomination.submitted")
            .order_by(t.events.c.seq.desc()))


def test_drafted_to_handed_over(svc, world):
    n = nominations.create(svc, world.submitter_id, complete_draft())
    assert (n.state, n.version, n.reference) == ("drafted", 1, "ASCN-2026-ID-001")
    n = nominations.fire(svc, world.submitter_id, n.id, "submit", 1)
    assert checks.run_checks(svc, _submission_event(svc, n.id)) == "passed"
    n = nominations.get(svc, world.reviewer_sg, n.id)
    n = nominations.fire(svc, world.reviewer_sg, n.id, "review", n.version, assessment=ASSESSMENT)
    n = nominations.fire(svc, world.reviewer_ph, n.id, "accept", n.version)
    with svc.engine.begin() as c:
        c.execute(sa.insert(t.deliveries).values(nomination_id=n.id, event_id="e", channel="email",
                                                 target="lead@id.example", status="accepted", attempts=1,
                                                 created_at=svc.clock()))
    n = nominations.fire(svc, SYSTEM, n.id, "hand_over", n.version)
    assert n.state == "handed_over"
    names = [e["name"] for e in nominations.events(svc, world.submitter_id, n.id)]
    assert names == ["nomination.created", "nomination.submitted", "checks.completed", "nomination.reviewed",
                     "nomination.accepted", "nomination.handed_over"]
    with svc.engine.connect() as c:
        assert c.scalar(sa.select(sa.func.count()).select_from(t.outbox)) == len(names)
    assert audit.verify(svc) == (1, [])
