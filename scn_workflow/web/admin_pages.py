"""Admin pages: users and roles, cycles and their limits, per-state overrides, lead agencies."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from scn_workflow.current import svc
from scn_workflow.domain.errors import DomainError, InvalidInput
from scn_workflow.domain.model import Role
from scn_workflow.schemas.api import CycleCreate, MemberStatePatch, OverrideRequest
from scn_workflow.schemas.users import UserCreate
from scn_workflow.schemas.text import form_number
from scn_workflow.services import admin, users
from scn_workflow.web.errors import error_page
from scn_workflow.web.labels import field_label, member_state_name, refusal, role_label, say
from scn_workflow.web.session import current_user, login_required

bp = Blueprint("admin_pages", __name__, url_prefix="/admin")
# A refusal a page does not handle itself is an HTML error page here (the API answers problem+json).
bp.register_error_handler(DomainError, error_page)


def _load(schema, data):
    try:
        return schema.load(data), {}
    except ValidationError as err:
        return None, err.messages


@bp.route("/users", methods=["GET", "POST"])
@login_required(Role.ADMIN)
def user_list():
    raw, errors, status = {}, {}, 200
    if request.method == "POST":
        raw = {k: request.form.get(k, "").strip() for k in ("username", "password", "email", "role", "member_state",
                                                            "name", "language")}
        data, errors = _load(UserCreate(), {**raw, "member_state": raw["member_state"] or None,
                                            "name": raw["name"] or None, "language": raw["language"] or "en"})
        if data is not None:
            try:
                user = users.create_user(svc(), **data)
                flash(_("User %(username)s (%(role)s) created.", username=user.username, role=role_label(user.role)))
                return redirect(url_for("admin_pages.user_list"))
            except InvalidInput as err:
                errors = err.fields
            except DomainError as err:
                errors = {"username": [err.detail]}
        status = 422
    return render_template("admin/users.html", users=users.list_users(svc()), raw=raw, errors=errors,
                           member_states=admin.member_states(svc()), roles=["submitter", "reviewer", "operator",
                                                                            "admin"]), status


@bp.post("/users/<username>/active")
@login_required(Role.ADMIN)
def set_active(username):
    """Deactivate (ends the user's sessions and revokes their tokens at once) or reactivate a user."""
    active = request.form.get("active") == "1"
    try:
        users.update_user(svc(), current_user(), username, {"active": active})
        flash(_("User %(username)s reactivated.", username=username) if active else
              _("User %(username)s deactivated; their sessions and tokens have ended.", username=username))
    except DomainError as err:
        flash(refusal(err), "error")
    return redirect(url_for("admin_pages.user_list"))


def _date(value: str):
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc).isoformat()
    except ValueError:
        return value


@bp.route("/cycles", methods=["GET", "POST"])
@login_required(Role.ADMIN)
def cycle_list():
    raw, errors, status = {}, {}, 200
    if request.method == "POST":
        raw = {k: request.form.get(k, "").strip() for k in ("code", "name", "opens_at", "closes_at", "limit_per_state")}
        raw["requires_action_plan"] = request.form.get("requires_action_plan") == "on"
        limit = raw["limit_per_state"]
        data, errors = _load(CycleCreate(), {**raw, "opens_at": _date(raw["opens_at"]),
                                             "closes_at": _date(raw["closes_at"]),
                                             "limit_per_state": form_number(limit)})
        if data is not None:
            try:
                admin.create_cycle(svc(), current_user(), data)
                flash(_("Cycle %(cycle)s created.", cycle=data["code"]))
                return redirect(url_for("admin_pages.cycle_list"))
            except InvalidInput as err:
                errors = err.fields
            except DomainError as err:
                errors = {"code": [err.detail]}
        status = 422
    return render_template("admin/cycles.html", cycles=admin.cycles(svc()), raw=raw, errors=errors,
                           member_states=admin.member_states(svc())), status


@bp.post("/cycles/<code>/overrides")
@login_required(Role.ADMIN)
def set_override(code):
    limit = request.form.get("limit", "").strip()
    data, errors = _load(OverrideRequest(), {"limit": form_number(limit),
                                             "reason": request.form.get("reason", "").strip()})
    if data is None:
        flash(_("Override not saved: %(problems)s", problems="; ".join(
            f"{field_label(k)}: {' '.join(say(m) for m in v)}" for k, v in errors.items())), "error")
    else:
        try:
            admin.set_override(svc(), current_user(), code, request.form.get("member_state", ""), data["limit"],
                               data["reason"])
            flash(_("Limit of %(member_state)s in %(cycle)s set to %(limit)s.",
                    member_state=member_state_name(request.form.get("member_state")), cycle=code, limit=data["limit"]))
        except DomainError as err:
            flash(refusal(err), "error")
    return redirect(url_for("admin_pages.cycle_list"))


@bp.route("/member-states", methods=["GET", "POST"])
@login_required(Role.ADMIN)
def member_state_list():
    errors, status = {}, 200
    if request.method == "POST":
        code = request.form.get("code", "")
        raw = {k: request.form.get(k, "").strip() or None for k in ("lead_agency_name", "lead_agency_email",
                                                                     "lead_agency_webhook_url")}
        secret = request.form.get("lead_agency_webhook_secret", "").strip()
        if secret:
            raw["lead_agency_webhook_secret"] = secret
        data, field_errors = _load(MemberStatePatch(), raw)
        status = 422
        if data is not None:
            try:
                admin.update_member_state(svc(), current_user(), code, data)
                flash(_("Lead agency of %(member_state)s saved.", member_state=member_state_name(code)))
                return redirect(url_for("admin_pages.member_state_list"))
            except InvalidInput as err:  # the webhook URL rule: shown next to its field
                field_errors = err.fields
            except DomainError as err:  # an unknown code has no form of its own to show it next to
                flash(refusal(err), "error")
                status = err.status
        errors = {code: field_errors}
    return render_template("admin/member_states.html", member_states=admin.member_states(svc()), errors=errors), status
