"""The HTML error page."""

from flask import render_template
from werkzeug.exceptions import HTTPException, InternalServerError, default_exceptions

from scn_workflow.domain.errors import DomainError
from scn_workflow.services.attachments import MAX_BYTES
from scn_workflow.web.labels import refusal


def error_page(err):
    """An HTTP error, or a refusal of the domain raised by a page, as the HTML error page."""
    if isinstance(err, DomainError):
        err = default_exceptions.get(err.status, InternalServerError)(refusal(err))
    if not isinstance(err, HTTPException):
        return None
    return render_template("error.html", error=err, upload_limit_mib=MAX_BYTES // (1024 * 1024)), err.code
