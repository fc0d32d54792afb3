"""The public register: the cities accepted into the network, and what anyone may read of each."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, NotFound, Text
from scn_workflow.domain.model import Nomination
from scn_workflow.domain.rules import PUBLIC_STATES
from scn_workflow.services import Services
from scn_workflow.services.nominations import valid_id


@dataclass(frozen=True)
class City:
    """An accepted city as the public reads it: no personal data (no officer, no usernames)."""
    id: int
    reference: str
    city_name: str
    region: str | None
    member_state: str
    cycle: str  # the cycle of the decision
    vision: str | None
    focus_areas: list[str]
    project_titles: list[str]
    state: str
    decided_at: datetime | None  # when it was accepted


def decision_dates(svc: Services, nomination_ids: list[int]) -> dict[int, datetime]:
    """When each of these nominations was accepted."""
    if not nomination_ids:
        return {}
    e = t.events.c
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(e.nomination_id, sa.func.max(e.occurred_at))
                                   .where(e.nomination_id.in_(nomination_ids), e.name == "nomination.accepted")
                                   .group_by(e.nomination_id)).all()
    return dict(rows)


def city(svc: Services, nomination_id) -> City:
    """One accepted (or handed-over) city; any other nomination is not found."""
    with svc.uow(read_only=True) as uow:
        n = uow.session.get(Nomination, nomination_id) if valid_id(nomination_id) else None
        if n is None or n.state not in PUBLIC_STATES:
            raise NotFound(Text(N_("No accepted city {id}."), id=str(nomination_id)))
        found = City(n.id, n.reference, n.city_name, n.region, n.member_state, n.cycle, n.vision,
                     list(n.focus_areas), [p.title for p in n.projects], n.state, None)
    return replace(found, decided_at=decision_dates(svc, [found.id]).get(found.id))
