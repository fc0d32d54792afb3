"""The HTML pages people use: their nominations, the nomination form and page, the review desk."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.exceptions import BadRequest

from scn_workflow.current import svc
from scn_workflow.domain import workflow
from scn_workflow.domain.errors import N_, DomainError, InvalidInput, StaleVersion
from scn_workflow.domain.model import Role
from scn_workflow.domain.reference import focus_areas
from scn_workflow.schemas.api import ListQuery
from scn_workflow.schemas.text import parse_int
from scn_workflow.services import admin, attachments, exports, nominations, offers
from scn_workflow.web.errors import error_page
from scn_workflow.web.forms import assessment_input, nomination_input, validate_assessment, validate_nomination
from scn_workflow.web.labels import field_problems, member_state_name, refusal, say, state_label, trigger_label
from scn_workflow.web.session import current_user, login_required

bp = Blueprint("ui", __name__)
# A refusal a page does not handle itself is an HTML error page here (the API answers problem+json).
bp.register_error_handler(DomainError, error_page)
NEEDS_COMMENT = {trigger: spec.comment_prompt for trigger, spec in workflow.SPECS.items() if spec.comment_prompt}
CONFIRMED = {trigger: spec.confirmation for trigger, spec in workflow.SPECS.items() if spec.confirmation}


DESK_PER_PAGE = 50


def _query(*names: str) -> dict:
    """The query string's `names` (filters, `q`, `page`), blank ones left out, by the API's rules
    (ListQuery): a 400 naming each one that breaks them."""
    raw = {name: request.args.get(name, "").strip() for name in names}
    try:
        return ListQuery(only=names, partial=True).load({k: v for k, v in raw.items() if v})
    except ValidationError as err:
        raise BadRequest(" ".join(_("The parameter %(name)s is not valid: %(problem)s", name=name,
                                    problem=" ".join(say(m) for m in messages))
                                  for name, messages in err.messages.items())) from None


def _form_version() -> int:
    """The version a form was based on: -1 when missing (refused as stale), 400 when it is not a
    number written with the digits 0-9."""
    value = request.form.get("version", "").strip()
    if not value:
        return -1
    version = parse_int(value)
    if version is None:
        raise BadRequest(_("The form's version field is not a number written with the digits 0-9; reload the "
                           "page and try again."))
    return version


@bp.get("/home")
@login_required()
def home():
    user = current_user()
    if user.role is Role.REVIEWER:
        return redirect(url_for("ui.review_desk"))
    return redirect(url_for("ui.list_nominations"))


@bp.get("/nominations")
@login_required()
def list_nominations():
    user = current_user()
    query = _query("cycle", "member_state", "q", "page")
    filters = {"state": request.args.get("state") or None, "cycle": query.get("cycle"),
               "member_state": query.get("member_state")}
    if filters["state"] not in (None, *workflow.STATES):
        filters["state"] = None
    q = query.get("q")
    result = nominations.search(svc(), user, q=q, page=query.get("page", 1), per_page=25, **filters)
    usage = nominations.usage(svc(), user.member_state) if user.role is Role.SUBMITTER else []
    cycles = [c for c, _overrides in admin.cycles(svc())]
    return render_template("nominations/list.html", result=result, filters=filters, q=q or "", usage=usage,
                           states=workflow.STATES, cycles=cycles, deadlines=_current_deadlines(cycles),
                           member_states=admin.member_states(svc()))


def _current_deadlines(cycles) -> list[dict]:
    """The deadlines of the cycles open or still to open; else of the one that closed last."""
    now = svc().clock()
    current = [deadline(c, now) for c in cycles if now < c.closes_at]
    closed = sorted((c for c in cycles if now >= c.closes_at), key=lambda c: c.closes_at)
    return current or ([deadline(closed[-1], now)] if closed else [])


def _form_page(template: str, **context):
    context.setdefault("errors", {})
    context.setdefault("banner", None)
    nomination = context.get("nomination")
    if nomination is not None:
        context["deadlines"] = [deadline(_cycle(nomination.cycle), svc().clock())]
    else:
        context["deadlines"] = [deadline(c, svc().clock()) for c in context.get("cycles", [])]
    return render_template(template, focus_areas=focus_areas(), **context)


@bp.route("/nominations/new", methods=["GET", "POST"])
@login_required(Role.SUBMITTER)
def new_nomination():
    user = current_user()
    cycles = [c for c, _overrides in admin.cycles(svc()) if c.is_open(svc().clock())]
    if request.method == "GET":
        raw = {"city_name": "", "region": "", "population": "", "csco_name": "", "csco_email": "", "vision": "",
               "focus_areas": [], "projects": [{"title": "", "focus_area": "", "description": "", "priority": False}],
               "cycle": cycles[0].code if cycles else ""}
        return _form_page("nominations/form.html", raw=raw, cycles=cycles, nomination=None)
    raw = nomination_input(request.form)
    raw["cycle"] = request.form.get("cycle", "")
    if request.form.get("action", "save") != "save":
        return _form_page("nominations/form.html", raw=raw, cycles=cycles, nomination=None)
    data, errors = validate_nomination({k: v for k, v in raw.items() if k != "cycle"}, creating=True)
    if data is not None:
        if raw["cycle"]:
            data["cycle"] = raw["cycle"]
        try:
            created = nominations.create(svc(), user, data)
            flash(_("Draft %(reference)s saved.", reference=created.reference))
            return redirect(url_for("ui.show_nomination", nomination_id=created.id))
        except InvalidInput as err:
            errors = err.fields
    return _form_page("nominations/form.html", raw=raw, cycles=cycles, nomination=None, errors=errors,
                      banner=_("Please correct the fields marked below; nothing was saved yet.")), 422


def _raw_from(nomination) -> dict:
    return {"city_name": nomination.city_name, "region": nomination.region or "",
            "population": "" if nomination.population is None else str(nomination.population),
            "csco_name": nomination.csco_name or "", "csco_email": nomination.csco_email or "",
            "vision": nomination.vision or "", "focus_areas": list(nomination.focus_areas),
            "projects": [p.as_dict() for p in nomination.projects] or [
                {"title": "", "focus_area": "", "description": "", "priority": False}]}


@bp.route("/nominations/<int:nomination_id>/edit", methods=["GET", "POST"])
@login_required(Role.SUBMITTER)
def edit_nomination(nomination_id):
    user = current_user()
    nomination = nominations.get(svc(), user, nomination_id)
    if request.method == "GET":
        if nomination.state != "drafted":
            flash(_("Only a draft can be edited; this nomination is %(state)s.",
                    state=state_label(nomination.state).lower()), "error")
            return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))
        return _form_page("nominations/form.html", raw=_raw_from(nomination), nomination=nomination,
                          version=nomination.version)
    raw = nomination_input(request.form)
    version = request.form.get("version", "")
    if request.form.get("action", "save") != "save":
        return _form_page("nominations/form.html", raw=raw, nomination=nomination, version=version)
    data, errors = validate_nomination(raw, creating=False)
    if data is None:
        return _form_page("nominations/form.html", raw=raw, nomination=nomination, version=version, errors=errors,
                          banner=_("Please correct the fields marked below; nothing was saved yet.")), 422
    try:
        updated = nominations.update(svc(), user, nomination_id, _form_version(), data)
    except StaleVersion:
        current = nominations.get(svc(), user, nomination_id)
        return _form_page("nominations/form.html", raw=raw, nomination=current, version=current.version,
                          banner=_("Someone changed this nomination while you were editing (it is now version "
                                   "%(version)s). Nothing was saved; your input is kept below: check it against "
                                   "the current nomination and save again.", version=current.version)), 409
    except InvalidInput as err:
        return _form_page("nominations/form.html", raw=raw, nomination=nomination, version=version,
                          errors=err.fields, banner=refusal(err)), 422
    except DomainError as err:  # no longer drafted, say: nothing saved, the input stays on the page
        return _form_page("nominations/form.html", raw=raw, nomination=nomination, version=version,
                          banner=_("%(refusal)s Nothing was saved.", refusal=refusal(err))), err.status
    flash(_("Draft saved.") if updated.version != nomination.version else _("Nothing changed."))
    return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))


def _cycle(code: str):
    return admin.cycle(svc(), code)


def _spec_text(text: str, nomination) -> str:
    """A sentence of the workflow's table (next step, confirmation) in the reader's language, about this
    nomination."""
    return _(text).format(city=nomination.city_name, cycle=nomination.cycle,
                          member_state=member_state_name(nomination.member_state))


def deadline(cycle, now: datetime) -> dict | None:
    """When the cycle closes, and how many days are left (calendar days, UTC); `closing` in the last
    seven days. The pages show it with nominations/_deadline.html."""
    if cycle is None:
        return None
    days = (cycle.closes_at.date() - now.date()).days
    status = ("upcoming" if now < cycle.opens_at else "closed" if now >= cycle.closes_at
              else "closing" if days <= 7 else "open")
    return {"cycle": cycle, "days": max(days, 0), "status": status}


@bp.get("/nominations/<int:nomination_id>")
@login_required()
def show_nomination(nomination_id):
    user = current_user()
    nomination = nominations.get(svc(), user, nomination_id, files=True)
    offer = offers.offer(svc(), user, nomination)
    return render_template(
        "nominations/show.html", n=nomination, allowed=offer.allowed, unavailable=offer.unavailable,
        needs_comment=NEEDS_COMMENT, confirmed=CONFIRMED,
        events=nominations.events(svc(), user, nomination_id),
        checks=nominations.checks(svc(), user, nomination_id), focus_areas=focus_areas(),
        files=nomination.files, kinds=attachments.KINDS, deadline=deadline(_cycle(nomination.cycle), svc().clock()),
        can_upload=user.role is Role.SUBMITTER and user.member_state == nomination.member_state
        and nomination.state == "drafted")


def _confirm_page(nomination, trigger: str, comment: str = "", status: int = 200):
    return render_template("nominations/confirm.html", n=nomination, trigger=trigger,
                           consequence=_spec_text(CONFIRMED[trigger], nomination), comment=comment,
                           comment_prompt=NEEDS_COMMENT.get(trigger)), status


@bp.get("/nominations/<int:nomination_id>/confirm/<trigger>")
@login_required()
def confirm(nomination_id, trigger):
    """The step before a trigger that cannot be undone: it names the consequence; its form fires."""
    if trigger not in CONFIRMED:
        abort(404)
    return _ask_first(nomination_id, trigger)


def _ask_first(nomination_id: int, trigger: str, comment: str = ""):
    """The confirmation page of `trigger`, or, when the person may not fire it now, why not."""
    user = current_user()
    nomination = nominations.get(svc(), user, nomination_id)
    offer = offers.offer(svc(), user, nomination)
    if trigger not in offer.allowed:
        reasons = offer.unavailable.get(trigger)
        flash(" ".join(say(v.message) for v in reasons) if reasons else
              _("%(action)s is not possible on this nomination now.", action=trigger_label(trigger)), "error")
        return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))
    return _confirm_page(nomination, trigger, comment)


@bp.post("/nominations/<int:nomination_id>/fire")
@login_required()
def fire(nomination_id):
    user = current_user()
    trigger = request.form.get("trigger", "")
    if trigger == "review":
        return redirect(url_for("ui.review_form", nomination_id=nomination_id))
    comment = (request.form.get("comment") or "").strip()[:10_000] or None
    if trigger in CONFIRMED and request.form.get("confirm") != "yes":
        # Not confirmed (a form of another page, a script): nothing changes; the confirmation is shown.
        return _ask_first(nomination_id, trigger, comment or "")
    try:
        done = nominations.fire(svc(), user, nomination_id, trigger, _form_version(),
                                comment=comment)
        flash(_spec_text(workflow.SPECS[trigger].next_step, done))
    except StaleVersion:
        flash(_("Someone changed this nomination meanwhile; nothing was done. Check it and try again."), "error")
    except DomainError as err:
        flash(refusal(err, link=url_for("ui.edit_nomination", nomination_id=nomination_id)), "error")
    return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))


@bp.route("/nominations/<int:nomination_id>/review", methods=["GET", "POST"])
@login_required(Role.REVIEWER)
def review_form(nomination_id):
    user = current_user()
    nomination = nominations.get(svc(), user, nomination_id)
    raw = {"scores": {}, "recommendation": "", "summary": ""}
    errors, banner, status = {}, None, 200
    if request.method == "POST":
        raw = assessment_input(request.form, nomination.focus_areas)
        data, errors = validate_assessment(raw)
        if data is not None:
            try:
                nominations.fire(svc(), user, nomination_id, "review", _form_version(),
                                 comment=(request.form.get("comment") or "").strip()[:10_000] or None,
                                 assessment=data)
                flash(_spec_text(workflow.SPECS["review"].next_step, nomination))
                return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))
            except StaleVersion:
                nomination = nominations.get(svc(), user, nomination_id)
                banner, status = _("Someone changed this nomination meanwhile; nothing was saved. Your "
                                   "assessment is kept below: check the nomination and send it again."), 409
            except DomainError as err:
                banner, status = refusal(err), err.status
        else:
            banner, status = _("Please correct the fields marked below."), 422
    return render_template("nominations/review.html", n=nomination, raw=raw, errors=errors, banner=banner,
                           focus_areas=focus_areas()), status


def _upload_version(body_read: bool = True) -> int | None:
    """The version an upload was based on: the query string's (the form names it in its action, so
    it is known before the body is read), else the form's once the body is read; None when neither
    names one."""
    value = request.args.get("version") or (request.form.get("version") if body_read else None)
    if not value:
        return None
    version = parse_int(value)
    return -1 if version is None else version  # -1: refused as stale


@bp.before_app_request
def _refuse_an_upload_before_reading_it():
    """An upload that would be refused is refused before its body is read, so the file is never
    spooled or stored. This runs before the CSRF check (web/__init__.py installs that after the
    blueprints), which reads the form and so the body; refusing changes nothing, so it needs no token."""
    if request.endpoint != "ui.upload" or request.method != "POST":
        return None
    request.max_content_length = attachments.UPLOAD_LIMIT  # Werkzeug stops reading past it: 413
    user = current_user()
    if user is None:
        return redirect(url_for("session.login", next=request.full_path))
    if user.role is not Role.SUBMITTER:
        abort(403, _("This page is for %(roles)s accounts.", roles=_("Submitter")))
    nomination_id = request.view_args["nomination_id"]
    try:
        attachments.may_attach(svc(), user, nomination_id, _upload_version(body_read=False))
    except StaleVersion:
        flash(_("Someone changed this nomination meanwhile; nothing was attached. Check it and upload the file "
                "again."), "error")
    except DomainError as err:
        flash(refusal(err), "error")
    else:
        return None
    return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))


@bp.post("/nominations/<int:nomination_id>/attachments")
@login_required(Role.SUBMITTER)
def upload(nomination_id):
    user = current_user()
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            raise InvalidInput(N_("Choose a PDF file to upload."), {"file": [N_("Choose a PDF file to upload.")]})
        stored = attachments.add(svc(), user, nomination_id, request.form.get("kind", ""), upload_file.filename,
                                 upload_file.read(), _upload_version())
        flash(_("%(filename)s attached.", filename=stored["filename"]))
    except InvalidInput as err:
        flash(field_problems(err.fields, link="") or refusal(err), "error")  # each label links to its field
    except DomainError as err:
        flash(refusal(err), "error")
    return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))


@bp.get("/nominations/<int:nomination_id>/attachments/<int:attachment_id>")
@login_required()
def download(nomination_id, attachment_id):
    path, meta = attachments.open_file(svc(), current_user(), nomination_id, attachment_id)
    return send_file(path, mimetype="application/pdf", download_name=meta["filename"], as_attachment=True)


@bp.get("/review")
@login_required(Role.REVIEWER, Role.ADMIN, Role.OPERATOR)
def review_desk():
    user = current_user()
    state = request.args.get("state") if request.args.get("state") in ("submitted", "reviewed") else None
    query = _query("cycle", "member_state", "page")
    filters = {"cycle": query.get("cycle"), "member_state": query.get("member_state")}
    oldest_first = request.args.get("sort", "oldest") != "newest"
    pages = {}
    for s in ([state] if state else ["submitted", "reviewed"]):
        # Both lists on one page show their first page each, and link to one list page by page.
        pages[s] = nominations.search(svc(), user, state=s, checks_done=True, oldest_first=oldest_first,
                                      page=query.get("page", 1) if state else 1, per_page=DESK_PER_PAGE, **filters)
    return render_template("review/desk.html", pages=pages, filters=filters, state=state,
                           sort="oldest" if oldest_first else "newest", now=svc().clock(),
                           cycles=[c for c, _overrides in admin.cycles(svc())],
                           member_states=admin.member_states(svc()))


def csv_download(pieces, name: str) -> Response:
    """A CSV export (services/exports.py), sent as it is read."""
    return Response(pieces, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{exports.filename(svc(), name)}"', "Cache-Control": "no-store"})


@bp.get("/nominations.csv")
@login_required()
def nominations_csv():
    """The list of /nominations with the same filters, every matching row, as a CSV file."""
    state = request.args.get("state")
    pieces = exports.nominations_csv(svc(), current_user(), state=state if state in workflow.STATES else None,
                                     **_query("cycle", "member_state", "q"))
    return csv_download(pieces, "nominations")


@bp.get("/review.csv")
@login_required(Role.REVIEWER, Role.ADMIN, Role.OPERATOR)
def review_desk_csv():
    """The review desk with the same filters, every matching row, as a CSV file."""
    state = request.args.get("state")
    chosen = (state,) if state in ("submitted", "reviewed") else ("submitted", "reviewed")
    pieces = exports.nominations_csv(svc(), current_user(), states=chosen, checks_done=True,
                                     **_query("cycle", "member_state"))
    return csv_download(pieces, "review-desk")


@bp.get("/workflow")
def workflow_page():
    from scn_workflow.web.diagram import workflow_svg
    counts = {}
    if current_user():  # every state, so that an empty one shows its 0
        found = nominations.count_by_state(svc())
        counts = {state: found.get(state, 0) for state in workflow.STATES}
    return render_template("workflow.html", svg=workflow_svg(workflow.describe(), counts), counts=counts,
                           definition=workflow.describe())

