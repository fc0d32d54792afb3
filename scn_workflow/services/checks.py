"""Running the automated checks of a submission, once per submission event."""

from __future__ import annotations

from dataclasses import asdict

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain import checks as domain_checks
from scn_workflow.domain.model import ACTIVE_STATES, Nomination
from scn_workflow.services import Services
from scn_workflow.services.effects import record_effect
from scn_workflow.services.relay import mark_done_many


def _facts(uow: UnitOfWork, nomination: Nomination) -> domain_checks.CheckFacts:
    s, n, c, o, a = uow.session, t.nominations.c, t.cycles.c, t.limit_overrides.c, t.attachments.c
    # The cycle's limit and rule, the state's override, the active count and the action plan in one query.
    active = sa.select(sa.func.count()).select_from(t.nominations).where(
        n.cycle == nomination.cycle, n.member_state == nomination.member_state,
        n.state.in_(ACTIVE_STATES), n.id != nomination.id).scalar_subquery()
    override = sa.select(o.limit).where(o.cycle_code == nomination.cycle,
                                        o.member_state == nomination.member_state).scalar_subquery()
    has_plan = sa.exists().where(a.nomination_id == nomination.id, a.kind == "action_plan")
    cycle = s.execute(sa.select(c.limit_per_state, c.requires_action_plan, override.label("override"),
                                active.label("active"), has_plan.label("has_plan"))
                      .where(c.code == nomination.cycle)).one()
    city = sa.func.lower(n.city_name) == nomination.city_name.lower()
    same = s.scalars(sa.select(n.reference).where(
        city, n.cycle == nomination.cycle, n.id != nomination.id,
        n.state.in_(ACTIVE_STATES)).order_by(n.reference)).all()
    earlier = s.scalars(sa.select(n.cycle).where(
        city, n.cycle != nomination.cycle, n.state.in_(("accepted", "handed_over")))
        .distinct().order_by(n.cycle)).all()
    return domain_checks.CheckFacts(
        active_in_cycle=cycle.active, limit=cycle.override if cycle.override is not None else cycle.limit_per_state,
        same_city_in_cycle=list(same), accepted_earlier=list(earlier),
        requires_action_plan=bool(cycle.requires_action_plan), has_action_plan=bool(cycle.has_plan))


def run_checks(svc: Services, event_id: str) -> str:
    """Run the checks for the submission `event_id`; record them and `checks.completed`.

    The same transaction marks the checks queue done with the event. Idempotent: a second call
    for the same event changes nothing. Returns what happened.
    """
    return run_checks_many(svc, [event_id])[event_id]


def run_checks_many(svc: Services, event_ids: list[str]) -> dict[str, str]:
    """Run the checks of several submissions in one transaction (a relay batch), which records
    their checks, their `checks.completed` events and the checks queue's done marks together.
    Returns what happened to each; anything raised rolls back all of them."""
    outcomes: dict[str, str] = {}
    with svc.uow() as uow:
        now = svc.clock()
        for event_id in dict.fromkeys(event_ids):
            outcomes[event_id] = _check(uow, event_id, now)
        ran = [e for e, outcome in outcomes.items() if outcome not in ("already done", "not a submission")]
        if ran:
            mark_done_many(uow, ran, "checks", now)  # the checks queue's work for these events ends here
            uow.commit()
    return outcomes


def _check(uow: UnitOfWork, event_id: str, now) -> str:
    e, later = t.events.c, t.events.alias("later")
    # The event, whether its checks ran, and the nomination's latest submission, in one query.
    done = sa.exists().where(t.effects.c.event_id == event_id, t.effects.c.effect == "checks")
    latest = sa.select(later.c.event_id).where(
        later.c.nomination_id == e.nomination_id, later.c.name == "nomination.submitted") \
        .order_by(later.c.seq.desc()).limit(1).scalar_subquery()
    event = uow.session.execute(sa.select(e.nomination_id, e.name, done.label("done"), latest.label("latest"))
                                .where(e.event_id == event_id)).one_or_none()
    if event is not None and event.done:
        return "already done"
    if event is None or event.name != "nomination.submitted":
        return "not a submission"
    nomination = uow.session.get(Nomination, event.nomination_id)
    if nomination.state != "submitted" or event.latest != event_id or nomination.checks_outcome != "pending":
        record_effect(uow, event_id, "checks", now, "skipped: the submission is no longer current")
        return "skipped"
    results = domain_checks.run(nomination, _facts(uow, nomination))
    uow.session.execute(sa.insert(t.checks), [
        {"nomination_id": nomination.id, "event_id": event_id, "name": r.name, "outcome": r.outcome,
         "blocking": r.blocking, "message": r.message, "ran_at": now} for r in results])
    outcome = domain_checks.outcome(results)
    nomination.complete_checks(outcome, [asdict(r) for r in results], now)
    record_effect(uow, event_id, "checks", now, outcome)
    return outcome
