"""Running the automated checks of a submission, once per submission event."""

from __future__ import annotations

from dataclasses import asdict

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain import checks as domain_checks
from scn_workflow.domain.model import ACTIVE_STATES, Cycle, LimitOverride, Nomination
from scn_workflow.services import Services
from scn_workflow.services.effects import already_done, record_effect
from scn_workflow.services.relay import mark_done


def _facts(uow: UnitOfWork, nomination: Nomination) -> domain_checks.CheckFacts:
    s, n = uow.session, t.nominations.c
    cycle = s.get(Cycle, nomination.cycle)
    override = s.get(LimitOverride, (nomination.cycle, nomination.member_state))
    active = s.scalar(sa.select(sa.func.count()).select_from(t.nominations).where(
        n.cycle == nomination.cycle, n.member_state == nomination.member_state,
        n.state.in_(ACTIVE_STATES), n.id != nomination.id))
    city = sa.func.lower(n.city_name) == nomination.city_name.lower()
    same = s.scalars(sa.select(n.reference).where(
        city, n.cycle == nomination.cycle, n.id != nomination.id,
        n.state.in_(ACTIVE_STATES)).order_by(n.reference)).all()
    earlier = s.scalars(sa.select(n.cycle).where(
        city, n.cycle != nomination.cycle, n.state.in_(("accepted", "handed_over")))
        .distinct().order_by(n.cycle)).all()
    has_plan = s.scalar(sa.select(sa.func.count()).select_from(t.attachments).where(
        t.attachments.c.nomination_id == nomination.id, t.attachments.c.kind == "action_plan")) > 0
    return domain_checks.CheckFacts(
        active_in_cycle=active, limit=override.limit if override else cycle.limit_per_state,
        same_city_in_cycle=list(same), accepted_earlier=list(earlier),
        requires_action_plan=cycle.requires_action_plan, has_action_plan=has_plan)


def run_checks(svc: Services, event_id: str) -> str:
    """Run the checks for the submission `event_id`; record them and `checks.completed`.

    The same transaction marks the checks queue done with the event. Idempotent: a second call for the same event changes nothing. Returns what happened.
    """
    with svc.uow() as uow:
        if already_done(uow, event_id, "checks"):
            return "already done"
        event = uow.session.execute(sa.select(t.events.c.nomination_id, t.events.c.name)
                                    .where(t.events.c.event_id == event_id)).one_or_none()
        if event is None or event.name != "nomination.submitted":
            return "not a submission"
        nomination = uow.session.get(Nomination, event.nomination_id)
        latest = uow.session.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == nomination.id, t.events.c.name == "nomination.submitted")
            .order_by(t.events.c.seq.desc()).limit(1))
        now = svc.clock()
        if nomination.state != "submitted" or latest != event_id or nomination.checks_outcome != "pending":
            record_effect(uow, event_id, "checks", now, "skipped: the submission is no longer current")
            mark_done(uow, event_id, "checks", now)
            uow.commit()
            return "skipped"
        results = domain_checks.run(nomination, _facts(uow, nomination))
        uow.session.execute(sa.insert(t.checks), [
            {"nomination_id": nomination.id, "event_id": event_id, "name": r.name, "outcome": r.outcome,
             "blocking": r.blocking, "message": r.message, "ran_at": now} for r in results])
        outcome = domain_checks.outcome(results)
        nomination.complete_checks(outcome, [asdict(r) for r in results], now)
        record_effect(uow, event_id, "checks", now, outcome)
        mark_done(uow, event_id, "checks", now)  # the checks queue's work for the event ends here
        uow.commit()
        return outcome
