"""Reference data anyone may read: member states, cycles, the workflow."""

from flask_smorest import Blueprint

from scn_workflow.api.docs import errors
from scn_workflow.current import svc
from scn_workflow.domain import workflow
from scn_workflow.schemas.api import CycleOut, MemberStateOut, WorkflowOut
from scn_workflow.services import admin

blp = Blueprint("reference", __name__, url_prefix="/api/v1", description="Member states, cycles, workflow")


@blp.get("/member-states")
@blp.response(200, MemberStateOut(many=True))
def member_states():
    """The ASEAN member states and their lead agencies."""
    return admin.member_states(svc())


@blp.get("/cycles")
@blp.response(200, CycleOut(many=True))
def cycles():
    """Nomination cycles, their limits and per-state overrides."""
    return [dict(code=c.code, name=c.name, opens_at=c.opens_at, closes_at=c.closes_at,
                 limit_per_state=c.limit_per_state, requires_action_plan=c.requires_action_plan, overrides=o)
            for c, o in admin.cycles(svc())]


@blp.get("/workflow")
@blp.response(200, WorkflowOut)
@errors(blp)
def workflow_definition():
    """The states and triggers, from/to, and who may fire each: read from the state machine."""
    return workflow.describe()
