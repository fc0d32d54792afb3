"""The services of the app that runs the current request or command.

The factory (app.py) puts them in `app.extensions["scn"]`; views and commands read them back
here. This lives beside the factory rather than in it: app.py imports web, api and cli to wire
them, so they cannot import app.py without a cycle. It imports only Flask and the services.
"""

from flask import current_app

from scn_workflow.services import Services


def svc() -> Services:
    """The Services of the current app (inside a request, an app context or a command)."""
    return current_app.extensions["scn"]
