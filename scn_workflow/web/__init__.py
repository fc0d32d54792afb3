"""The HTTP side: thin views that parse, call one use case, and render."""

from flask import current_app

from scn_workflow.services import Services


def svc() -> Services:
    return current_app.extensions["scn"]


def install_pages(app, *, production: bool) -> None:
    """The HTML side: sign-in with secure session cookies, CSRF on every form, pages, error pages."""
    from flask import render_template, request
    from werkzeug.exceptions import HTTPException

    from scn_workflow.web import admin_pages, health, pages, session, ui

    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=production, PERMANENT_SESSION_LIFETIME=8 * 3600)
    for blueprint in (health.bp, pages.bp, session.bp, ui.bp, admin_pages.bp):
        app.register_blueprint(blueprint)
    app.before_request(session.check_csrf)
    app.jinja_env.globals.update(csrf_token=session.csrf_token, current_user=session.current_user)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if not request.path.startswith("/api/docs"):
            response.headers.setdefault("Content-Security-Policy",
                                        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                        "frame-ancestors 'none'")
        return response

    app.extensions["scn_html_error"] = lambda err: (
        render_template("error.html", error=err), err.code) if isinstance(err, HTTPException) else None
