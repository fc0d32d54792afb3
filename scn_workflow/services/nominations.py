"""Nomination use cases: create, edit, fire a trigger, read. Each owns its transaction."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain import workflow
from scn_workflow.domain.errors import (N_, Forbidden, InvalidInput, NotFound, RuleViolation, StaleVersion, Text,
                                        UnknownTrigger, Violation)
from scn_workflow.domain.model import (ACTIVE_STATES, Actor, Cycle, LimitOverride, MemberState,
                                       Nomination, Project, Role)
from scn_workflow.domain.reference import focus_areas
from scn_workflow.domain.rules import Facts, may_see
from scn_workflow.services import Services
from scn_workflow.services.search import count_unless_known, page_of, visible_matching


MAX_ID = 2**31 - 1  # ids are INTEGER columns: a larger number names nothing (and SQLite cannot bind it)


def valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


ATTACHMENT_COLUMNS = (t.attachments.c.id, t.attachments.c.kind, t.attachments.c.filename,
                      t.attachments.c.content_hash, t.attachments.c.size, t.attachments.c.uploaded_at)
"""What a listing shows of an attachment, in the order `attachment_entry` reads them."""


def attachment_entry(values) -> dict:
    """One attachment as listed, from the values of ATTACHMENT_COLUMNS."""
    id_, kind, filename, content_hash, size, uploaded_at = values
    return {"id": id_, "kind": kind, "filename": filename, "sha256": content_hash, "size": size,
            "uploaded_at": uploaded_at}


# The statements on the path of every transition are built once, with bound parameters: building
# and hashing a statement costs more CPU than running its cached compiled form. (Built on first use:
# the ORM entities are mapped only when the first Services starts.)

@functools.cache
def _loader(files: bool, lock_member_state: bool) -> sa.Select:
    """A nomination by id. `files`: with its attachments, one row per attachment (an outer join),
    oldest first. `lock_member_state`: its member state's row locked (FOR UPDATE) by the same statement."""
    n, a, m = t.nominations.c, t.attachments.c, t.member_states.c
    stmt = sa.select(Nomination, *(ATTACHMENT_COLUMNS if files else ()))
    if files:
        stmt = stmt.outerjoin(t.attachments, a.nomination_id == n.id).order_by(a.id)
    if lock_member_state:
        stmt = stmt.join(t.member_states, m.code == n.member_state).with_for_update(of=t.member_states)
    return stmt.where(n.id == sa.bindparam("nomination_id"))


def load_visible(uow: UnitOfWork, actor: Actor, nomination_id, *, files: bool = False,
          lock_member_state: bool = False) -> Nomination:
    """The nomination, if the actor may see it. With `files`, its attachments come in the same
    query, as `nomination.files`: what `attachments.listing` would answer. With `lock_member_state`
    (PostgreSQL), the query also locks its member state's row, as `_lock_member_state` does."""
    nomination = None
    if not valid_id(nomination_id):
        pass
    elif files or lock_member_state:
        rows = uow.session.execute(_loader(files, lock_member_state), {"nomination_id": nomination_id}).all()
        if rows:
            nomination = rows[0][0]
            if files:
                nomination.files = [attachment_entry(row[1:]) for row in rows if row[1] is not None]
    else:
        nomination = uow.session.get(Nomination, nomination_id)
    if nomination is None or not may_see(actor, nomination):
        raise NotFound(Text(N_("No nomination {id} that you may see."), id=str(nomination_id)))
    return nomination


def _expect_version(nomination: Nomination, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != nomination.version:
        raise StaleVersion(Text(N_("The nomination is at version {version}, your change was based on version "
                                   "{expected}; reload it and try again."),
                                version=str(nomination.version), expected=str(expected_version)),
                           [Violation("current_version", Text(N_("The current version is {version}."),
                                                              version=str(nomination.version)))])


def _check_content(data: dict) -> None:
    """Domain checks of nomination content that a schema cannot know (the reference codes)."""
    errors = {}
    known = focus_areas()
    bad = [code for code in data.get("focus_areas") or [] if code not in known]
    if bad:
        errors["focus_areas"] = [Text(N_("Unknown focus area(s): {codes}; use {focus_areas}."),
                                      codes=", ".join(map(str, bad)), focus_areas=", ".join(known))]
    for index, project in enumerate(data.get("projects") or []):
        area = project.focus_area if isinstance(project, Project) else project.get("focus_area")
        if area not in known:
            errors.setdefault("projects", {})[index] = {"focus_area": [
                Text(N_("Unknown focus area '{code}'."), code=str(area))]}
    if errors:
        raise InvalidInput(N_("The nomination is not valid."), errors)


def _lock_member_state(uow: UnitOfWork, code: str) -> None:
    """Serialise changes that count a member state's nominations (references, limits).

    On SQLite every writing transaction already holds the database's write lock (BEGIN IMMEDIATE)."""
    if uow.dialect == "postgresql":
        uow.session.execute(_LOCK_MEMBER_STATE, {"code": code})


_LOCK_MEMBER_STATE = sa.select(t.member_states.c.code).where(t.member_states.c.code == sa.bindparam("code")) \
    .with_for_update()


def limit_columns(cycle, member_state, nomination_id) -> tuple:
    """The member state's override of the cycle's limit (NULL if none) and its other active
    nominations in the cycle, as scalar subqueries of bound parameters or of an enclosing query's
    columns: the limit rule here, and the checks (services/checks.py) for a batch."""
    o, others = t.limit_overrides.c, t.nominations.alias("other")
    other = others.c
    override = sa.select(o.limit).where(o.cycle_code == cycle, o.member_state == member_state).scalar_subquery()
    active = sa.select(sa.func.count()).select_from(others).where(
        other.cycle == cycle, other.member_state == member_state, other.state.in_(sorted(ACTIVE_STATES)),
        other.id != nomination_id).scalar_subquery()
    return override, active


@functools.cache
def _limit_facts() -> sa.Select:
    """The cycle, the member state's override in it (if any), and its other active nominations there."""
    override, active = limit_columns(sa.bindparam("cycle"), sa.bindparam("member_state"),
                                     sa.bindparam("nomination_id"))
    return sa.select(Cycle, override, active).where(t.cycles.c.code == sa.bindparam("cycle"))


def _next_reference(uow: UnitOfWork, cycle: str, member_state: str) -> str:
    prefix = f"{cycle}-{member_state}-"
    taken = uow.session.scalar(sa.select(sa.func.count()).select_from(t.nominations)
                               .where(t.nominations.c.cycle == cycle,
                                      t.nominations.c.member_state == member_state))
    return f"{prefix}{taken + 1:03d}"


def current_cycle(uow: UnitOfWork, now) -> Cycle | None:
    """The open cycle that closes first, if any."""
    return uow.session.scalar(sa.select(Cycle).where(Cycle.opens_at <= now, Cycle.closes_at > now)
                              .order_by(Cycle.closes_at))


def create(svc: Services, actor: Actor, data: dict) -> Nomination:
    """Draft a new nomination for the actor's member state."""
    if actor.role is not Role.SUBMITTER:
        raise Forbidden(N_("Only a submitter of a member state may draft a nomination."),
                        [Violation("submitter_of_member_state", N_("Only a submitter may draft a nomination."))])
    data = dict(data)
    member_state = data.pop("member_state", None) or actor.member_state
    if member_state != actor.member_state:
        raise Forbidden(Text(N_("A submitter of {member_state} may not draft for {other_member_state}."),
                             member_state=actor.member_state, other_member_state=str(member_state)),
                        [Violation("submitter_of_member_state",
                                   Text(N_("You may only draft nominations of {member_state}."),
                                        member_state=actor.member_state))])
    _check_content(data)
    now = svc.clock()
    with svc.uow() as uow:
        cycle_code = data.pop("cycle", None)
        cycle = uow.session.get(Cycle, cycle_code) if cycle_code else current_cycle(uow, now)
        if cycle is None:
            raise InvalidInput(N_("The nomination is not valid."), {
                "cycle": [Text(N_("Unknown cycle '{cycle}'."), cycle=cycle_code) if cycle_code
                          else N_("No cycle is open; name one.")]})
        _lock_member_state(uow, member_state)
        nomination = Nomination(member_state=member_state, cycle=cycle.code,
                                reference=_next_reference(uow, cycle.code, member_state),
                                created_by=actor.username, now=now, **_content(data))
        uow.session.add(nomination)
        uow.commit()
        return nomination


def _content(data: dict) -> dict:
    out = dict(data)
    if "projects" in out:
        out["projects"] = [p if isinstance(p, Project) else Project(**p) for p in out["projects"] or []]
    return out


def load_draft_for_change(uow: UnitOfWork, actor: Actor, nomination_id: int, expected_version: int | None,
                          forbidden: str = N_("Only a submitter of member state {member_state} may edit it."),
                          refusal: str = N_("Only a drafted nomination can be edited; this one is {state}."),
                          files: bool = False) -> Nomination:
    """A drafted nomination the actor (a submitter of its member state) may change, at the version expected.
    `forbidden` and `refusal` are the marked sentences that refuse someone else, and a nomination no longer drafted."""
    nomination = load_visible(uow, actor, nomination_id, files=files)
    if actor.role is not Role.SUBMITTER or actor.member_state != nomination.member_state:
        raise Forbidden(Text(forbidden, member_state=nomination.member_state),
                        [Violation("submitter_of_member_state", N_("You may not change this nomination."))])
    if nomination.state != "drafted":
        raise RuleViolation(Text(refusal, state=nomination.state),
                            [Violation("editable_only_when_drafted",
                                       Text(N_("The nomination is {state}."), state=nomination.state))])
    _expect_version(nomination, expected_version)
    return nomination


def update(svc: Services, actor: Actor, nomination_id: int, expected_version: int | None,
           changes: dict, *, files: bool = False) -> Nomination:
    """Edit a draft: a submitter of its member state, based on the current version (`files`: with
    its attachments as `nomination.files`)."""
    _check_content(changes)
    with svc.uow() as uow:
        nomination = load_draft_for_change(uow, actor, nomination_id, expected_version, files=files)
        nomination.update(_content(changes), actor.username, svc.clock())
        uow.commit()
        return nomination


def gather_facts(uow: UnitOfWork, nomination: Nomination, trigger: str, actor: Actor, now, *,
                 comment: str | None = None, assessment: dict | None = None,
                 member_state_locked: bool = False) -> Facts:
    """Load what the trigger's rules need to know, and nothing more."""
    needs = workflow.needs(trigger)
    extra = {}
    if "limit" in needs:
        # Count only once the member state is locked: a concurrent submit of the same member state
        # has committed by then, and this statement's snapshot sees it. The cycle, its override and
        # the count come in one statement.
        if not member_state_locked:
            _lock_member_state(uow, nomination.member_state)
        row = uow.session.execute(_limit_facts(), {"cycle": nomination.cycle, "member_state": nomination.member_state,
                                                   "nomination_id": nomination.id}).one_or_none()
        if row is not None:
            cycle, override, extra["active_in_cycle"] = row
            extra["limit"] = override if override is not None else cycle.limit_per_state
            extra["cycle"] = cycle
    elif "cycle" in needs:
        extra["cycle"] = uow.session.get(Cycle, nomination.cycle)
    if "member_state" in needs:
        extra["member_state"] = uow.session.get(MemberState, nomination.member_state)
    if "delivery" in needs:
        extra["package_delivered"] = uow.session.scalar(
            sa.select(sa.func.count()).select_from(t.deliveries).where(
                t.deliveries.c.nomination_id == nomination.id, t.deliveries.c.status == "accepted")) > 0
    return Facts(actor=actor, now=now, comment=comment, assessment=assessment, **extra)


@dataclass(frozen=True)
class Fired:
    nomination: Nomination
    event_name: str


def fire(svc: Services, actor: Actor, nomination_id: int, trigger: str, expected_version: int | None, *,
         comment: str | None = None, assessment: dict | None = None, files: bool = False) -> Nomination:
    """Fire a workflow trigger on a nomination, as the actor, based on `expected_version`
    (`files`: with its attachments as `nomination.files`)."""
    with svc.uow() as uow:
        # A trigger that counts the member state's nominations locks the member state; on PostgreSQL
        # the statement that loads the nomination does it (SQLite's writers are serialised anyway).
        lock = uow.dialect == "postgresql" and _counts_member_state(trigger)
        nomination = load_visible(uow, actor, nomination_id, files=files, lock_member_state=lock)
        _expect_version(nomination, expected_version)
        facts = gather_facts(uow, nomination, trigger, actor, svc.clock(), comment=comment, assessment=assessment,
                             member_state_locked=lock)
        workflow.fire(nomination, trigger, facts)
        uow.commit()
        return nomination


def _counts_member_state(trigger) -> bool:
    try:
        return "limit" in workflow.needs(trigger)
    except UnknownTrigger:
        return False  # refused where it always was, after the nomination is found


def get(svc: Services, actor: Actor, nomination_id: int, *, files: bool = False) -> Nomination:
    """One nomination the actor may see (`files`: with its attachments as `nomination.files`)."""
    with svc.uow(read_only=True) as uow:
        return load_visible(uow, actor, nomination_id, files=files)


def allowed_triggers(svc: Services, actor: Actor, nomination: Nomination) -> list[str]:
    return workflow.allowed_triggers(nomination, Facts(actor=actor, now=svc.clock()))


def events(svc: Services, actor: Actor, nomination_id: int) -> list[dict]:
    """The audit trail of one nomination, oldest first, with hashes."""
    with svc.uow(read_only=True) as uow:
        load_visible(uow, actor, nomination_id)
        rows = uow.session.execute(sa.select(t.events).where(t.events.c.nomination_id == nomination_id)
                                   .order_by(t.events.c.seq)).mappings().all()
        return [dict(row) for row in rows]


def checks(svc: Services, actor: Actor, nomination_id: int) -> list[dict]:
    """The automated checks of the latest submission, if any ran."""
    with svc.uow(read_only=True) as uow:
        load_visible(uow, actor, nomination_id)
        latest = sa.select(t.checks.c.event_id).where(t.checks.c.nomination_id == nomination_id) \
            .order_by(t.checks.c.ran_at.desc(), t.checks.c.id.desc()).limit(1).scalar_subquery()
        rows = uow.session.execute(sa.select(t.checks).where(t.checks.c.event_id == latest)
                                   .order_by(t.checks.c.id)).mappings().all()
        return [dict(row) for row in rows]


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    page: int
    per_page: int


def search(svc: Services, actor: Actor | None, *, state: str | None = None, member_state: str | None = None,
           cycle: str | None = None, q: str | None = None, page: int = 1, per_page: int = 20,
           checks_done: bool = False, oldest_first: bool = False) -> Page:
    """Nominations the actor may see (no actor: the public register), filtered, newest change first
    (or longest waiting first); `checks_done` keeps submitted ones only once their checks finished."""
    with svc.uow(read_only=True) as uow:
        where = visible_matching(uow, actor, state=state, member_state=member_state, cycle=cycle, q=q,
                                 checks_done=checks_done)
        items = list(uow.session.scalars(page_of(where, page=page, per_page=per_page, oldest_first=oldest_first)))
        total = count_unless_known(uow, where, page=page, per_page=per_page, found=len(items))
        return Page(items, total, page, per_page)


def count_by_state(svc: Services) -> dict[str, int]:
    """How many nominations are in each state (all member states)."""
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(t.nominations.c.state, sa.func.count()).group_by(t.nominations.c.state))
        return {state: count for state, count in rows}


@dataclass(frozen=True)
class Usage:
    cycle: Cycle
    limit: int
    used: int
    override_reason: str | None


def usage(svc: Services, member_state: str) -> list[Usage]:
    """For each cycle: the member state's limit and how many active nominations use it."""
    with svc.uow(read_only=True) as uow:
        cycles = list(uow.session.scalars(sa.select(Cycle).order_by(Cycle.opens_at.desc())))
        overrides = {o.cycle_code: o for o in uow.session.scalars(
            sa.select(LimitOverride).where(LimitOverride.member_state == member_state))}
        used = dict(uow.session.execute(
            sa.select(t.nominations.c.cycle, sa.func.count()).where(
                t.nominations.c.member_state == member_state, t.nominations.c.state.in_(ACTIVE_STATES))
            .group_by(t.nominations.c.cycle)).all())
    return [Usage(c, overrides[c.code].limit if c.code in overrides else c.limit_per_state, used.get(c.code, 0),
                  overrides[c.code].reason if c.code in overrides else None) for c in cycles]
