"""Languages: English and Bahasa Indonesia, with Flask-Babel.

Pages speak the signed-in user's own language when they chose one (users.language; NULL follows
the browser); otherwise the language chosen with the switcher (kept in the session), else the best
match of the browser's Accept-Language, else English. The API follows Accept-Language only (problem titles and details). The catalogue is
scn_workflow/translations/id/LC_MESSAGES/messages.po, compiled by the build (`make`), never committed
as a binary.
"""

from __future__ import annotations

from flask import Blueprint, redirect, request, session
from flask_babel import Babel, get_locale

from scn_workflow.current import svc
from scn_workflow.services import users
from scn_workflow.web import labels
from scn_workflow.web.session import current_user, safe_next

LANGUAGES = {"en": "English", "id": "Bahasa Indonesia"}
DEFAULT = "en"

bp = Blueprint("i18n", __name__)


def select_locale() -> str:
    if not request.path.startswith("/api/"):
        user = current_user()
        if user is not None and user.language in LANGUAGES:
            return user.language
        if session.get("lang") in LANGUAGES:
            return session["lang"]
    return browser_language()


def browser_language() -> str:
    """The best match of the browser's Accept-Language, else English."""
    return request.accept_languages.best_match(LANGUAGES, DEFAULT)


def current_language() -> str:
    return str(get_locale() or DEFAULT)


@bp.post("/language")
def choose_language():
    """The switcher: remember the choice and go back to the page it was made on."""
    chosen = request.form.get("lang", "")
    if chosen in LANGUAGES:
        session["lang"] = chosen
        user = current_user()
        if user is not None:
            users.set_language(svc(), user.username, chosen)
    return redirect(safe_next(request.form.get("next"), "pages.index"), 303)


def install(app) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories="translations")
    app.register_blueprint(bp)
    app.jinja_env.globals.update(LANGUAGES=LANGUAGES, current_language=current_language)
    labels.install(app)  # the words for codes, as Jinja filters
