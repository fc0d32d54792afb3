"""The JSON API under /api/v1, described by OpenAPI (flask-smorest), on the same use cases as the forms."""

from __future__ import annotations

import logging
import os

import swagger_ui_bundle
from apispec import BasePlugin
from flask import Flask, request, send_from_directory
from flask_smorest import Api
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, UnsupportedMediaType

from scn_workflow.api.problems import ProblemSchema, from_domain, from_http, problem
from scn_workflow.domain.errors import DomainError

log = logging.getLogger(__name__)
JSON_LIMIT = 1024 * 1024  # bytes of a JSON body; attachments have their own limit
SWAGGER_ASSETS = os.path.join(os.path.dirname(swagger_ui_bundle.__file__), "vendor",
                              sorted(os.listdir(os.path.join(os.path.dirname(swagger_ui_bundle.__file__), "vendor")))[-1])


class ProblemApi(Api):
    """flask-smorest's Api, answering every HTTP error as application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return from_http(error)


class ProblemResponses(BasePlugin):
    """The error responses flask-smorest describes for every status code (the spec's response
    components) are documented as application/problem+json, as they are answered."""

    def response_helper(self, response, **kwargs):
        content = response.get("content", {})
        if "application/json" in content:
            response["content"] = {"application/problem+json": content["application/json"]}
        return response


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _guard_body():
    """415 for a body that is not JSON where JSON is expected; 413 for one over the limit."""
    if not _is_api() or request.method not in ("POST", "PUT", "PATCH"):
        return None
    if request.path.endswith("/attachments"):  # an upload: multipart, its size checked by the view
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType("Upload the file as multipart/form-data with fields file and kind.")
        return None
    if request.content_length and request.content_length > JSON_LIMIT:
        raise RequestEntityTooLarge(f"The body is larger than {JSON_LIMIT // 1024} KiB.")
    raw = request.get_data(cache=True)
    if not raw:
        return None  # the schema names each missing field
    if not request.is_json:
        raise UnsupportedMediaType(f"The body must be application/json, not {request.mimetype or 'unspecified'}.")
    if request.get_json(silent=True) is None:
        raise UnsupportedMediaType("The body is not valid JSON.")
    return None


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
