"""Nominations over HTTP: list, create, read, edit, transitions, audit trail, checks, attachments."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, json, request, send_file, url_for
from flask_smorest import Blueprint
from werkzeug.exceptions import RequestEntityTooLarge

from scn_workflow.api.auth import current_actor, etag, required_version
from scn_workflow.api.docs import errors
from scn_workflow.current import svc
from scn_workflow.domain.errors import N_, InvalidInput
from scn_workflow.domain.model import Actor, Nomination
from scn_workflow.schemas.api import AttachmentForm, AttachmentOut, CheckList, EventList, ListQuery, NominationPage
from scn_workflow.schemas.nominations import NominationContent, NominationCreate, NominationOut, TransitionRequest
from scn_workflow.schemas.text import text_problem
from scn_workflow.services import attachments, exports, idempotency, nominations

blp = Blueprint("nominations", __name__, url_prefix="/api/v1/nominations", description="Nominations")
SECURITY = [{"bearer": []}]
EXAMPLE = {"city_name": "Banyuwangi", "csco_name": "Placeholder Officer", "csco_email": "csco@banyuwangi.example",
           "vision": "A placeholder vision statement.", "focus_areas": ["civic_social"],
           "projects": [{"title": "Placeholder project", "focus_area": "civic_social", "priority": True}]}


def _links(*names: str) -> dict:
    """OpenAPI links from a response that names a nomination to what a client does next with it
    (Schemathesis' stateful run follows them). A change carries the ETag as If-Match."""
    same = {"nomination_id": "$response.body#/id"}
    versioned = {**same, "header.If-Match": "$response.header.ETag"}
    every = {"GetNomination": ("getNomination", same), "EditNomination": ("editNomination", versioned),
             "FireTransition": ("fireTransition", versioned), "ListEvents": ("listEvents", same),
             "ListChecks": ("listChecks", same), "AddAttachment": ("addAttachment", same)}
    return {name: {"operationId": every[name][0], "parameters": every[name][1]} for name in names}


ALL_LINKS = ("GetNomination", "EditNomination", "FireTransition", "ListEvents", "ListChecks", "AddAttachment")
ATTACHMENT_LINKS = {"GetAttachment": {"operationId": "getAttachment", "parameters": {
    "nomination_id": "$request.path.nomination_id", "attachment_id": "$response.body#/id"}}}


def represent(nomination: Nomination, actor: Actor, files: list | None = None) -> Nomination:
    """Ready the nomination for NominationOut: its files (those the use case loaded with it, else
    a query) and what the caller may fire now."""
    nomination.allowed = nominations.allowed_triggers(svc(), actor, nomination)
    if files is None:
        files = getattr(nomination, "files", None)
    nomination.attachment_list = files if files is not None else attachments.listing(svc(), [nomination.id])[nomination.id]
    return nomination


def _one(nomination: Nomination, actor: Actor, status: int = 200, extra: dict | None = None):
    headers = {"ETag": etag(nomination.version), "Content-Location": url_for("nominations.get_nomination",
                                                                             nomination_id=nomination.id)}
    headers.update(extra or {})
    return represent(nomination, actor), status, headers


@blp.get("")
@blp.arguments(ListQuery(), location="query", as_kwargs=True)
@blp.response(200, NominationPage)
@blp.doc(security=SECURITY, responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
@errors(blp, 401, 422)
def list_nominations(page, per_page, **filters):
    """Nominations the caller may see: filter by state, member state, cycle; `q` searches city,
    region and member state. Paginated, newest change first.

    With `Accept: text/csv`: every matching row (no pages), oldest reference first, as a CSV file
    a spreadsheet opens safely: UTF-8 with a byte order mark, a cell that would be a formula
    starts with `'`, headers and states in words in the language of `Accept-Language`."""
    actor = current_actor()
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(exports.nominations_csv(svc(), actor, **filters), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{exports.filename(svc(), "nominations")}"',
            "Cache-Control": "no-store"})
    result = nominations.search(svc(), actor, page=page, per_page=per_page, **filters)
    files = attachments.listing(svc(), [n.id for n in result.items])
    last = max(1, -(-result.total // per_page))

    def link(p):
        return "/api/v1/nominations?" + urlencode({**filters, "page": p, "per_page": per_page})

    return {"items": [represent(n, actor, files[n.id]) for n in result.items], "total": result.total,
            "page": page, "per_page": per_page,
            "links": {"self": link(page), "first": link(1), "last": link(last),
                      "next": link(page + 1) if page < last else None, "prev": link(page - 1) if page > 1 else None}}


@blp.post("")
@blp.arguments(NominationCreate(), example=EXAMPLE)
@blp.response(201, NominationOut, headers={"ETag": {"schema": {"type": "string"}},
                                           "Location": {"schema": {"type": "string"}}})
@blp.doc(security=SECURITY, operationId="createNomination", responses={201: {"links": _links(*ALL_LINKS)}},
         parameters=[{"in": "header", "name": "Idempotency-Key", "required": False,
                                         "schema": {"type": "string", "maxLength": 200},
                                         "description": "A retry with the same key returns the first answer"}])
@errors(blp, 401, 403, 409, 413, 415, 422)
def create_nomination(body):
    """Draft a nomination for the caller's member state (submitters)."""
    actor = current_actor()
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        problem = text_problem(key) or (None if 1 <= len(key) <= 200 else N_("Must be 1 to 200 characters."))
        if problem:
            raise InvalidInput(N_("The Idempotency-Key header is not valid."), {"Idempotency-Key": [problem]})
        digest = idempotency.request_hash(request.get_json(silent=True))
        stored = idempotency.reserve(svc(), actor.username, key, digest)
        if stored is not None:
            status, text, location = stored
            return Response(text, status, mimetype="application/json", headers={
                "Location": location, "ETag": etag(json.loads(text)["version"]), "Idempotent-Replayed": "true"})
        try:
            nomination = nominations.create(svc(), actor, body)
        except Exception:
            idempotency.release(svc(), actor.username, key)
            raise
    else:
        nomination = nominations.create(svc(), actor, body)
    location = url_for("nominations.get_nomination", nomination_id=nomination.id)
    data = represent(nomination, actor, [])
    if key is not None:
        idempotency.complete(svc(), actor.username, key, 201, json.dumps(NominationOut().dump(data)), location)
    return data, 201, {"Location": location, "ETag": etag(nomination.version)}


@blp.get("/<int:nomination_id>")
@blp.response(200, NominationOut, headers={"ETag": {"schema": {"type": "string"}}})
@blp.alt_response(304, description="Not modified (If-None-Match)")
@blp.doc(security=SECURITY, operationId="getNomination",
         responses={200: {"links": _links("EditNomination", "FireTransition")}})
@errors(blp, 401, 404)
def get_nomination(nomination_id):
    """One nomination; its ETag is its version."""
    actor = current_actor()
    nomination = nominations.get(svc(), actor, nomination_id, files=True)
    if request.headers.get("If-None-Match", "").strip() in (etag(nomination.version), f"W/{etag(nomination.version)}"):
        return Response(status=304, headers={"ETag": etag(nomination.version)})
    return _one(nomination, actor)


@blp.patch("/<int:nomination_id>")
@blp.arguments(NominationContent(partial=True), example={"vision": "A revised placeholder vision."})
@blp.response(200, NominationOut, headers={"ETag": {"schema": {"type": "string"}}})
@blp.doc(security=SECURITY, operationId="editNomination", responses={200: {"links": _links(*ALL_LINKS)}},
         parameters=[{"in": "header", "name": "If-Match", "required": True,
                                         "schema": {"type": "string"}, "description": "The ETag you based it on"}])
@errors(blp, 401, 403, 404, 412, 413, 415, 422, 428)
def patch_nomination(changes, nomination_id):
    """Edit a drafted nomination (submitters of its member state), based on its current version."""
    actor = current_actor()
    version = required_version()
    return _one(nominations.update(svc(), actor, nomination_id, version, changes, files=True), actor)


@blp.post("/<int:nomination_id>/transitions")
@blp.arguments(TransitionRequest(), example={"trigger": "submit"})
@blp.response(200, NominationOut, headers={"ETag": {"schema": {"type": "string"}}})
@blp.doc(security=SECURITY, operationId="fireTransition", responses={200: {"links": _links(*ALL_LINKS)}},
         parameters=[{"in": "header", "name": "If-Match", "required": True,
                                         "schema": {"type": "string"}, "description": "The ETag you based it on"}])
@errors(blp, 401, 403, 404, 409, 412, 413, 415, 422, 428)
def fire_transition(body, nomination_id):
    """Fire a workflow trigger. 409: not from this state; 403: not yours to fire; 422: a rule
    refused (each named); 412: stale version; 428: no If-Match."""
    actor = current_actor()
    version = required_version()
    nomination = nominations.fire(svc(), actor, nomination_id, body["trigger"], version,
                                  comment=body.get("comment"), assessment=body.get("assessment"), files=True)
    return _one(nomination, actor)


@blp.get("/<int:nomination_id>/events")
@blp.response(200, EventList)
@blp.doc(security=SECURITY, operationId="listEvents")
@errors(blp, 401, 404)
def list_events(nomination_id):
    """The audit trail, oldest first, each event with its hash and the hash before it."""
    return {"items": nominations.events(svc(), current_actor(), nomination_id)}


@blp.get("/<int:nomination_id>/checks")
@blp.response(200, CheckList)
@blp.doc(security=SECURITY, operationId="listChecks")
@errors(blp, 401, 404)
def list_checks(nomination_id):
    """The automated checks of the latest submission."""
    return {"items": nominations.checks(svc(), current_actor(), nomination_id)}


@blp.post("/<int:nomination_id>/attachments")
@blp.response(201, AttachmentOut)
@blp.doc(security=SECURITY, operationId="addAttachment", responses={201: {"links": ATTACHMENT_LINKS}},
         requestBody={"content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file", "kind"],
    "properties": {"file": {"type": "string", "format": "binary"},
                   "kind": {"type": "string", "enum": ["action_plan", "supporting_document"]}}}}}})
@errors(blp, 401, 403, 404, 412, 413, 415, 422)
def add_attachment(nomination_id):
    """Attach a PDF (checked by content) to a drafted nomination. Who may, the state and If-Match
    are checked before the body is read: a refused upload is never spooled or stored."""
    actor = current_actor()
    version = required_version() if request.headers.get("If-Match") else None
    attachments.may_attach(svc(), actor, nomination_id, version)
    request.max_content_length = attachments.UPLOAD_LIMIT  # Werkzeug stops reading past it: 413
    try:
        upload = request.files.get("file")  # the body is read (and parsed) here, not before
    except RequestEntityTooLarge:
        raise RequestEntityTooLarge(f"An attachment may be at most {attachments.MAX_BYTES // (1024 * 1024)} MiB; "
                                    "nothing was stored.") from None
    problems = AttachmentForm().validate(request.form.to_dict())
    if upload is None:
        problems["file"] = [N_("This field is required.")]
    if problems:
        raise InvalidInput("The attachment is not valid.", problems)
    content = upload.read(attachments.MAX_BYTES + 1)
    if len(content) > attachments.MAX_BYTES:
        raise RequestEntityTooLarge(f"An attachment may be at most {attachments.MAX_BYTES // (1024 * 1024)} MiB.")
    return attachments.add(svc(), actor, nomination_id, request.form["kind"], upload.filename or "", content, version)


@blp.get("/<int:nomination_id>/attachments/<int:attachment_id>")
@blp.response(200, description="The PDF file", content_type="application/pdf")
@blp.doc(security=SECURITY, operationId="getAttachment")
@errors(blp, 401, 404)
def get_attachment(nomination_id, attachment_id):
    """Download an attachment (only for those who may see the nomination)."""
    path, meta = attachments.open_file(svc(), current_actor(), nomination_id, attachment_id)
    return send_file(path, mimetype="application/pdf", download_name=meta["filename"], as_attachment=True)
