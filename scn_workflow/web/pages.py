"""Read-only pages: the public register of the cities accepted into the network, and each city's page."""

from flask import Blueprint, abort, render_template, request

from scn_workflow.current import svc
from scn_workflow.domain.errors import NotFound
from scn_workflow.domain.reference import focus_areas
from scn_workflow.domain.workflow import STATES
from scn_workflow.services import exports, nominations, register
from scn_workflow.web.ui import csv_download

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
    return render_template("index.html", result=result, q=q, states=STATES,
                           decided=register.decision_dates(svc(), [n.id for n in result.items]))


@bp.get("/cities/<int:nomination_id>")
def city(nomination_id):
    """An accepted city's public page: what it plans, no personal data."""
    try:
        found = register.city(svc(), nomination_id)
    except NotFound:
        abort(404)
    return render_template("city.html", city=found, focus_areas=focus_areas())


@bp.get("/register.csv")
def index_csv():
    """The public register with the same search, every matching row, as a CSV file (no personal data)."""
    q = (request.args.get("q") or "").strip()[:100] or None
    return csv_download(exports.nominations_csv(svc(), None, q=q), "accepted-cities")
