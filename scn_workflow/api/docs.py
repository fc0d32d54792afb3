"""Documenting the errors an endpoint may answer, once, for the OpenAPI description."""

from scn_workflow.api.problems import ProblemSchema

WHY = {
    400: "Bad request", 401: "No valid bearer token", 403: "The caller may not do this (the rule is named)",
    404: "Not found, or not visible to the caller", 409: "Conflict: not allowed from the current state",
    412: "If-Match names a version that is no longer current", 413: "The body is too large",
    415: "The body is not JSON (or not multipart for uploads)", 422: "Invalid input, or a rule refused (named)",
    428: "If-Match is required", 429: "Too many attempts",
}


def errors(blp, *codes):
    """Decorator: document problem+json answers for each status code."""

    def decorate(view):
        for code in sorted(set(codes), reverse=True):
            view = blp.alt_response(code, schema=ProblemSchema, description=WHY[code],
                                    content_type="application/problem+json")(view)
        return view

    return decorate
