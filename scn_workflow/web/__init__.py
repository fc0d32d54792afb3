"""The HTTP side: thin views that parse, call one use case, and render."""

from flask import current_app

from scn_workflow.services import Services


def svc() -> Services:
    return current_app.extensions["scn"]
