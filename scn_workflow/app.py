"""The Flask application factory."""

from __future__ import annotations

import os

from flask import Flask

from scn_workflow.config import Settings
from scn_workflow.services import Services


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings from the environment (or `test_config`), services, blueprints, commands."""
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    overrides = dict(test_config or {})
    settings = overrides.pop("settings", None) or Settings.from_env(app.instance_path, **overrides)
    problems = settings.problems()
    if problems:
        raise RuntimeError("Refusing to start: " + " ".join(problems))
    app.config.update(SECRET_KEY=settings.secret_key, SCN_SETTINGS=settings,
                      MAX_CONTENT_LENGTH=10 * 1024 * 1024)
    app.extensions["scn"] = Services(settings)

    from scn_workflow.web import health, pages
    app.register_blueprint(health.bp)
    app.register_blueprint(pages.bp)

    from scn_workflow.cli import register
    register(app)
    return app


def services(app: Flask) -> Services:
    return app.extensions["scn"]
