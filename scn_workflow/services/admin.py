"""What admins manage: cycles and their limits, per-state overrides, lead agencies."""

from __future__ import annotations

import sqlalchemy as sa

from scn_workflow.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound, Text, Violation
from scn_workflow.domain.model import Actor, Cycle, LimitOverride, MemberState, Role
from scn_workflow.services import Services
from scn_workflow.services.destinations import Refused, check_secret
from scn_workflow.services.webhooks import destinations_of

LEAD_AGENCY_FIELDS = ("lead_agency_name", "lead_agency_email", "lead_agency_webhook_url",
                      "lead_agency_webhook_secret")


def require_admin(actor: Actor) -> None:
    if actor.role is not Role.ADMIN:
        raise Forbidden(N_("Only an admin may do this."), [Violation("admin", N_("Only an admin may do this."))])


def no_member_state(code: str) -> Text:
    return Text(N_("No member state '{code}'."), code=code)


def member_states(svc: Services) -> list[MemberState]:
    with svc.uow(read_only=True) as uow:
        return list(uow.session.scalars(sa.select(MemberState).order_by(MemberState.code)))


def cycles(svc: Services) -> list[tuple[Cycle, list[LimitOverride]]]:
    with svc.uow(read_only=True) as uow:
        found = list(uow.session.scalars(sa.select(Cycle).order_by(Cycle.opens_at, Cycle.code)))
        overrides = list(uow.session.scalars(sa.select(LimitOverride)))
    return [(c, [o for o in overrides if o.cycle_code == c.code]) for c in found]


def cycle(svc: Services, code: str) -> Cycle | None:
    with svc.uow(read_only=True) as uow:
        return uow.session.get(Cycle, code)


def create_cycle(svc: Services, actor: Actor, data: dict) -> Cycle:
    require_admin(actor)
    if data["closes_at"] <= data["opens_at"]:
        raise InvalidInput(N_("The cycle is not valid."), {"closes_at": [N_("Must be after the opening date.")]})
    with svc.uow() as uow:
        if uow.session.get(Cycle, data["code"]) is not None:
            raise Conflict(Text(N_("A cycle '{cycle}' already exists."), cycle=data["code"]))
        cycle = Cycle(**data)
        uow.session.add(cycle)
        uow.commit()
        return cycle


def set_override(svc: Services, actor: Actor, cycle_code: str, member_state: str, limit: int,
                 reason: str) -> LimitOverride:
    """Set (or change) one member state's limit in one cycle, with the reason on record."""
    require_admin(actor)
    with svc.uow() as uow:
        if uow.session.get(Cycle, cycle_code) is None:
            raise NotFound(Text(N_("No cycle '{cycle}'."), cycle=cycle_code))
        if uow.session.get(MemberState, member_state) is None:
            raise NotFound(no_member_state(member_state))
        override = uow.session.get(LimitOverride, (cycle_code, member_state))
        if override is None:
            override = LimitOverride(cycle_code=cycle_code, member_state=member_state, limit=limit, reason=reason,
                                     set_by=actor.username, set_at=svc.clock())
            uow.session.add(override)
        else:
            override.limit, override.reason = limit, reason
            override.set_by, override.set_at = actor.username, svc.clock()
        uow.commit()
        return override


def update_member_state(svc: Services, actor: Actor, code: str, changes: dict) -> MemberState:
    """Set a member state's lead agency and its contacts. A webhook URL must pass the webhook URL rule
    (destinations.py) and, as it will stand after the change, come with a secret of 16+ characters."""
    require_admin(actor)
    unknown = [name for name in changes if name not in LEAD_AGENCY_FIELDS]
    if unknown:
        raise InvalidInput(N_("The change is not valid."), {name: [N_("No such field.")] for name in unknown})
    errors = {}
    url = changes.get("lead_agency_webhook_url")
    if url:
        try:
            destinations_of(svc).check(url)  # resolves the host: before the transaction opens
        except Refused as exc:
            errors["lead_agency_webhook_url"] = [exc.message]
    with svc.uow() as uow:
        state = uow.session.get(MemberState, code)
        if state is None:
            raise NotFound(no_member_state(code))
        after = {name: changes.get(name, getattr(state, name)) for name in LEAD_AGENCY_FIELDS}
        secret_error = check_secret(after["lead_agency_webhook_url"], after["lead_agency_webhook_secret"])
        if secret_error and ("lead_agency_webhook_url" in changes or "lead_agency_webhook_secret" in changes):
            errors["lead_agency_webhook_secret"] = [secret_error]
        if errors:
            raise InvalidInput(N_("The lead agency's webhook is not valid."), errors)
        for name, value in changes.items():
            setattr(state, name, value)
        uow.commit()
        return state
