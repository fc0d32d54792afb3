"""What a person may do on a nomination now, and why an action they might expect is not offered."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from scn_workflow.domain import workflow
from scn_workflow.domain.errors import Violation
from scn_workflow.domain.model import Actor, Nomination
from scn_workflow.domain.rules import Facts
from scn_workflow.services import Services
from scn_workflow.services.nominations import gather_facts


@dataclass(frozen=True)
class Offer:
    allowed: list[str]  # the triggers to offer, in the machine's order
    unavailable: dict[str, list[Violation]]  # trigger -> the refusals that say why it is not offered


def offer(svc: Services, actor: Actor, nomination: Nomination) -> Offer:
    """The triggers to offer the actor on the nomination, and the expected ones withheld, with why
    (workflow.unavailable: four eyes, the reviewer's member state, the cycle closed, the limit reached)."""
    now = svc.clock()
    facts = Facts(actor=actor, now=now)
    needing = [trigger for trigger in workflow.triggers_from(nomination.state) if workflow.needs(trigger)]
    if needing:
        with svc.uow(read_only=True) as uow:
            for trigger in needing:
                # A page only reads: no lock on the member state (the firing takes it).
                found = gather_facts(uow, nomination, trigger, actor, now, member_state_locked=True)
                facts = dataclasses.replace(facts, **{
                    f.name: getattr(found, f.name) for f in dataclasses.fields(found)
                    if getattr(found, f.name) not in (None, False)})
    unavailable = workflow.unavailable(nomination, facts)
    return Offer([t for t in workflow.allowed_triggers(nomination, facts) if t not in unavailable], unavailable)
