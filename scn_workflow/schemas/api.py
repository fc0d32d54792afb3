"""Schemas of the API's other resources: tokens, reference data, admin requests, lists."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from scn_workflow.domain.workflow import STATES
from scn_workflow.schemas.nominations import CheckOut, EventOut, NominationOut, Strict
from scn_workflow.services.webhooks import EVENT_NAMES


class TokenRequest(Strict):
    username = fields.String(required=True, validate=validate.Length(min=1, max=80),
                             metadata={"example": "submitter-id"})
    password = fields.String(required=True, validate=validate.Length(min=1, max=200),
                             metadata={"example": "demo-password"})


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
    lead_agency_name = fields.String(allow_none=True, validate=validate.Length(max=300))
    lead_agency_email = fields.Email(allow_none=True, validate=validate.Length(max=254))
    lead_agency_webhook_url = fields.Url(allow_none=True, schemes={"http", "https"}, require_tld=False,
                                         validate=validate.Length(max=2000))
    lead_agency_webhook_secret = fields.String(allow_none=True, validate=validate.Length(min=16, max=200),
                                               load_only=True)


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
    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$",
                                                                 error="Letters, digits and dashes, 1-40."))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    opens_at = fields.AwareDateTime(required=True, default_timezone=None)
    closes_at = fields.AwareDateTime(required=True, default_timezone=None)
    limit_per_state = fields.Integer(load_default=3, strict=True, validate=validate.Range(min=1, max=100))
    requires_action_plan = fields.Boolean(load_default=False, truthy={True}, falsy={False})


class OverrideRequest(Strict):
    limit = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100))
    reason = fields.String(required=True, validate=validate.Length(min=3, max=2000))


class UserCreate(Strict):
    username = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9._-]{1,79}$",
                                                                     error="2-80 lower-case letters, digits, . _ -"))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=8, max=200))
    email = fields.Email(required=True, validate=validate.Length(max=254))
    role = fields.String(required=True, validate=validate.OneOf(["submitter", "reviewer", "operator", "admin"]))
    member_state = fields.String(allow_none=True, validate=validate.Length(equal=2))


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    email = fields.String()
    role = fields.Function(lambda u: u.role.value)
    member_state = fields.String(allow_none=True)


class WebhookCreate(Strict):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=2000))
    secret = fields.String(required=True, load_only=True, validate=validate.Length(min=16, max=200))
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_NAMES)), required=True,
                         validate=validate.Length(min=1, max=len(EVENT_NAMES)))


class WebhookOut(Schema):
    id = fields.Integer()
    url = fields.String()
    events = fields.List(fields.String())


class ListQuery(Strict):
    state = fields.String(validate=validate.OneOf(STATES))
    member_state = fields.String(validate=validate.Length(equal=2))
    cycle = fields.String(validate=validate.Length(min=1, max=40))
    q = fields.String(validate=validate.Length(min=1, max=100))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


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


class AttachmentForm(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["action_plan", "supporting_document"]))


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
