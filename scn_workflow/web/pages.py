"""Read-only pages: the public register of nominations."""

from flask import Blueprint, render_template, request

from scn_workflow.current import svc
from scn_workflow.domain.workflow import STATES
from scn_workflow.services import nominations

bp = Blueprint("pages", __name__)


@bp.get("/")
def index():
    """Accepted and handed-over nominations (what anyone may see), searchable."""
    q = (request.args.get("q") or "").strip()[:100]
    try:
        page = max(1, min(int(request.args.get("page", 1)), 10_000))
    except ValueError:
        page = 1
    result = nominations.search(svc(), None, q=q or None, page=page, per_page=50)
    return render_template("index.html", result=result, q=q, states=STATES)
