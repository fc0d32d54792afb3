"""POST /api/v1/tokens: a username and password for a bearer token."""

from flask import request
from flask_smorest import Blueprint
from werkzeug.exceptions import Unauthorized

from scn_workflow.api.docs import errors
from scn_workflow.current import svc
from scn_workflow.ratelimit import limiter
from scn_workflow.schemas.api import TokenOut, TokenRequest
from scn_workflow.services import tokens

blp = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens", description="Bearer tokens")


@blp.post("")
@blp.arguments(TokenRequest(), example={"username": "submitter-id", "password": "demo-password"})
@blp.response(201, TokenOut)
@errors(blp, 401, 413, 415, 422, 429)
def create_token(body):
    """Exchange a username and password for a bearer token (12 hours).

    A wrong password and an unknown user get the same answer. Ten attempts a minute per
    address and username."""
    limiter("token_requests").hit(f"{request.remote_addr}|{body['username']}")
    issued = tokens.issue(svc(), body["username"], body["password"])
    if issued is None:
        raise Unauthorized("The username or password is wrong.")
    token, expires_at = issued
    return {"token": token, "expires_at": expires_at}
