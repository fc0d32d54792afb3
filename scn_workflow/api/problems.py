"""application/problem+json (RFC 9457) for every error the API and Flask itself raise."""

from __future__ import annotations

from flask import has_request_context, json, make_response
from flask_babel import get_locale, gettext
from flask_babel import gettext as _
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException

from scn_workflow.domain.errors import DomainError, InvalidInput
from scn_workflow.labels import field_messages, refusal, say
from scn_workflow.schemas.errors import MAX_ERRORS, capped, summary

PROBLEM_TYPE = "https://scn-workflow.example/problems/"  # stable identifiers, not fetched


class ViolationSchema(Schema):
    rule = fields.String(metadata={"example": "within_state_limit"})
    message = fields.String(metadata={"example": "Member state ID already has 3 active nominations."})


class ProblemSchema(Schema):
    type = fields.String(metadata={"example": PROBLEM_TYPE + "rule-violation"})
    title = fields.String(metadata={"example": "Refused by the rules of the process"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"example": "Required fields are missing: vision."})
    errors = fields.Dict(metadata={
        "description": f"Messages by field, for validation errors (nested by field or list position, such as "
                       f"projects.0.title): at most {MAX_ERRORS} messages, the first ones found",
        "example": {"csco_email": ["Not a valid email address."]}})
    error_count = fields.Integer(metadata={
        "description": f"How many messages the input earned in all, with `errors`; when over {MAX_ERRORS}, "
                       "`errors` holds the first ones and `detail` ends with how many more there are",
        "example": 1})
    violations = fields.List(fields.Nested(ViolationSchema),
                             metadata={"description": "Each rule that refused, by name"})


def problem(status: int, title: str, detail: str, *, kind: str | None = None, errors=None, violations=None,
            headers=None):
    """The answer; `errors` (by field) are cut to MAX_ERRORS messages and counted in `error_count`."""
    body = {"type": PROBLEM_TYPE + (kind or title.lower().replace(" ", "-")), "title": title, "status": status,
            "detail": detail}
    if _translating():  # the type stays English; title and detail follow Accept-Language
        body["title"], body["detail"] = gettext(title), say(detail)
    if errors is not None:
        body["errors"], body["error_count"] = capped(errors)
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
    fields_ = err.fields if isinstance(err, InvalidInput) else None
    violations = [v.as_dict() for v in err.violations] or None
    if _translating():
        fields_ = field_messages(fields_) if fields_ is not None else None
        violations = [{"rule": v.rule, "message": say(v.message)} for v in err.violations] or None
    return problem(err.status, err.title, refusal(err) if _translating() else err.detail, kind=kind,
                   errors=fields_, violations=violations)


def _translating() -> bool:
    """Whether the reader asked for another language than the English the messages are written in."""
    return has_request_context() and str(get_locale() or "en") != "en"


def from_http(err: HTTPException):
    status = err.code or 500
    data = getattr(err, "data", None) or {}
    messages = data.get("messages")
    if messages:  # webargs / marshmallow validation, by location then field
        fields_ = {}
        for location_messages in messages.values():
            fields_.update(location_messages if isinstance(location_messages, dict) else {"_schema": location_messages})
        shown, total = capped(fields_)
        if _translating():
            fields_, shown = field_messages(fields_), field_messages(shown)
        return problem(422, "Invalid input", _("The input is not valid: {summary}.").format(
            summary=summary(shown, total)), kind="invalid-input", errors=fields_)
    headers = {}
    if status == 405 and err.valid_methods:
        headers["Allow"] = ", ".join(err.valid_methods)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="scn-workflow"'
    return problem(status, err.name, err.description or err.name, headers=headers)
