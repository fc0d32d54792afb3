"""Bearer tokens on requests, and preconditions (If-Match)."""

from __future__ import annotations

from flask import g, request
from werkzeug.exceptions import PreconditionFailed, PreconditionRequired, Unauthorized

from scn_workflow.current import svc
from scn_workflow.domain.model import Actor
from scn_workflow.schemas.text import parse_int
from scn_workflow.services import tokens


def current_actor() -> Actor:
    """The caller, from `Authorization: Bearer <token>`; 401 without a live token."""
    if "actor" in g:
        return g.actor
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send Authorization: Bearer <token>; get a token from POST /api/v1/tokens.")
    actor = tokens.resolve(svc(), token.strip())
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

