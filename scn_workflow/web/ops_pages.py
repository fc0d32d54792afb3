"""The operator dashboard: refreshes itself; queues, workers, task outcomes, failures, outbox, waiting."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from markupsafe import escape

from scn_workflow.current import svc
from scn_workflow.domain.errors import DomainError
from scn_workflow.domain.model import Role
from scn_workflow.services import failures, ops
from scn_workflow.web.labels import refusal
from scn_workflow.web.session import current_user, login_required

bp = Blueprint("ops_pages", __name__, url_prefix="/ops")
REFRESH_S = 15


def sparkline(values: list, width: int = 360, height: int = 60, label: str = "") -> str:
    """A small SVG line chart of `values` (None = no sample), drawn here: no asset from elsewhere."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    top = max([v for _, v in points] + [1])
    step = width / max(1, len(values) - 1)
    path = " ".join(f"{'M' if n == 0 else 'L'}{i * step:.1f},{height - 4 - (v / top) * (height - 8):.1f}"
                    for n, (i, v) in enumerate(points))
    return (f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(_("%(chart)s: the last hour, highest %(top)s", chart=label, top=top))}"><rect width="{width}" height="{height}" '
            f'fill="#f7f9fb" stroke="#ccd"/><path d="{path}" fill="none" stroke="#12355b" stroke-width="2"/>'
            f'<text x="4" y="12" font-size="10">{top}</text></svg>')


@bp.get("")
@login_required(Role.OPERATOR, Role.ADMIN)
def dashboard():
    result = ops.status(svc(), current_app.extensions["celery"])
    buckets = ops.throughput(svc())
    return render_template(
        "ops/dashboard.html", status=result, report=result.report, outcomes=ops.task_outcomes(svc()),
        failures=failures.list_failures(svc(), "open"), refresh=REFRESH_S,
        depth_chart=sparkline([b["depth"] for b in buckets], label=_("Queue depth")),
        throughput_chart=sparkline([b["tasks"] for b in buckets], label=_("Tasks per minute")),
        settings=svc().settings)


@bp.post("/failures/<int:failure_id>/<action>")
@login_required(Role.OPERATOR, Role.ADMIN)
def act_on_failure(failure_id, action):
    try:
        if action == "retry":
            failures.retry(svc(), failure_id, current_user())
            flash(_("Failure %(id)s retried.", id=failure_id))
        elif action == "discard":
            failures.discard(svc(), failure_id, current_user())
            flash(_("Failure %(id)s discarded.", id=failure_id))
        else:
            flash(_("Unknown action %(action)s.", action=repr(action)), "error")
    except DomainError as err:
        flash(refusal(err), "error")
    return redirect(url_for("ops_pages.dashboard"))
