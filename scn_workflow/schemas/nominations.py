"""Nomination input and output. Unknown fields are refused; strings, numbers and lists follow
schemas/text.py (the columns of db/tables.py)."""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from scn_workflow.domain.errors import N_, InvalidInput
from scn_workflow.domain.errors import Text as Sentence  # schemas.text's Text is the paragraphs field
from scn_workflow.domain.reference import focus_areas
from scn_workflow.domain.workflow import SPECS
from scn_workflow.schemas.errors import capped, summary
from scn_workflow.schemas.text import BoundedDict, BoundedList, Email, Int32, Int64, Line, Text
from scn_workflow.schemas.wording import NOT_AN_OBJECT, Worded

FOCUS_AREA = validate.OneOf(list(focus_areas()), error="Must be one of: {choices}.")
MAX_PROJECTS = 50


class StrictBoolean(fields.Boolean):
    """JSON true or false only: marshmallow would otherwise take "yes", "off" or 1 for a boolean."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Strict(Worded):
    class Meta:
        unknown = RAISE


class ProjectSchema(Strict):
    title = Line(required=True, min_length=1, max_length=200)
    focus_area = Line(required=True, max_length=40, validate=FOCUS_AREA)
    description = Text(max_length=4000, load_default="")
    priority = StrictBoolean(load_default=False)


class NominationContent(Strict):
    """The editable content of a nomination; every field optional (a draft may be partial)."""

    city_name = Line(min_length=1, max_length=120)
    region = Line(max_length=120, allow_none=True)
    population = Int64(minimum=1, maximum=100_000_000, allow_none=True)
    csco_name = Line(max_length=120, allow_none=True)
    csco_email = Email(allow_none=True)
    vision = Text(max_length=10_000, allow_none=True)
    focus_areas = BoundedList(Line(max_length=40, validate=FOCUS_AREA), max_length=len(focus_areas()), unique=True)
    projects = BoundedList(fields.Nested(ProjectSchema), max_length=MAX_PROJECTS)


class NominationCreate(NominationContent):
    city_name = Line(required=True, min_length=1, max_length=120)
    member_state = Line(min_length=2, max_length=2)
    cycle = Line(min_length=1, max_length=40)


class AssessmentSchema(Strict):
    scores = BoundedDict(keys=Line(max_length=40, validate=FOCUS_AREA),
                         values=Int32(minimum=1, maximum=5), max_length=len(focus_areas()), required=True)
    recommendation = Line(required=True, max_length=20, validate=validate.OneOf(["accept", "reject", "return"]))
    summary = Text(required=True, min_length=1, max_length=10_000)


class TransitionRequest(Strict):
    trigger = Line(required=True, max_length=40, validate=validate.OneOf(list(SPECS),
                                                                         error="Must be one of: {choices}."))
    comment = Text(max_length=10_000, allow_none=True)
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
    """Validate input with `schema`; refuse with each field's messages (the first of them in the
    detail, with how many more there are)."""
    if not isinstance(data, dict):
        raise InvalidInput(N_("The body must be a JSON object."), {"_schema": [NOT_AN_OBJECT]})
    try:
        return schema.load(data, partial=partial)
    except ValidationError as err:
        shown, total = capped(err.messages)
        raise InvalidInput(Sentence(N_("The input is not valid: {summary}."), summary=summary(shown, total)),
                           err.messages) from None
