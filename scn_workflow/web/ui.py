"""The HTML pages people use: their nominations, the nomination form and page, the review desk."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, send_file, url_for

from scn_workflow.current import svc
from scn_workflow.domain import workflow
from scn_workflow.domain.errors import DomainError, InvalidInput, StaleVersion
from scn_workflow.domain.model import Role
from scn_workflow.domain.reference import focus_areas
from scn_workflow.services import admin, attachments, nominations
from scn_workflow.web.errors import error_page
from scn_workflow.web.forms import assessment_input, nomination_input, validate_assessment, validate_nomination
from scn_workflow.web.session import current_user, login_required

bp = Blueprint("ui", __name__)
# A refusal a page does not handle itself is an HTML error page here (the API answers problem+json).
bp.register_error_handler(DomainError, error_page)
LABELS = {trigger: spec.label for trigger, spec in workflow.SPECS.items()}
NEEDS_COMMENT = {trigger: spec.comment_prompt for trigger, spec in workflow.SPECS.items() if spec.comment_prompt}


DESK_PER_PAGE = 50


def _int_arg(name: str, default: int = 1) -> int:
    value = request.args.get(name, "")
    return max(1, min(int(value), 100_000)) if value.isdigit() else default


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
    filters = {k: request.args.get(k) or None for k in ("state", "cycle", "member_state")}
    if filters["state"] not in (None, *workflow.STATES):
        filters["state"] = None
    q = (request.args.get("q") or "").strip()[:100] or None
    result = nominations.search(svc(), user, q=q, page=_int_arg("page"), per_page=25, **filters)
    usage = nominations.usage(svc(), user.member_state) if user.role is Role.SUBMITTER else []
    return render_template("nominations/list.html", result=result, filters=filters, q=q or "", usage=usage,
                           states=workflow.STATES, cycles=[c for c, _ in admin.cycles(svc())],
                           member_states=admin.member_states(svc()))


def _form_page(template: str, **context):
    context.setdefault("errors", {})
    context.setdefault("banner", None)
    return render_template(template, focus_areas=focus_areas(), **context)


@bp.route("/nominations/new", methods=["GET", "POST"])
@login_required(Role.SUBMITTER)
def new_nomination():
    user = current_user()
    cycles = [c for c, _ in admin.cycles(svc()) if c.is_open(svc().clock())]
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
            flash(f"Draft {created.reference} saved.")
            return redirect(url_for("ui.show_nomination", nomination_id=created.id))
        except InvalidInput as err:
            errors = err.fields
    return _form_page("nominations/form.html", raw=raw, cycles=cycles, nomination=None, errors=errors,
                      banner="Please correct the fields marked below; nothing was saved yet."), 422


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
            flash(f"Only a drafted nomination can be edited; this one is {nomination.state}.", "error")
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
                          banner="Please correct the fields marked below; nothing was saved yet."), 422
    try:
        updated = nominations.update(svc(), user, nomination_id, int(version) if version.isdigit() else -1, data)
    except StaleVersion:
        current = nominations.get(svc(), user, nomination_id)
        return _form_page("nominations/form.html", raw=raw, nomination=current, version=current.version,
                          banner=f"Someone changed this nomination while you were editing (it is now version "
                                 f"{current.version}). Nothing was saved; your input is kept below: check it "
                                 "against the current nomination and save again."), 409
    except InvalidInput as err:
        return _form_page("nominations/form.html", raw=raw, nomination=nomination, version=version,
                          errors=err.fields, banner=err.detail), 422
    except DomainError as err:  # no longer drafted, say: nothing saved, the input stays on the page
        return _form_page("nominations/form.html", raw=raw, nomination=nomination, version=version,
                          banner=f"{err.detail} Nothing was saved."), err.status
    flash("Draft saved." if updated.version != nomination.version else "Nothing changed.")
    return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))


@bp.get("/nominations/<int:nomination_id>")
@login_required()
def show_nomination(nomination_id):
    user = current_user()
    nomination = nominations.get(svc(), user, nomination_id, files=True)
    return render_template(
        "nominations/show.html", n=nomination, allowed=nominations.allowed_triggers(svc(), user, nomination),
        labels=LABELS, needs_comment=NEEDS_COMMENT, events=nominations.events(svc(), user, nomination_id),
        checks=nominations.checks(svc(), user, nomination_id), focus_areas=focus_areas(),
        files=nomination.files, kinds=attachments.KINDS,
        can_upload=user.role is Role.SUBMITTER and user.member_state == nomination.member_state
        and nomination.state == "drafted")


@bp.post("/nominations/<int:nomination_id>/fire")
@login_required()
def fire(nomination_id):
    user = current_user()
    trigger = request.form.get("trigger", "")
    if trigger == "review":
        return redirect(url_for("ui.review_form", nomination_id=nomination_id))
    version = request.form.get("version", "")
    try:
        nominations.fire(svc(), user, nomination_id, trigger, int(version) if version.isdigit() else -1,
                         comment=(request.form.get("comment") or "").strip()[:10_000] or None)
        flash(f"{LABELS.get(trigger, trigger)}: done.")
    except StaleVersion:
        flash("Someone changed this nomination meanwhile; nothing was done. Check it and try again.", "error")
    except DomainError as err:
        flash(err.detail, "error")
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
        version = request.form.get("version", "")
        if data is not None:
            try:
                nominations.fire(svc(), user, nomination_id, "review", int(version) if version.isdigit() else -1,
                                 comment=(request.form.get("comment") or "").strip()[:10_000] or None,
                                 assessment=data)
                flash("Review recorded.")
                return redirect(url_for("ui.show_nomination", nomination_id=nomination_id))
            except StaleVersion:
                nomination = nominations.get(svc(), user, nomination_id)
                banner, status = ("Someone changed this nomination meanwhile; nothing was saved. Your assessment "
                                  "is kept below: check the nomination and send it again."), 409
            except DomainError as err:
                banner, status = err.detail, err.status
        else:
            banner, status = "Please correct the fields marked below.", 422
    return render_template("nominations/review.html", n=nomination, raw=raw, errors=errors, banner=banner,
                           focus_areas=focus_areas()), status


@bp.post("/nominations/<int:nomination_id>/attachments")
@login_required(Role.SUBMITTER)
def upload(nomination_id):
    user = current_user()
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            raise InvalidInput("Choose a PDF file to upload.", {"file": ["Choose a PDF file to upload."]})
        version = request.form.get("version", "")
        attachments.add(svc(), user, nomination_id, request.form.get("kind", ""), upload_file.filename,
                        upload_file.read(), int(version) if version.isdigit() else None)
        flash(f"{upload_file.filename} attached.")
    except InvalidInput as err:
        flash(" ".join(m for msgs in err.fields.values() for m in msgs) or err.detail, "error")
    except DomainError as err:
        flash(err.detail, "error")
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
    filters = {"cycle": request.args.get("cycle") or None, "member_state": request.args.get("member_state") or None}
    oldest_first = request.args.get("sort", "oldest") != "newest"
    pages = {}
    for s in ([state] if state else ["submitted", "reviewed"]):
        # Both lists on one page show their first page each, and link to one list page by page.
        pages[s] = nominations.search(svc(), user, state=s, checks_done=True, oldest_first=oldest_first,
                                      page=_int_arg("page") if state else 1, per_page=DESK_PER_PAGE, **filters)
    return render_template("review/desk.html", pages=pages, filters=filters, state=state,
                           sort="oldest" if oldest_first else "newest", now=svc().clock(),
                           cycles=[c for c, _ in admin.cycles(svc())], member_states=admin.member_states(svc()))


@bp.get("/workflow")
def workflow_page():
    from scn_workflow.web.diagram import workflow_svg
    counts = {}
    if current_user():  # every state, so that an empty one shows its 0
        found = nominations.count_by_state(svc())
        counts = {state: found.get(state, 0) for state in workflow.STATES}
    return render_template("workflow.html", svg=workflow_svg(workflow.describe(), counts), counts=counts,
                           definition=workflow.describe())

