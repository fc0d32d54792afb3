"""application/problem+json (RFC 9457) for every error the API and Flask itself raise."""

from __future__ import annotations

from flask import json, make_response
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from scn_workflow.domain.errors import DomainError, InvalidInput

PROBLEM_TYPE = "https://scn-workflow.example/problems/"  # stable identifiers, not fetched


class ViolationSchema(Schema):
    rule = fields.String(metadata={"example": "within_state_limit"})
    message = fields.String(metadata={"example": "Member state ID already has 3 active nominations."})


class ProblemSchema(Schema):
    type = fields.String(metadata={"example": PROBLEM_TYPE + "rule-violation"})
    title = fields.String(metadata={"example": "Refused by the rules of the process"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"example": "Required fields are missing: vision."})
    errors = fields.Dict(metadata={"description": "Messages by field, for validation errors",
                                   "example": {"csco_email": ["Not a valid email address."]}})
    violations = fields.List(fields.Nested(ViolationSchema),
                             metadata={"description": "Each rule that refused, by name"})


def problem(status: int, title: str, detail: str, *, kind: str | None = None, errors=None, violations=None,
            headers=None):
    body = {"type": PROBLEM_TYPE + (kind or title.lower().replace(" ", "-")), "title": title, "status": status,
            "detail": detail}
    if errors is not None:
        body["errors"] = errors
    if violations is not None:
        body["violations"] = violations
    response = make_response(json.dumps(body), status)
    response.mimetype = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_domain(err: DomainError):
    kind = type(err).__name__.replace("Error", "")
    kind = "".join("-" + c.lower() if c.isupper() else c for c in kind).lstrip("-")
    return problem(err.status, err.title, err.detail, kind=kind,
                   errors=_stringify(err.fields) if isinstance(err, InvalidInput) else None,
                   violations=[v.as_dict() for v in err.violations] or None)


def from_http(err: HTTPException):
    status = err.code or 500
    data = getattr(err, "data", None) or {}
    messages = data.get("messages")
    if messages:  # webargs / marshmallow validation, by location then field
        fields_ = {}
        for location_messages in messages.values():
            fields_.update(location_messages if isinstance(location_messages, dict) else {"_schema": location_messages})
        fields_ = _stringify(fields_)
        return problem(422, "Invalid input", "The input is not valid: " + _summary(fields_) + ".",
                       kind="invalid-input", errors=fields_)
    headers = {}
    if status == 405 and err.valid_methods:
        headers["Allow"] = ", ".join(err.valid_methods)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scn-workflow"'
    return problem(status, err.name, err.description or err.name, headers=headers)


def _summary(fields_: dict) -> str:
    """'field: first message' for each field, nested fields joined with dots."""
    parts = []
    for name, messages in fields_.items():
        if isinstance(messages, dict):
            parts.append(_summary({f"{name}.{k}": v for k, v in messages.items()}))
        elif isinstance(messages, list) and messages:
            parts.append(f"{name}: {messages[0] if not isinstance(messages[0], (dict, list)) else 'invalid'}")
        else:
            parts.append(f"{name}: {messages}")
    return "; ".join(parts)


def _stringify(value):
    """marshmallow keys may be integers (list positions): make the errors plain JSON."""
    if isinstance(value, dict):
        return {str(k): _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    return value
