"""Bearer tokens on requests, and preconditions (If-Match)."""

from __future__ import annotations

from flask import g, request
from werkzeug.exceptions import PreconditionFailed, PreconditionRequired, Unauthorized

from scn_workflow.current import svc
from scn_workflow.domain.model import Actor
from scn_workflow.schemas.text import parse_int
from scn_workflow.services import tokens


def bearer_token() -> str:
    """The token of `Authorization: Bearer <token>`; 401 without one."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send Authorization: Bearer <token>; get a token from POST /api/v1/tokens.")
    return token.strip()


def current_actor() -> Actor:
    """The caller, from `Authorization: Bearer <token>`; 401 without a live token (read on every
    request: a revoked token or a deactivated user is refused at once)."""
    if "actor" in g:
        return g.actor
    actor = tokens.resolve(svc(), bearer_token())
    if actor is None:
        raise Unauthorized("The token is unknown, expired or revoked; get a new one from POST /api/v1/tokens.")
    g.actor = actor
    return actor


def etag(version: int) -> str:
    return f'"{version}"'


def required_version() -> int | None:
    """The version named by If-Match (428 without it, 412 when it names no version of ours).

    `*` matches whatever version is current, so it returns None (no check)."""
    header = request.headers.get("If-Match")
    if header is None:
        raise PreconditionRequired("Send If-Match with the ETag (the version) your change is based on.")
    value = header.strip()
    if value == "*":
        return None
    version = parse_int(value.removeprefix("W/").strip('"'))  # ASCII digits, within the column
    if version is None:
        raise PreconditionFailed(f"If-Match {header!r} names no version of this nomination.")
    return version

