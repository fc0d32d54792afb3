"""Reference data anyone may read: member states, cycles, the workflow."""

from flask import request
from flask_smorest import Blueprint

from scn_workflow.api.auth import current_actor
from scn_workflow.api.docs import errors
from scn_workflow.current import svc
from scn_workflow.domain import workflow
from scn_workflow.domain.model import Role
from scn_workflow.schemas.api import CycleOut, MemberStateOut, WorkflowOut
from scn_workflow.services import admin

blp = Blueprint("reference", __name__, url_prefix="/api/v1", description="Member states, cycles, workflow")


@blp.get("/member-states")
@blp.response(200, MemberStateOut(many=True))
@errors(blp, 401)
def member_states():
    """The ASEAN member states and their lead agencies; the webhook URL only to admins (never a secret)."""
    shown = ["code", "name", "lead_agency_name", "lead_agency_email"]
    if request.headers.get("Authorization") and current_actor().role is Role.ADMIN:
        shown.append("lead_agency_webhook_url")
    return [{name: getattr(state, name) for name in shown} for state in admin.member_states(svc())]


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
