"""Schemas of the API's other resources: tokens, reference data, admin requests, lists."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from scn_workflow.domain.workflow import STATES
from scn_workflow.schemas.nominations import CheckOut, EventOut, NominationOut, Strict, StrictBoolean
from scn_workflow.schemas.text import BoundedList, Email, Int32, Line, Moment, QueryInt, Text, Url
from scn_workflow.schemas.wording import Worded
from scn_workflow.services.webhooks import EVENT_NAMES


class TokenRequest(Strict):
    username = Line(required=True, min_length=1, max_length=80, metadata={"example": "submitter-id"})
    # A password is checked, never stored as typed: any line up to 200 characters (a NUL is refused,
    # as the database would refuse it in a username).
    password = Line(required=True, min_length=1, max_length=200, metadata={"example": "demo-password"})


class TokenOut(Schema):
    token = fields.String()
    expires_at = fields.DateTime()


class MemberStateOut(Schema):
    code = fields.String(metadata={"example": "ID"})
    name = fields.String(metadata={"example": "Indonesia"})
    lead_agency_name = fields.String(allow_none=True)
    lead_agency_email = fields.String(allow_none=True)
    lead_agency_webhook_url = fields.String(allow_none=True)


class MemberStatePatch(Strict):
    lead_agency_name = Line(allow_none=True, max_length=300)
    lead_agency_email = Email(allow_none=True)
    lead_agency_webhook_url = Url(allow_none=True)
    lead_agency_webhook_secret = Line(allow_none=True, min_length=16, max_length=200, load_only=True)


class OverrideOut(Schema):
    member_state = fields.String()
    limit = fields.Integer()
    reason = fields.String()
    set_by = fields.String()
    set_at = fields.DateTime()


class CycleOut(Schema):
    code = fields.String(metadata={"example": "ASCN-2026"})
    name = fields.String()
    opens_at = fields.DateTime()
    closes_at = fields.DateTime()
    limit_per_state = fields.Integer()
    requires_action_plan = fields.Boolean()
    overrides = fields.List(fields.Nested(OverrideOut))


class CycleCreate(Strict):
    code = Line(required=True, max_length=40, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}\Z",
                                                                       error="Letters, digits and dashes, 1-40."))
    name = Line(required=True, min_length=1, max_length=200)
    opens_at = Moment(required=True)
    closes_at = Moment(required=True)
    limit_per_state = Int32(load_default=3, minimum=1, maximum=100)
    requires_action_plan = StrictBoolean(load_default=False)


class OverrideRequest(Strict):
    limit = Int32(required=True, minimum=1, maximum=100)
    reason = Text(required=True, min_length=3, max_length=2000)


class WebhookCreate(Strict):
    url = Url(required=True)
    secret = Line(required=True, load_only=True, min_length=16, max_length=200)
    events = BoundedList(Line(max_length=40, validate=validate.OneOf(EVENT_NAMES)), required=True, unique=True,
                         min_length=1, max_length=len(EVENT_NAMES))


class WebhookOut(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())


class ListQuery(Strict):
    """The filters and page of a list (the API's query string; the pages read it too)."""

    state = Line(max_length=20, validate=validate.OneOf(STATES))
    member_state = Line(min_length=2, max_length=2)
    cycle = Line(min_length=1, max_length=40)
    q = Line(min_length=1, max_length=100)
    page = QueryInt(load_default=1, minimum=1, maximum=100_000)
    per_page = QueryInt(load_default=20, minimum=1, maximum=100)


class Links(Schema):
    self = fields.String()
    first = fields.String()
    last = fields.String()
    next = fields.String(allow_none=True)
    prev = fields.String(allow_none=True)


class NominationPage(Schema):
    items = fields.List(fields.Nested(NominationOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
    links = fields.Nested(Links)


class EventList(Schema):
    items = fields.List(fields.Nested(EventOut))


class CheckList(Schema):
    items = fields.List(fields.Nested(CheckOut))


class AttachmentOut(Schema):
    id = fields.Integer()
    kind = fields.String()
    filename = fields.String()
    sha256 = fields.String()
    size = fields.Integer()


class AttachmentForm(Worded):
    kind = Line(required=True, max_length=40, validate=validate.OneOf(["action_plan", "supporting_document"]))


class WorkflowTrigger(Schema):
    trigger = fields.String()
    from_ = fields.List(fields.String(), data_key="from", attribute="from")
    to = fields.String()
    event = fields.String()
    who = fields.String()
    permissions = fields.List(fields.Dict())
    rules = fields.List(fields.Dict())


class WorkflowOut(Schema):
    states = fields.List(fields.String())
    initial = fields.String()
    terminal = fields.List(fields.String())
    triggers = fields.List(fields.Nested(WorkflowTrigger))


class QueueOut(Schema):
    name = fields.String()
    depth = fields.Integer(allow_none=True)
    oldest_age_s = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)


class WorkerOut(Schema):
    hostname = fields.String()
    queues = fields.List(fields.String())
    running = fields.List(fields.String())
    last_seen = fields.DateTime()
    silent_s = fields.Float()
    online = fields.Boolean()
    answers_ping = fields.Boolean(allow_none=True)


class OutboxOut(Schema):
    unpublished = fields.Integer()
    incomplete = fields.Integer()
    oldest_unpublished_age_s = fields.Float()


class QueuesReport(Schema):
    broker = fields.String()
    reachable = fields.Boolean()
    error = fields.String(allow_none=True)
    queues = fields.List(fields.Nested(QueueOut))
    workers = fields.List(fields.Nested(WorkerOut))
    outbox = fields.Nested(OutboxOut)


class FailureOut(Schema):
    id = fields.Integer()
    task = fields.String()
    event_id = fields.String(allow_none=True)
    arguments = fields.List(fields.Raw())
    error = fields.String()
    attempts = fields.Integer()
    failed_at = fields.DateTime()
    status = fields.String()
    resolved_by = fields.String(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)


class FailureList(Schema):
    items = fields.List(fields.Nested(FailureOut))


class StatusOut(Schema):
    ok = fields.Boolean()
    problems = fields.List(fields.String())
    report = fields.Dict()
