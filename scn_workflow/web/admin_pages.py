"""Admin pages: users and roles, cycles and their limits, per-state overrides, lead agencies."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from scn_workflow.current import svc
from scn_workflow.domain.errors import DomainError, Forbidden, InvalidInput
from scn_workflow.domain.model import Role
from scn_workflow.schemas.api import CycleCreate, MemberStatePatch, OverrideRequest
from scn_workflow.schemas.users import UserCreate, UserPatch
from scn_workflow.schemas.text import form_number
from scn_workflow.services import admin, users
from scn_workflow.web.errors import error_page
from scn_workflow.web.labels import field_problems, member_state_name, refusal, role_label
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
        raw["must_change_password"] = request.form.get("must_change_password") == "on"
        data, errors = _load(UserCreate(), {**{k: v for k, v in raw.items() if k != "must_change_password"},
                                            "member_state": raw["member_state"] or None,
                                            "name": raw["name"] or None, "language": raw["language"] or None})
        if data is not None:
            try:
                user = users.create_user(svc(), **data, must_change_password=raw["must_change_password"])
                flash(_("User %(username)s (%(role)s) created.", username=user.username, role=role_label(user.role)))
                return redirect(url_for("admin_pages.user_list"))
            except InvalidInput as err:
                errors = err.fields
            except DomainError as err:
                errors = {"username": [err.detail]}
        status = 422
    return render_template("admin/users.html", users=users.list_users(svc()), raw=raw or {"must_change_password": True},
                           errors=errors, member_states=admin.member_states(svc()), roles=users.ROLES), status


EDITABLE = ("role", "member_state", "name", "email", "language")


def _edit_page(username: str, raw: dict | None = None, errors: dict | None = None, status: int = 200):
    user = users.get_user(svc(), username)  # NotFound: the blueprint's error page (404)
    raw = raw if raw is not None else {k: getattr(user, k) or "" for k in EDITABLE}
    return render_template("admin/user_edit.html", user=user, raw=raw, errors=errors or {},
                           member_states=admin.member_states(svc()), roles=users.ROLES), status


@bp.route("/users/<username>", methods=["GET", "POST"])
@login_required(Role.ADMIN)
def user_edit(username):
    """Change a user's role, member state, name, email and language, by the API's rules (services.users)."""
    if request.method == "GET":
        return _edit_page(username)
    raw = {k: request.form.get(k, "").strip() for k in EDITABLE}
    data, errors = _load(UserPatch(only=EDITABLE), {**raw, "member_state": raw["member_state"] or None,
                                                    "name": raw["name"] or None, "language": raw["language"] or None})
    if data is not None:
        try:
            users.update_user(svc(), current_user(), username, data)
            flash(_("User %(username)s saved.", username=username))
            return redirect(url_for("admin_pages.user_edit", username=username))
        except InvalidInput as err:
            errors = err.fields
        except Forbidden as err:  # an admin's own role: said next to it
            errors = {"role": [err.detail]}
    return _edit_page(username, raw, errors, 422)


@bp.post("/users/<username>/password")
@login_required(Role.ADMIN)
def reset_password(username):
    """Give a user a temporary password (typed by the admin, or made here and shown once): their sessions
    and tokens end, and they must choose their own at the next sign-in."""
    typed = request.form.get("password", "")
    temporary = typed or users.temporary_password()
    try:
        users.update_user(svc(), current_user(), username, {"password": temporary})
    except InvalidInput as err:
        return _edit_page(username, None, {"password": err.fields.get("password", [err.detail])}, 422)
    except Forbidden as err:
        abort(403, refusal(err))
    if typed:
        flash(_("User %(username)s has a temporary password now; they must change it at the next sign-in.",
                username=username))
        return redirect(url_for("admin_pages.user_edit", username=username))
    # Shown this once, never stored in clear nor in a URL; the page is not to be cached.
    page = render_template("admin/password_reset.html", username=username, temporary=temporary)
    return page, 200, {"Cache-Control": "no-store"}


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
        flash(_("Override not saved: %(problems)s", problems=field_problems(errors)), "error")
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
