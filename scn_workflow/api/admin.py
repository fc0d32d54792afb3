"""What admins manage over HTTP: users, cycles, limit overrides, lead agencies, webhooks."""

from flask_smorest import Blueprint

from scn_workflow.api.auth import current_actor
from scn_workflow.api.docs import errors
from scn_workflow.current import svc
from scn_workflow.schemas.api import (CycleCreate, CycleOut, MemberStateOut, MemberStatePatch, OverrideOut,
                                      OverrideRequest, WebhookCreate, WebhookOut)
from scn_workflow.schemas.users import UserCreate, UserOut, UserPatch
from scn_workflow.services import admin, users, webhooks

blp = Blueprint("admin", __name__, url_prefix="/api/v1", description="Administration (admins)")
SECURITY = [{"bearer": []}]


@blp.get("/users")
@blp.response(200, UserOut(many=True))
@blp.doc(security=SECURITY)
@errors(blp, 401, 403)
def list_users():
    """Every user, active or not, with their role, member state and language."""
    admin.require_admin(current_actor())
    return users.list_users(svc())


@blp.post("/users")
@blp.arguments(UserCreate(), example={"username": "submitter-vn2", "password": "a-long-passphrase",
                                    "email": "submitter-vn2@scn-demo.example", "role": "submitter",
                                    "member_state": "VN", "name": "Nguyen Van A", "language": "en"})
@blp.response(201, UserOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 409, 413, 415, 422)
def create_user(body):
    """Create a user (a password of 12 characters or more, not a common one)."""
    admin.require_admin(current_actor())
    return users.create_user(svc(), **body)


@blp.patch("/users/<username>")
@blp.arguments(UserPatch(), example={"active": False})
@blp.response(200, UserOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 404, 413, 415, 422)
def patch_user(body, username):
    """Change a user's role, member state, name, email, language or password, or deactivate them
    (their web sessions end and their tokens are revoked at once) and reactivate them."""
    actor = current_actor()
    admin.require_admin(actor)
    return users.update_user(svc(), actor, username, body)


@blp.post("/cycles")
@blp.arguments(CycleCreate(), example={"code": "ASCN-2027", "name": "2027 call", "opens_at": "2027-01-01T00:00:00Z",
                                     "closes_at": "2028-01-01T00:00:00Z", "limit_per_state": 3,
                                     "requires_action_plan": True})
@blp.response(201, CycleOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 409, 413, 415, 422)
def create_cycle(body):
    """Open a new nomination cycle."""
    cycle = admin.create_cycle(svc(), current_actor(), body)
    return dict(code=cycle.code, name=cycle.name, opens_at=cycle.opens_at, closes_at=cycle.closes_at,
                limit_per_state=cycle.limit_per_state, requires_action_plan=cycle.requires_action_plan, overrides=[])


@blp.put("/cycles/<code>/overrides/<member_state>")
@blp.arguments(OverrideRequest(), example={"limit": 4, "reason": "Malaysia nominated 4 pilot cities in 2018."})
@blp.response(200, OverrideOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 404, 413, 415, 422)
def put_override(body, code, member_state):
    """Set one member state's limit in one cycle, with the reason on record."""
    return admin.set_override(svc(), current_actor(), code, member_state, body["limit"], body["reason"])


@blp.patch("/member-states/<code>")
@blp.arguments(MemberStatePatch(), example={"lead_agency_email": "lead-agency@id.example"})
@blp.response(200, MemberStateOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 404, 413, 415, 422)
def patch_member_state(body, code):
    """Set a member state's lead agency and its contacts."""
    return admin.update_member_state(svc(), current_actor(), code, body)


@blp.post("/webhooks")
@blp.arguments(WebhookCreate(), example={"url": "https://receiver.example/scn", "secret": "a-shared-secret-of-16+",
                                       "events": ["nomination.accepted"]})
@blp.response(201, WebhookOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 413, 415, 422)
def create_webhook(body):
    """Subscribe a URL to events; each delivery is signed (X-SCN-Signature) and retried."""
    actor = current_actor()
    admin.require_admin(actor)
    hook_id = webhooks.subscribe(svc(), actor, body["url"], body["secret"], body["events"])
    return {"id": hook_id, "url": body["url"], "events": body["events"]}
