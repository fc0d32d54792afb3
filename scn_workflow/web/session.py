"""Signing in for the HTML side: session cookies, CSRF tokens on every form, rate-limited sign-in.

The signed cookie holds a random session id whose hash the database keeps (services/web_sessions.py):
signing out ends it on the server, so a copied cookie is refused wherever it is replayed.
"""

from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import Blueprint, abort, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from scn_workflow.current import svc
from scn_workflow.domain.model import Actor, Role
from scn_workflow.ratelimit import TooManySignIns, client_address, sign_in_limits
from scn_workflow.services import users, web_sessions
from scn_workflow.web.labels import role_label

bp = Blueprint("session", __name__)


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Every HTML form POST carries the session's CSRF token (the API uses bearer tokens instead)."""
    if request.method != "POST" or request.path.startswith("/api/"):
        return
    sent = request.form.get("csrf_token", "")
    # As bytes: compare_digest raises TypeError on str with non-ASCII characters (a forged token).
    if not sent or not hmac.compare_digest(sent.encode(), session.get("csrf", "").encode()):
        abort(400, _("The form expired or did not come from this site (missing CSRF token); reload the page "
                     "and try again."))


def current_user() -> Actor | None:
    """The signed-in user of a live session, re-read each request: a session ended on the server (sign-out,
    deactivation, a password or role change) signs its cookie out at once."""
    if "user" not in g:
        g.user = None
        session_id = session.get("sid")
        if isinstance(session_id, str) and session_id:
            g.user = web_sessions.resolve(svc(), session_id)
            if g.user is None:
                session.clear()
    return g.user


def login_required(*roles: Role):
    """View decorator: signed in (else to the sign-in page), and one of `roles` when given (else 403)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("session.login", next=request.full_path))
            if roles and user.role not in roles:
                abort(403, _("This page is for %(roles)s accounts.", roles=", ".join(role_label(r) for r in roles)))
            return view(*args, **kwargs)

        return wrapped

    return decorate


def safe_next(target: str | None, fallback: str = "ui.home") -> str:
    """A path on this site, or the `fallback` page: browsers read "/\\host" as "//host" and drop tabs
    and newlines."""
    if (target and target.startswith("/") and not target.startswith("//")
            and not any(c == "\\" or ord(c) < 0x20 for c in target)):
        return target
    return url_for(fallback)


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:80]
        limits, address = sign_in_limits(), client_address()
        try:
            limits.check(address, username)
        except TooManySignIns as refusal:
            wait = refusal.retry_after
            return render_template("login.html", username=username, error=(
                _("Too many failed sign-ins; try again in %(seconds)s seconds.", seconds=wait))), 429, {"Retry-After": str(wait)}
        actor = users.authenticate(svc(), username, request.form.get("password", ""))
        if actor is None:
            limits.failed(address, username)
            error = _("The username or password is wrong.")
        else:
            session.clear()
            session["sid"] = web_sessions.start(svc(), actor.username)
            csrf_token()
            flash(_("Signed in as %(username)s.", username=actor.username))
            if users.must_change_password(svc(), actor.username):
                # Read once here: a reset (the only way to a temporary password) ends every session,
                # so no session started before it lives on without this mark.
                session["must_change_password"] = True
                return redirect(url_for("account.password"))
            return redirect(safe_next(request.args.get("next")))
    return render_template("login.html", error=error, username=username), 200 if error is None else 401


# What a person holding a temporary password may still reach: the change itself, signing out, the
# language switcher, and what is no page (health, metrics, static files, the API with its own tokens).
UNTIL_CHANGED = {"account.password", "session.logout", "i18n.choose_language", "static", "health.healthz",
                 "health.readyz", "metrics.metrics"}


@bp.before_app_request
def require_new_password():
    """A temporary password is replaced before anything else: every other page leads to the change."""
    if not session.get("must_change_password") or request.path.startswith("/api/") \
            or request.endpoint in UNTIL_CHANGED:
        return None
    if current_user() is None:  # the session ended meanwhile: an ordinary visitor again
        session.pop("must_change_password", None)
        return None
    return redirect(url_for("account.password"))


@bp.post("/logout")
def logout():
    if isinstance(session.get("sid"), str):
        web_sessions.end(svc(), session["sid"])
    session.clear()
    flash(_("Signed out."))
    return redirect(url_for("pages.index"))
