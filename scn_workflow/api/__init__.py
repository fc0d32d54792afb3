"""The JSON API under /api/v1, described by OpenAPI (flask-smorest), on the same use cases as the forms."""

from __future__ import annotations

import json
import logging
import os

import swagger_ui_bundle
from apispec import BasePlugin
from flask import Flask, request, send_from_directory
from flask_smorest import Api
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, RequestEntityTooLarge, UnsupportedMediaType

from scn_workflow.api.problems import ProblemSchema, from_domain, from_http, problem
from scn_workflow.domain.errors import DomainError, InvalidInput
from scn_workflow.schemas.text import INT32_MAX, json_depth_over, text_problem

log = logging.getLogger(__name__)
JSON_LIMIT = 1024 * 1024  # bytes of a JSON body; attachments have their own limit
# Deeper JSON than any of our schemas takes (a nomination's projects are 3 levels): refused before
# anything walks it, so no recursion can run out of stack.
JSON_DEPTH = 32
SWAGGER_ASSETS = os.path.join(os.path.dirname(swagger_ui_bundle.__file__), "vendor",
                              sorted(os.listdir(os.path.join(os.path.dirname(swagger_ui_bundle.__file__), "vendor")))[-1])


class ProblemApi(Api):
    """flask-smorest's Api, answering every HTTP error as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return from_http(error)


# The one answer the service cannot shape: a request line (method, path and query string) longer than the
# HTTP server accepts (gunicorn's limit_request_line, 4,094 bytes by default) is refused by the server,
# with its own page, before the service sees the request.
URI_TOO_LONG = {"description": "The URL is longer than the HTTP server accepts (answered by the server)",
                "content": {"text/html": {"schema": {"type": "string"}}}}


class ProblemResponses(BasePlugin):
    """The error responses flask-smorest describes for every status code (the spec's response
    components) are documented as application/problem+json, as they are answered; every operation
    also documents the HTTP server's 414."""

    def response_helper(self, response, **kwargs):
        content = response.get("content", {})
        if "application/json" in content:
            response["content"] = {"application/problem+json": content["application/json"]}
        return response

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            operation.setdefault("responses", {}).setdefault("414", URI_TOO_LONG)


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _guard_body():
    """415 for a body that is not JSON where JSON is expected; 413 for one over the limit (the bytes
    read count, chunked or not); 422 for JSON nested deeper than JSON_DEPTH."""
    if not _is_api() or request.method not in ("POST", "PUT", "PATCH"):
        return None
    if request.path.endswith("/attachments"):  # an upload: multipart, its size checked by the view
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Upload the file as multipart/form-data with fields file and kind.")
        return None
    # Werkzeug refuses a Content-Length over the limit, and stops reading a stream at it (a chunked
    # body has none; gunicorn marks its stream as terminated). It stops quietly, so it is given one
    # byte more than we take: a body that filled it is too large.
    request.max_content_length = JSON_LIMIT + 1
    too_large = RequestEntityTooLarge(f"The body is larger than {JSON_LIMIT // 1024} KiB.")
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:  # by its Content-Length
        raise too_large from None
    if len(raw) > JSON_LIMIT:
        raise too_large
    if not raw:
        return None  # the schema names each missing field
    if not request.is_json:
        raise UnsupportedMediaType(f"The body must be application/json, not {request.mimetype or 'unspecified'}.")
    try:
        parsed = json.loads(raw.decode("utf-8"))  # RFC 8259: UTF-8 (bytes of a lone surrogate are not)
    except RecursionError:  # the parser gave up on the nesting before we could count it
        raise _too_deep() from None
    except ValueError:
        raise UnsupportedMediaType("The body is not valid JSON.") from None
    if json_depth_over(parsed, JSON_DEPTH):
        raise _too_deep()
    return None


def _too_deep() -> InvalidInput:
    return InvalidInput(f"The JSON body is nested more than {JSON_DEPTH} levels deep.",
                       {"_schema": [f"Must not nest lists and objects more than {JSON_DEPTH} levels deep."]})


def _guard_strings():
    """Query strings (of every page) and url-encoded forms: a NUL byte is refused before anything
    reaches the database (PostgreSQL refuses it in any text). Each field's own rules (length, one
    line, digits) are its schema's; this is the rule every field shares."""
    sources = [("query", request.args)]
    if request.mimetype == "application/x-www-form-urlencoded":
        sources.append(("form", request.form))
    for where, values in sources:
        for name, value in values.items(multi=True):
            if "\x00" in name or "\x00" in value:
                if _is_api():
                    raise InvalidInput(f"The {where} parameter {name!r} contains a NUL character.",
                                       {name: [text_problem(value) or text_problem(name)]})
                raise BadRequest(f"The field {name!r} contains a NUL character, which no field may hold.")
    return None


def _ids_within_columns(endpoint, values):
    """An id in a path (`<int:...>`, on every page and operation) beyond the Integer columns names
    nothing: 404 like any unknown id, before the database would refuse to compare it."""
    if values and any(isinstance(v, int) and v > INT32_MAX for v in values.values()):
        raise NotFound("No such item: the id is larger than any id this service gives.")


def init_api(app: Flask) -> ProblemApi:
    app.config.update(
        API_TITLE="scn-workflow", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api", OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs", OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        # no online validator badge: it would load from validator.swagger.io, telling it the spec's URL
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        API_SPEC_OPTIONS={
            "info": {"description": "The nomination workflow of the ASEAN Smart Cities Network. Every error is "
                                    "application/problem+json."},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        },
    )
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [ProblemResponses()]})
    from scn_workflow.api import admin, nominations, ops, reference, tokens
    for module in (tokens, reference, nominations, admin, ops):
        api.register_blueprint(module.blp)

    @app.get("/api/docs/assets/<path:filename>")
    def swagger_assets(filename):
        return send_from_directory(SWAGGER_ASSETS, filename)

    app.before_request(_guard_body)
    app.url_value_preprocessor(_ids_within_columns)
    # First of all: the sign-in's rate limit and the CSRF check read the form as well.
    app.before_request_funcs.setdefault(None, []).insert(0, _guard_strings)

    @app.errorhandler(DomainError)
    def domain_error(err):
        return from_domain(err)

    @app.errorhandler(HTTPException)
    def http_error(err):
        if _is_api():
            return from_http(err)
        if err.code and err.code >= 400 and "scn_html_error" in app.extensions:
            return app.extensions["scn_html_error"](err)
        return err

    @app.errorhandler(Exception)
    def unexpected(err):
        log.exception("unhandled error on %s %s", request.method, request.path)
        if _is_api():
            return problem(500, "Internal Server Error", "Something went wrong on our side; it was logged.")
        return "Internal Server Error", 500

    return api
