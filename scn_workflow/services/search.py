"""Lists of nominations in SQL: who sees which, the filters, `q`, and the total of a page.

The indexes that serve these queries are in db/tables.py (migration 0004); bench/lifecycle.py
--only list measures them on 100,000 rows.
"""

from __future__ import annotations

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain.model import Actor, Nomination
from scn_workflow.domain.rules import PUBLIC_STATES, Sight, sight


def visible_matching(uow: UnitOfWork, actor: Actor | None, *, state: str | None = None,
                     member_state: str | None = None, cycle: str | None = None, q: str | None = None,
                     checks_done: bool = False) -> list:
    """The WHERE conditions of a list: what the actor may see (rules.may_see, in SQL; no
    actor: the public register), then each filter given."""
    n = t.nominations.c
    where = []
    seen = sight(actor)
    if seen is Sight.OWN_MEMBER_STATE:
        where.append(n.member_state == actor.member_state)
    elif seen is Sight.EVER_SUBMITTED:
        where.append(n.submitted_at.is_not(None))
    elif seen is Sight.SUBMITTED:
        where += [n.submitted_at.is_not(None), n.state != "drafted"]
    elif seen is not Sight.ALL:
        where.append(n.state.in_(PUBLIC_STATES))
    if state:
        where.append(n.state == state)
    if member_state:
        where.append(n.member_state == member_state)
    if cycle:
        where.append(n.cycle == cycle)
    if checks_done:
        where.append(sa.or_(n.state != "submitted", n.checks_outcome.in_(("passed", "warning", "failed"))))
    if q:
        where.append(_text_matches(uow, q))
    return where


def _text_matches(uow: UnitOfWork, q: str):
    """`q` in the city or the region (any case), or naming a member state: a part of its name or its code.

    The member states are looked up first and named as a literal IN list: a sub-select OR-ed with
    the rest would keep PostgreSQL from combining the index scans (trigram indexes on city and region,
    member state), and it would read the whole table instead.
    """
    n, ms = t.nominations.c, t.member_states.c
    pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    codes = list(uow.session.scalars(sa.select(ms.code).where(
        sa.or_(ms.name.ilike(pattern, escape="\\"), sa.func.lower(ms.code) == q.lower()))))
    # ILIKE, not lower(…) LIKE: a trigram index on the bare column serves it (SQLite runs it as lower() LIKE lower()).
    matches = [n.city_name.ilike(pattern, escape="\\"), n.region.ilike(pattern, escape="\\")]
    if codes:
        matches.append(n.member_state.in_(codes))
    return sa.or_(*matches)


def page_of(where: list, *, page: int, per_page: int, oldest_first: bool = False):
    """The nominations of one page, newest change first (or oldest). Its ids are picked first, from
    the index alone where it holds the filter: a deep page then skips thousands of index entries
    instead of reading as many rows."""
    n = t.nominations.c
    order = (n.updated_at.asc(), n.id.asc()) if oldest_first else (n.updated_at.desc(), n.id.desc())
    ids = sa.select(n.id).where(*where).order_by(*order).offset((page - 1) * per_page).limit(per_page).subquery()
    return sa.select(Nomination).join(ids, n.id == ids.c.id).order_by(*order)


def count_unless_known(uow: UnitOfWork, where: list, *, page: int, per_page: int, found: int) -> int:
    """How many rows match `where`. A page that is neither full nor empty past the first already
    tells (its offset plus its rows), and then nothing is counted."""
    if 0 < found < per_page or (found == 0 and page == 1):
        return (page - 1) * per_page + found
    return uow.session.scalar(sa.select(sa.func.count()).select_from(t.nominations).where(*where))
