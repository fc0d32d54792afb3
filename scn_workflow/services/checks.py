"""Running the automated checks of a submission, once per submission event."""

from __future__ import annotations

import functools
from dataclasses import asdict

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain import checks as domain_checks
from scn_workflow.domain.model import ACTIVE_STATES, Nomination
from scn_workflow.services import Services
from scn_workflow.services.effects import Outcome
from scn_workflow.services.nominations import limit_columns
from scn_workflow.services.outbox import mark_done

SEPARATOR = "\n"  # between the references and cycle codes a facts column aggregates (neither holds one)


@functools.cache
def _nominations_with_facts() -> sa.Select:
    """A nomination with every fact its checks need: the cycle's limit and rule,
    the member state's override, the other active nominations of the member state in the cycle,
    whether an action plan is attached, the other live nominations of the city in the cycle, and the
    cycles in which the city was accepted. One statement, built once."""
    n, c, a = t.nominations.c, t.cycles.c, t.attachments.c
    other = t.nominations.alias("other").c
    same_city = sa.func.lower(other.city_name) == sa.func.lower(n.city_name)
    override, active = limit_columns(n.cycle, n.member_state, n.id)
    has_plan = sa.exists().where(a.nomination_id == n.id, a.kind == "action_plan")
    same = sa.select(sa.func.aggregate_strings(other.reference, SEPARATOR)).where(
        same_city, other.cycle == n.cycle, other.id != n.id, other.state.in_(ACTIVE_STATES)).scalar_subquery()
    earlier = sa.select(sa.func.aggregate_strings(other.cycle, SEPARATOR)).where(
        same_city, other.cycle != n.cycle, other.state.in_(("accepted", "handed_over"))).scalar_subquery()
    return sa.select(Nomination, c.limit_per_state, c.requires_action_plan, override.label("override"),
                     active.label("active"), has_plan.label("has_plan"), same.label("same"),
                     earlier.label("earlier")) \
        .join(t.cycles, c.code == n.cycle).where(n.id == sa.bindparam("nomination_id"))


def _split(aggregated: str | None, *, distinct: bool = False) -> list[str]:
    items = aggregated.split(SEPARATOR) if aggregated else []
    return sorted(set(items)) if distinct else sorted(items)


def _facts(row) -> domain_checks.CheckFacts:
    return domain_checks.CheckFacts(
        active_in_cycle=row.active, limit=row.override if row.override is not None else row.limit_per_state,
        same_city_in_cycle=_split(row.same), accepted_earlier=_split(row.earlier, distinct=True),
        requires_action_plan=bool(row.requires_action_plan), has_action_plan=bool(row.has_plan))


def run_checks(svc: Services, event_id: str) -> str:
    """Run the checks for the submission `event_id`: record them, `checks.completed` and the checks
    queue's done mark in one transaction. A second call for the same event changes nothing.
    Returns the checks' outcome (passed, warning, failed) or an Outcome."""
    with svc.uow() as uow:
        now = svc.clock()
        outcome, detail = _check(uow, event_id, now)
        if outcome is not Outcome.ALREADY_DONE:
            mark_done(uow, event_id, "checks", now, [(event_id, "checks", detail)] if detail else [])
        uow.commit()
    return outcome


def _check(uow: UnitOfWork, event_id: str, now) -> tuple[str, str | None]:
    """The checks' outcome (or an Outcome) and what to record as the `checks` effect."""
    e, later, f = t.events.c, t.events.alias("later").c, t.effects.c
    checked = sa.exists().where(f.event_id == e.event_id, f.effect == "checks")
    latest = sa.select(later.event_id).where(later.nomination_id == e.nomination_id,
                                             later.name == "nomination.submitted") \
        .order_by(later.seq.desc()).limit(1).scalar_subquery()
    event = uow.session.execute(sa.select(e.nomination_id, e.name, checked.label("checked"), latest.label("latest"))
                                .where(e.event_id == event_id)).one_or_none()
    if event is None or event.name != "nomination.submitted":
        return Outcome.NOT_A_SUBMISSION, None
    if event.checked:
        return Outcome.ALREADY_DONE, None
    row = uow.session.execute(_nominations_with_facts(), {"nomination_id": event.nomination_id}).one()
    nomination: Nomination = row.Nomination
    if nomination.state != "submitted" or event.latest != event_id or nomination.checks_outcome != "pending":
        outcome, detail = Outcome.SKIPPED, "skipped: the submission is no longer current"
    else:
        results = domain_checks.run(nomination, _facts(row))
        uow.session.execute(sa.insert(t.checks), [
            {"nomination_id": nomination.id, "event_id": event_id, "name": r.name, "outcome": r.outcome,
             "blocking": r.blocking, "message": r.message, "ran_at": now} for r in results])
        outcome = detail = domain_checks.outcome(results)
        nomination.complete_checks(outcome, [asdict(r) for r in results], now)
    # A concurrent run of the same checks changed the nomination too: the version check of one of
    # the two commits fails, and that transaction rolls back.
    return outcome, detail
