"""The lead agency's pages, reached by the signed links of a handover (no account): the two PDFs, and
the acknowledgement of receipt. Acknowledging takes a POST from the page's button, so a mail scanner
that fetches every link in a mail acknowledges nothing."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template

from scn_workflow.current import svc
from scn_workflow.services import acknowledgements
from scn_workflow.services.acknowledgements import LinkExpired, LinkRefused

bp = Blueprint("handover_pages", __name__, url_prefix="/handover")


@bp.after_request
def keep_the_link_private(response):
    """The token in the address is the key: no Referer carries it elsewhere, no search engine keeps it."""
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _open(token: str):
    """The handover and its summary, or the page that says why the link does not work (403, 410, 404)."""
    try:
        handover = acknowledgements.read_token(svc(), token)
        return handover, acknowledgements.summary(svc(), handover)
    except LinkRefused:
        abort(Response(render_template("handover/link_error.html", reason="refused"), 403))
    except LinkExpired as exc:
        abort(Response(render_template("handover/link_error.html", reason="expired",
                                       expired=exc.args[0] if exc.args else ""), 410))
    except LookupError:
        abort(404)


def _pdf(content: bytes, filename: str) -> Response:
    response = Response(content, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/<token>/dossier.pdf")
def dossier_pdf(token):
    handover, about = _open(token)
    from scn_workflow.services import dossier  # fpdf2 is loaded only where a dossier is drawn (handover.py says why)
    return _pdf(dossier.build(svc(), handover.nomination_id, about.language), f"{about.reference}-dossier.pdf")


@bp.get("/<token>/action-plan.pdf")
def action_plan_pdf(token):
    handover, about = _open(token)
    plan = acknowledgements.action_plan(svc(), handover.nomination_id)
    if plan is None:
        abort(404, "No action plan is attached to this nomination.")
    return _pdf(plan[1], f"{about.reference}-action-plan.pdf")


@bp.get("/<token>/acknowledge")
def acknowledge_page(token):
    _handover, about = _open(token)
    return render_template("handover/acknowledge.html", about=about, token=token, recorded=None)


@bp.post("/<token>/acknowledge")
def acknowledge(token):
    handover, about = _open(token)
    recorded = acknowledgements.acknowledge(svc(), handover.nomination_id, handover.event_id,
                                            acknowledgements.VIA_LINK)
    about = acknowledgements.summary(svc(), handover)
    return render_template("handover/acknowledge.html", about=about, token=token, recorded=recorded)
