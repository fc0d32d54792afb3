"""Nomination input and output. Unknown fields are refused; strings are length-limited."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from scn_workflow.domain.errors import InvalidInput
from scn_workflow.domain.reference import focus_areas
from scn_workflow.domain.workflow import SPECS

FOCUS_AREA = validate.OneOf(list(focus_areas()), error="Must be one of: {choices}.")


def _text(max_len: int, **kwargs):
    return fields.String(validate=validate.Length(max=max_len), **kwargs)


class StrictBoolean(fields.Boolean):
    """JSON true or false only: marshmallow would otherwise take "yes", "off" or 1 for a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Strict(Schema):
    class Meta:
        unknown = RAISE


class ProjectSchema(Strict):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    focus_area = fields.String(required=True, validate=FOCUS_AREA)
    description = _text(4000, load_default="")
    priority = StrictBoolean(load_default=False)


class NominationContent(Strict):
    """The editable content of a nomination; every field optional (a draft may be partial)."""

    city_name = fields.String(validate=validate.Length(min=1, max=120))
    region = _text(120, allow_none=True)
    population = fields.Integer(allow_none=True, strict=True,
                                validate=validate.Range(min=1, max=100_000_000))
    csco_name = _text(120, allow_none=True)
    csco_email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    vision = _text(10_000, allow_none=True)
    focus_areas = fields.List(fields.String(validate=FOCUS_AREA), validate=validate.Length(max=6))
    projects = fields.List(fields.Nested(ProjectSchema), validate=validate.Length(max=50))

    @validates_schema
    def _no_repeats(self, data, **kwargs):
        areas = data.get("focus_areas") or []
        if len(set(areas)) != len(areas):
            raise ValidationError("Each focus area may be named once.", "focus_areas")


class NominationCreate(NominationContent):
    city_name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    member_state = fields.String(validate=validate.Length(equal=2))
    cycle = fields.String(validate=validate.Length(min=1, max=40))


class AssessmentSchema(Strict):
    scores = fields.Dict(keys=fields.String(validate=FOCUS_AREA),
                         values=fields.Integer(strict=True, validate=validate.Range(min=1, max=5)),
                         required=True)
    recommendation = fields.String(required=True, validate=validate.OneOf(["accept", "reject", "return"]))
    summary = fields.String(required=True, validate=validate.Length(min=1, max=10_000))


class TransitionRequest(Strict):
    trigger = fields.String(required=True, validate=validate.OneOf(list(SPECS),
                                                                   error="Must be one of: {choices}."))
    comment = _text(10_000, allow_none=True)
    assessment = fields.Nested(AssessmentSchema, allow_none=True)


class NominationOut(Schema):
    id = fields.Integer()
    reference = fields.String()
    member_state = fields.String()
    cycle = fields.String()
    city_name = fields.String()
    region = fields.String(allow_none=True)
    population = fields.Integer(allow_none=True)
    csco_name = fields.String(allow_none=True)
    csco_email = fields.String(allow_none=True)
    vision = fields.String(allow_none=True)
    focus_areas = fields.List(fields.String())
    projects = fields.Method("_projects")
    attachments = fields.Method("_attachments")
    state = fields.String()
    version = fields.Integer()
    checks_outcome = fields.String(allow_none=True)
    reviewed_by = fields.String(allow_none=True)
    assessment = fields.Dict(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    submitted_at = fields.DateTime(allow_none=True)
    allowed_triggers = fields.Method("_allowed")

    def _projects(self, obj):
        return [p.as_dict() for p in obj.projects]

    def _attachments(self, obj):
        return list(getattr(obj, "attachment_list", []) or [])

    def _allowed(self, obj):
        return list(getattr(obj, "allowed", []) or [])


class EventOut(Schema):
    event_id = fields.String()
    seq = fields.Integer()
    name = fields.String()
    actor = fields.String()
    occurred_at = fields.DateTime()
    from_state = fields.String(allow_none=True)
    to_state = fields.String(allow_none=True)
    comment = fields.String(allow_none=True)
    payload = fields.Dict()
    prev_hash = fields.String()
    hash = fields.String()


class CheckOut(Schema):
    name = fields.String()
    outcome = fields.String()
    blocking = fields.Boolean()
    message = fields.String()
    ran_at = fields.DateTime()


def load(schema: Schema, data, *, partial: bool = False) -> dict:
    """Validate input with `schema`; refuse with every field's messages."""
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.", {"_schema": ["Must be a JSON object."]})
    try:
        return schema.load(data, partial=partial)
    except ValidationError as err:
        raise InvalidInput("The input is not valid: " + ", ".join(map(str, err.messages)) + ".",
                           err.messages) from None
