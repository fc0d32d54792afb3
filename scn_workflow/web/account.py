"""A person's own account: name, language, how mail arrives, and their password.

The password page is also where a person holding a temporary password (set by an admin) is sent
after signing in, and the only page they reach until they choose their own (web/session.py).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from marshmallow import ValidationError

from scn_workflow.current import svc
from scn_workflow.domain.errors import InvalidInput
from scn_workflow.ratelimit import TooManySignIns, client_address, sign_in_limits
from scn_workflow.schemas.users import UserPatch
from scn_workflow.services import users, web_sessions
from scn_workflow.web.i18n import browser_language
from scn_workflow.web.session import current_user, login_required

bp = Blueprint("account", __name__, url_prefix="/account")

MAIL_CHOICES = {"event": False, "digest": True}  # the form's value -> users.mail_digest


@bp.route("", methods=["GET", "POST"])
@login_required()
def profile():
    """Own name, language and mail choice."""
    me = users.get_user(svc(), current_user().username)
    raw = {"name": me.name or "", "language": me.language or "", "mail": "digest" if me.mail_digest else "event"}
    errors, status = {}, 200
    if request.method == "POST":
        raw = {k: request.form.get(k, "").strip() for k in ("name", "language", "mail")}
        try:
            data = UserPatch(only=("name", "language")).load({"name": raw["name"] or None,
                                                              "language": raw["language"] or None})
        except ValidationError as err:
            data, errors = None, dict(err.messages)
        if raw["mail"] not in MAIL_CHOICES:
            errors["mail"] = [_("Choose a mail per event or a daily digest.")]
        if not errors:
            try:
                users.update_profile(svc(), me.username, name=data["name"], language=data["language"],
                                     mail_digest=MAIL_CHOICES[raw["mail"]])
            except InvalidInput as err:
                errors = err.fields
        if not errors:
            if data["language"]:
                session["lang"] = data["language"]  # the switcher's memory agrees after signing out
            else:
                session.pop("lang", None)  # the browser's language, signed in or out
            with force_locale(data["language"] or browser_language()):  # said in the next page's language
                flash(_("Your profile was saved."))
            return redirect(url_for("account.profile"))
        status = 422
    return render_template("account/profile.html", me=me, raw=raw, errors=errors), status


@bp.route("/password", methods=["GET", "POST"])
@login_required()
def password():
    """Change one's own password (the current one is asked again); a temporary one must be changed here."""
    username = current_user().username
    forced = bool(session.get("must_change_password"))
    errors, status = {}, 200
    if request.method == "POST":
        limits, address = sign_in_limits(), client_address()
        try:  # the current password is guessed here no faster than at the sign-in form
            limits.check(address, username)
        except TooManySignIns as refusal:
            errors = {"current_password": [_("Too many failed sign-ins; try again in %(seconds)s seconds.",
                                             seconds=refusal.retry_after)]}
            return (render_template("account/password.html", forced=forced, errors=errors), 429,
                    {"Retry-After": str(refusal.retry_after)})
        new, again = request.form.get("password", ""), request.form.get("password_again", "")
        if new != again:
            errors["password_again"] = [_("The two new passwords differ.")]
        else:
            try:
                users.change_own_password(svc(), username, request.form.get("current_password", ""), new)
            except InvalidInput as err:
                errors = err.fields
                if "current_password" in errors:
                    limits.failed(address, username)
        if not errors:
            # The change ended every session of this person, this one too: this browser goes on in a new one.
            session["sid"] = web_sessions.start(svc(), username)
            session.pop("must_change_password", None)
            flash(_("Your password was changed; your other sessions have ended."))
            return redirect(url_for("ui.home") if forced else url_for("account.profile"))
        status = 422
    return render_template("account/password.html", forced=forced, errors=errors), status
