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
from scn_workflow.services.nominations import limit_columns
from scn_workflow.services.relay import mark_done_many

SEPARATOR = "\n"  # between the references and cycle codes a facts column aggregates (neither holds one)


@functools.cache
def _events() -> sa.Select:
    """Each event, whether its checks ran, and its nomination's latest submission: one statement for a
    batch, built once (an expanding parameter takes any number of ids)."""
    e, later, f = t.events.c, t.events.alias("later"), t.effects.c
    done = sa.exists().where(f.event_id == e.event_id, f.effect == "checks")
    latest = sa.select(later.c.event_id).where(
        later.c.nomination_id == e.nomination_id, later.c.name == "nomination.submitted") \
        .order_by(later.c.seq.desc()).limit(1).scalar_subquery()
    return sa.select(e.event_id, e.nomination_id, e.name, done.label("done"), latest.label("latest")) \
        .where(e.event_id.in_(sa.bindparam("event_ids", expanding=True)))


@functools.cache
def _nominations_with_facts() -> sa.Select:
    """The nominations of a batch, each with every fact its checks need: the cycle's limit and rule,
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
        .join(t.cycles, c.code == n.cycle).where(n.id.in_(sa.bindparam("nomination_ids", expanding=True)))


def _split(aggregated: str | None, *, distinct: bool = False) -> list[str]:
    items = aggregated.split(SEPARATOR) if aggregated else []
    return sorted(set(items)) if distinct else sorted(items)


def _facts(row) -> domain_checks.CheckFacts:
    return domain_checks.CheckFacts(
        active_in_cycle=row.active, limit=row.override if row.override is not None else row.limit_per_state,
        same_city_in_cycle=_split(row.same), accepted_earlier=_split(row.earlier, distinct=True),
        requires_action_plan=bool(row.requires_action_plan), has_action_plan=bool(row.has_plan))


def run_checks(svc: Services, event_id: str) -> str:
    """Run the checks for the submission `event_id`; record them and `checks.completed`.

    The same transaction marks the checks queue done with the event. Idempotent: a second call
    for the same event changes nothing. Returns what happened.
    """
    return run_checks_many(svc, [event_id])[event_id]


def run_checks_many(svc: Services, event_ids: list[str]) -> dict[str, str]:
    """Run the checks of several submissions in one transaction (a relay batch), which records
    their checks, their `checks.completed` events and the checks queue's done marks together.
    The statements are the same for one event or fifty: the events, the nominations with their
    facts, the checks, the effects, the done marks. Returns what happened to each; anything raised
    (a concurrent run of the same checks, say) rolls back all of them."""
    event_ids = list(dict.fromkeys(event_ids))
    with svc.uow() as uow:
        now = svc.clock()
        # No autoflush: the nominations' changes stay pending until the commit, which writes a lone
        # one with its event and outbox row in one statement (an autoflush would write it alone first).
        with uow.session.no_autoflush:
            outcomes = _check_all(uow, event_ids, now)
            ran = [e for e, outcome in outcomes.items() if outcome not in ("already done", "not a submission")]
            if ran:
                mark_done_many(uow, ran, "checks", now)  # the checks queue's work for these events ends here
        if ran:
            uow.commit()
    return outcomes


def _check_all(uow: UnitOfWork, event_ids: list[str], now) -> dict[str, str]:
    events = {row.event_id: row for row in uow.session.execute(_events(), {"event_ids": event_ids})}
    outcomes: dict[str, str] = {}
    for event_id in event_ids:
        event = events.get(event_id)
        if event is not None and event.done:
            outcomes[event_id] = "already done"
        elif event is None or event.name != "nomination.submitted":
            outcomes[event_id] = "not a submission"
    due = [events[e] for e in event_ids if e not in outcomes]
    if not due:
        return outcomes
    loaded = {row.Nomination.id: row for row in uow.session.execute(
        _nominations_with_facts(), {"nomination_ids": sorted({e.nomination_id for e in due})})}
    checks, effects = [], []
    for event in due:
        row = loaded[event.nomination_id]
        nomination: Nomination = row.Nomination
        if nomination.state != "submitted" or event.latest != event.event_id or nomination.checks_outcome != "pending":
            # Includes a second submission event of the same nomination in this batch: the first
            # one checked has already moved checks_outcome on.
            outcomes[event.event_id] = "skipped"
            effects.append((event.event_id, "skipped: the submission is no longer current"))
            continue
        results = domain_checks.run(nomination, _facts(row))
        checks.extend({"nomination_id": nomination.id, "event_id": event.event_id, "name": r.name,
                       "outcome": r.outcome, "blocking": r.blocking, "message": r.message, "ran_at": now}
                      for r in results)
        outcome = outcomes[event.event_id] = domain_checks.outcome(results)
        nomination.complete_checks(outcome, [asdict(r) for r in results], now)
        effects.append((event.event_id, outcome))
    if checks:
        uow.session.execute(sa.insert(t.checks), checks)
    # A plain INSERT: a concurrent run of the same checks fails here, and its transaction rolls back.
    uow.session.execute(sa.insert(t.effects), [
        {"event_id": event_id, "effect": "checks", "recorded_at": now, "detail": detail}
        for event_id, detail in sorted(effects)])
    return outcomes
