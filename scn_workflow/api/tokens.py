"""POST /api/v1/tokens: a username and password for a bearer token; DELETE /api/v1/tokens/current."""

from flask_smorest import Blueprint
from werkzeug.exceptions import Unauthorized

from scn_workflow.api.auth import bearer_token, current_actor
from scn_workflow.api.docs import errors
from scn_workflow.api.problems import problem
from scn_workflow.current import svc
from scn_workflow.ratelimit import TooManySignIns, client_address, sign_in_limits
from scn_workflow.schemas.api import TokenOut, TokenRequest
from scn_workflow.services import tokens

blp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens", description="Bearer tokens")


@blp.post("")
@blp.arguments(TokenRequest(), example={"username": "submitter-id", "password": "demo-password"})
@blp.response(201, TokenOut)
@errors(blp, 401, 403, 413, 415, 422, 429)
def create_token(body):
    """Exchange a username and password for a bearer token (12 hours).

    A wrong password and an unknown user get the same answer. Failed attempts are limited per
    address, per address and username, and per username (429 with `Retry-After` in seconds). A
    temporary password (set by an admin) gets 403 `password-change-required`: sign in on the web
    and choose a new one first."""
    limits, address = sign_in_limits(), client_address()
    try:
        limits.check(address, body["username"])
    except TooManySignIns as refusal:
        return problem(429, "Too Many Requests", refusal.description, headers={"Retry-After": str(refusal.retry_after)})
    issued = tokens.issue(svc(), body["username"], body["password"])
    if issued is None:
        limits.failed(address, body["username"])
        raise Unauthorized("The username or password is wrong.")
    token, expires_at = issued
    return {"token": token, "expires_at": expires_at}


@blp.delete("/current")
@blp.response(204)
@blp.doc(security=[{"bearer": []}])
@errors(blp, 401)
def revoke_current_token():
    """Revoke the token this request is sent with (sign-out for API clients); it is refused from the
    next request on, in every process."""
    current_actor()
    tokens.revoke(svc(), bearer_token())
