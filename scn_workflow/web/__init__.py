"""The HTTP side: thin views that parse, call one use case, and render."""

import logging

from flask import request

from scn_workflow import logs
from scn_workflow.web import (account, admin_pages, errors, handover_pages, health, i18n, metrics, ops_pages, pages,
                              session, ui)

request_log = logging.getLogger("scn_workflow.http")


def install_pages(app, *, production: bool) -> None:
    """The HTML side: sign-in with secure session cookies, CSRF on every form, pages, error pages,
    request logs with a correlation id, /metrics."""
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=production, PERMANENT_SESSION_LIFETIME=8 * 3600)
    for blueprint in (health.bp, pages.bp, session.bp, ui.bp, admin_pages.bp, ops_pages.bp, handover_pages.bp,
                      account.bp):
        app.register_blueprint(blueprint)
    metrics.install(app)
    i18n.install(app)

    @app.before_request
    def _correlate():
        # The id follows the request into the events it records and the tasks they cause.
        logs.correlation_id.set(logs.clean(request.headers.get("X-Request-ID")) or logs.new_id())

    @app.teardown_request
    def _uncorrelate(_exc=None):
        # Threads are reused: the next request, or code outside one, must not inherit the id.
        logs.correlation_id.set(None)

    @app.after_request
    def _log_request(response):
        response.headers["X-Request-ID"] = logs.correlation_id.get() or ""
        if request.endpoint not in ("health.healthz", "metrics.metrics", "static"):
            request_log.info("%s %s %s", request.method, request.path, response.status_code,
                             extra={"method": request.method, "path": request.path, "status": response.status_code})
        return response
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

    app.extensions["scn_html_error"] = errors.error_page
