"""The automated checks read their facts from the database: the cycle's limit or the member state's
recorded override, the other active nominations, and whether an action plan is attached. On SQLite
and PostgreSQL, through `checks.run_checks` as the checks worker calls it."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import checks, nominations
from tests.conftest import complete_draft

WHEN = datetime(2026, 1, 2, tzinfo=timezone.utc)


def submit(svc, actor, city):
    n = nominations.create(svc, actor, complete_draft(city))
    n = nominations.fire(svc, actor, n.id, "submit", n.version)
    with svc.engine.connect() as c:
        event_id = c.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == n.id, t.events.c.name == "nomination.submitted"))
    return n.id, event_id


def results(svc, nomination_id) -> dict[str, tuple[str, str]]:
    with svc.engine.connect() as c:
        rows = c.execute(sa.select(t.checks.c.name, t.checks.c.outcome, t.checks.c.message)
                         .where(t.checks.c.nomination_id == nomination_id))
        return {name: (outcome, message) for name, outcome, message in rows}


def test_checks_read_the_override_the_active_count_and_the_action_plan(svc, world):
    w = world
    with_plan, with_plan_event = submit(svc, w.submitter_id, "Banyuwangi")
    without_plan, without_plan_event = submit(svc, w.submitter_id2, "Makassar")
    thai, thai_event = submit(svc, w.submitter_th, "Phuket")
    # After the submissions: Indonesia's limit lowered to 1 by an admin, and the cycle now
    # requires an action plan, which only Banyuwangi has.
    with svc.engine.begin() as c:
        c.execute(sa.insert(t.limit_overrides).values(cycle_code=w.cycle, member_state="ID", limit=1,
                                                      reason="check facts test", set_by="root", set_at=WHEN))
        c.execute(sa.update(t.cycles).values(requires_action_plan=True))
        c.execute(sa.insert(t.attachments).values(nomination_id=with_plan, kind="action_plan",
                                                  filename="plan.pdf", content_hash="0" * 64, size=1,
                                                  uploaded_by="sub-id", uploaded_at=WHEN))
    assert checks.run_checks(svc, with_plan_event) == "failed"
    assert checks.run_checks(svc, without_plan_event) == "failed"
    assert checks.run_checks(svc, thai_event) == "failed"
    assert checks.run_checks(svc, thai_event) == "already done"

    limit_1 = ("failed", "2 active nomination(s) with this one; the limit is 1.")
    assert results(svc, with_plan)["state_limit"] == limit_1
    assert results(svc, without_plan)["state_limit"] == limit_1
    assert results(svc, thai)["state_limit"] == (
        "passed", "1 active nomination(s) with this one; the limit is 3.")  # the cycle's own limit
    assert results(svc, with_plan)["action_plan"] == ("passed", "A Smart City Action Plan is attached.")
    assert results(svc, without_plan)["action_plan"] == (
        "failed", "The cycle requires a Smart City Action Plan (PDF) and none is attached.")
    assert results(svc, thai)["action_plan"][0] == "failed"


def test_each_submission_is_checked_once_and_gets_its_checks_completed(svc, world):
    w = world
    submitted = [submit(svc, actor, city) for actor, city in (
        (w.submitter_id, "Banyuwangi"), (w.submitter_id2, "Makassar"), (w.submitter_th, "Phuket"))]
    event_ids = [event_id for _, event_id in submitted]
    assert [checks.run_checks(svc, e) for e in event_ids] == ["passed"] * 3
    assert [checks.run_checks(svc, e) for e in event_ids] == ["already done"] * 3
    with svc.engine.connect() as c:
        completed = c.execute(sa.select(t.events.c.nomination_id, t.events.c.seq).where(
            t.events.c.name == "checks.completed").order_by(t.events.c.nomination_id)).all()
        done = set(c.scalars(sa.select(t.effects.c.event_id).where(t.effects.c.effect == "done:checks")))
    assert completed == [(nomination_id, 3) for nomination_id, _ in submitted]  # created, submitted, completed
    assert done == set(event_ids)
    for nomination_id, _ in submitted:
        assert nominations.get(svc, w.reviewer_sg, nomination_id).checks_outcome == "passed"
