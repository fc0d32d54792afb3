"""Operators over HTTP: queues, workers and outbox; failures to retry or discard; the verdict."""

from flask import current_app
from flask_smorest import Blueprint
from werkzeug.exceptions import Forbidden

from scn_workflow.api.auth import current_actor
from scn_workflow.api.docs import errors
from scn_workflow.current import svc
from scn_workflow.domain.model import Actor, Role
from scn_workflow.jsonable import jsonable
from scn_workflow.schemas.api import FailureList, FailureOut, QueuesReport, StatusOut
from scn_workflow.services import failures, ops, outbox

blp = Blueprint("ops", __name__, url_prefix="/api/v1/ops", description="Operations (operators and admins)")
SECURITY = [{"bearer": []}]


def operator() -> Actor:
    actor = current_actor()
    if actor.role not in (Role.OPERATOR, Role.ADMIN):
        raise Forbidden("Only operators and admins may see and act on operations.")
    return actor


@blp.get("/queues")
@blp.response(200, QueuesReport)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403)
def get_queues():
    """Each queue's depth and oldest message age (from the broker), the workers, the outbox backlog."""
    operator()
    report = ops.queues(svc())
    report["workers"] = ops.workers(svc(), current_app.extensions["celery"] if report["reachable"] else None)
    report["outbox"] = outbox.backlog(svc())
    return report


@blp.get("/failures")
@blp.response(200, FailureList)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403)
def get_failures():
    """Work that exhausted its retries, waiting for an operator."""
    operator()
    return {"items": failures.list_failures(svc(), "open")}


@blp.post("/failures/<int:failure_id>/retry")
@blp.response(200, FailureOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 404, 409)
def retry_failure(failure_id):
    """Publish the failed work again; recorded with the operator's name."""
    return failures.retry(svc(), failure_id, operator())


@blp.post("/failures/<int:failure_id>/discard")
@blp.response(200, FailureOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403, 404, 409)
def discard_failure(failure_id):
    """Give up on the failed work, on record with the operator's name."""
    return failures.discard(svc(), failure_id, operator())


@blp.get("/status")
@blp.response(200, StatusOut)
@blp.doc(security=SECURITY)
@errors(blp, 401, 403)
def get_status():
    """Everything at a glance and the list of what is wrong (what `scn-workflow ops status` prints)."""
    operator()
    result = ops.status(svc(), current_app.extensions["celery"])
    return {"ok": result.ok, "problems": result.problems, "report": jsonable(result.report)}

