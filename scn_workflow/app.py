"""The Flask application factory."""

from __future__ import annotations

import functools
import os

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from scn_workflow import ratelimit
from scn_workflow.config import Settings
from scn_workflow.services import Services, outbox
from scn_workflow.workers import celery_init_app, publisher
from scn_workflow.workers.embedded import EmbeddedWorker


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings from the environment (or `test_config`), services, blueprints, commands."""
    overrides = dict(test_config or {})
    # instance_path is a Settings field; it is also where the Flask app keeps its instance folder.
    # SCN_INSTANCE_PATH moves it (the SQLite file and .eml mail live there by default).
    app = Flask(__name__, instance_path=overrides.pop("instance_path", None) or os.environ.get("SCN_INSTANCE_PATH"),
                instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    settings = overrides.pop("settings", None) or Settings.from_env(app.instance_path, **overrides)
    problems = settings.problems()
    if problems:
        raise RuntimeError("Refusing to start: " + " ".join(problems))
    app.config.update(SECRET_KEY=settings.secret_key, SCN_SETTINGS=settings,
                      MAX_CONTENT_LENGTH=10 * 1024 * 1024)
    svc = app.extensions["scn"] = Services(settings)
    if settings.trusted_proxies:
        # The client's address is the one the trusted proxies report in X-Forwarded-For, never one a
        # client wrote there itself (ProxyFix reads only the last `trusted_proxies` entries).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)
    ratelimit.init_app(app, settings)

    celery = celery_init_app(app)
    _wire_delivery(app, svc, celery)

    from scn_workflow.web import install_pages
    install_pages(app, production=settings.env == "production")
    from scn_workflow.api import init_api
    init_api(app)

    from scn_workflow.cli import register
    register(app)
    return app


def _wire_delivery(app: Flask, svc: Services, celery) -> None:
    """The one place that decides where messages go: Celery's broker, or the embedded worker."""
    if svc.settings.broker_url:
        svc.publish = publisher(celery)
        svc.after_commit = functools.partial(outbox.send_committed, svc)
        svc.publishes_after_commit = True
    else:
        worker = app.extensions["scn_embedded_worker"] = EmbeddedWorker(svc)
        svc.publish, svc.after_commit = worker.publish, worker.wake
        if svc.settings.embedded_autostart:
            app.before_request(worker.start)


def services(app: Flask) -> Services:
    return app.extensions["scn"]
