"""Who may call what: the API's authorization matrix, kept as data, and the tests that enforce it.

DESIGN.md, Roles: a submitter sees and changes only its own member state's nominations;
reviewers see every nomination that has been submitted (a never-submitted draft is not found
for them); operators see queues and failures, and read submitted nominations (a draft is not
found for them either); a reviewer of the nomination's own member state may not review, accept or
reject it (403); admins manage users, cycles, lead agencies, limit overrides and webhooks.
Anonymous callers reach only the public endpoints.

The nominations the rows act on belong to Indonesia (ID). "own" / "other" is the actor's member
state relative to the nomination's: submitter own = sub-id, other = sub-th; reviewer other =
rev-sg, own = rev-id. A 404 means "not visible to you" (it does not reveal the nomination); a
403 means "visible, but not yours to do"; a 422 means the actor may act but a rule refuses
(hand_over before the package was delivered: the operator is permitted).
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.services import failures, users
from tests.api_support import API, PDF, assert_problem, multipart, open_api
from tests.conftest import ASSESSMENT, Clock, complete_draft

PROBE_PASSWORD = "token-probe-passphrase"  # a user made through the service: 12+ characters, not common
ACTORS = {  # (role, member-state relation) -> username
    ("anonymous", "-"): None,
    ("submitter", "own"): "sub-id",
    ("submitter", "other"): "sub-th",
    ("reviewer", "other"): "rev-sg",
    ("reviewer", "own"): "rev-id",
    ("operator", "-"): "ops",
    ("admin", "-"): "root",
}

# One row per request: method, endpoint (a [variant] names the body sent), then the status each
# actor gets, in the order of ACTORS. Placeholders: {draft} a drafted, never-submitted nomination;
# {submitted} a submitted one whose checks finished; {reviewed} reviewed by rev-ph; {accepted};
# {draft_file} / {submitted_file} an attachment of each; {failure} an open failure.
#                                                                anon  sub   sub    rev    rev  oper  admin
#                                                                      own   other  other  own
TABLE = [
    ("POST", "/api/v1/tokens",                                     201,  201,  201,   201,   201,  201,  201),
    ("GET", "/api/v1/member-states",                               200,  200,  200,   200,   200,  200,  200),
    ("GET", "/api/v1/cycles",                                      200,  200,  200,   200,   200,  200,  200),
    ("GET", "/api/v1/workflow",                                    200,  200,  200,   200,   200,  200,  200),
    ("GET", "/api/v1/nominations",                                 401,  200,  200,   200,   200,  200,  200),
    ("POST", "/api/v1/nominations",                                401,  201,  403,   403,   403,  403,  403),
    ("GET", "/api/v1/nominations/{draft}",                         401,  200,  404,   404,   404,  404,  200),
    ("GET", "/api/v1/nominations/{submitted}",                     401,  200,  404,   200,   200,  200,  200),
    ("PATCH", "/api/v1/nominations/{draft}",                       401,  200,  404,   404,   404,  404,  403),
    ("PATCH", "/api/v1/nominations/{submitted}",                   401,  422,  404,   403,   403,  403,  403),
    ("POST", "/api/v1/nominations/{draft}/transitions [submit]",   401,  200,  404,   404,   404,  404,  403),
    ("POST", "/api/v1/nominations/{draft}/transitions [withdraw]", 401,  200,  404,   404,   404,  404,  403),
    ("POST", "/api/v1/nominations/{submitted}/transitions [withdraw]", 401, 200, 404,  403,   403,  403,  403),
    ("POST", "/api/v1/nominations/{submitted}/transitions [review]", 401,  403, 404,   200,   403,  403,  403),
    ("POST", "/api/v1/nominations/{submitted}/transitions [return_for_revision]",
                                                                   401,  403,  404,   200,   200,  403,  403),
    ("POST", "/api/v1/nominations/{reviewed}/transitions [accept]", 401, 403,  404,   200,   403,  403,  403),
    ("POST", "/api/v1/nominations/{reviewed}/transitions [reject]", 401, 403,  404,   200,   403,  403,  403),
    ("POST", "/api/v1/nominations/{accepted}/transitions [hand_over]", 401, 403, 404,  403,   403,  422,  403),
    ("GET", "/api/v1/nominations/{draft}/events",                  401,  200,  404,   404,   404,  404,  200),
    ("GET", "/api/v1/nominations/{submitted}/events",              401,  200,  404,   200,   200,  200,  200),
    ("GET", "/api/v1/nominations/{draft}/checks",                  401,  200,  404,   404,   404,  404,  200),
    ("GET", "/api/v1/nominations/{submitted}/checks",              401,  200,  404,   200,   200,  200,  200),
    ("POST", "/api/v1/nominations/{draft}/attachments",            401,  201,  404,   404,   404,  404,  403),
    ("POST", "/api/v1/nominations/{submitted}/attachments",        401,  422,  404,   403,   403,  403,  403),
    ("GET", "/api/v1/nominations/{draft}/attachments/{draft_file}", 401, 200,  404,   404,   404,  404,  200),
    ("GET", "/api/v1/nominations/{submitted}/attachments/{submitted_file}",
                                                                   401,  200,  404,   200,   200,  200,  200),
    ("DELETE", "/api/v1/tokens/current",                           401,  204,  204,   204,   204,  204,  204),
    ("GET", "/api/v1/users",                                       401,  403,  403,   403,   403,  403,  200),
    ("POST", "/api/v1/users",                                      401,  403,  403,   403,   403,  403,  201),
    ("PATCH", "/api/v1/users/rev-ph",                              401,  403,  403,   403,   403,  403,  200),
    ("POST", "/api/v1/cycles",                                     401,  403,  403,   403,   403,  403,  201),
    ("PUT", "/api/v1/cycles/ASCN-2026/overrides/TH",               401,  403,  403,   403,   403,  403,  200),
    ("PATCH", "/api/v1/member-states/TH",                          401,  403,  403,   403,   403,  403,  200),
    ("POST", "/api/v1/webhooks",                                   401,  403,  403,   403,   403,  403,  201),
    ("GET", "/api/v1/ops/queues",                                  401,  403,  403,   403,   403,  200,  200),
    ("GET", "/api/v1/ops/failures",                                401,  403,  403,   403,   403,  200,  200),
    ("GET", "/api/v1/ops/status",                                  401,  403,  403,   403,   403,  200,  200),
    ("POST", "/api/v1/ops/failures/{failure}/retry",               401,  403,  403,   403,   403,  200,  200),
    ("POST", "/api/v1/ops/failures/{failure}/discard",             401,  403,  403,   403,   403,  200,  200),
]

# The matrix: (role, member-state relation, method, endpoint, expected status).
MATRIX = [(role, relation, method, endpoint, status)
          for method, endpoint, *statuses in TABLE
          for (role, relation), status in zip(ACTORS, statuses, strict=True)]


def _body(method: str, endpoint: str) -> dict:
    """The request each row sends: valid, so that only who is asking decides the answer."""
    path, _, variant = endpoint.partition(" [")
    variant = variant.rstrip("]")
    unique = uuid.uuid4().hex[:8]
    if path.endswith("/transitions"):
        body = {"trigger": variant}
        if variant == "review":
            body["assessment"] = ASSESSMENT
        if variant in ("return_for_revision", "reject"):
            body["comment"] = "Placeholder reason."
        return {"json": body, "headers": {"If-Match": "*"}}
    if path.endswith("/attachments"):
        data, content_type = multipart({"kind": "supporting_document"}, {"file": ("annex.pdf", PDF, "application/pdf")})
        return {"data": data, "content_type": content_type}
    return {
        ("POST", "/api/v1/tokens"): {"json": {"username": "token-probe", "password": PROBE_PASSWORD}},
        ("POST", "/api/v1/nominations"): {"json": complete_draft("Makassar", member_state="ID")},
        ("PATCH", "/api/v1/nominations/{draft}"): {"json": {"vision": "A revised placeholder vision."},
                                                   "headers": {"If-Match": "*"}},
        ("PATCH", "/api/v1/nominations/{submitted}"): {"json": {"vision": "A revised placeholder vision."},
                                                       "headers": {"If-Match": "*"}},
        ("POST", "/api/v1/users"): {"json": {"username": f"user-{unique}", "password": "a-long-password",
                                             "email": f"user-{unique}@test.example", "role": "reviewer"}},
        ("PATCH", "/api/v1/users/rev-ph"): {"json": {"name": "A placeholder name"}},
        ("POST", "/api/v1/cycles"): {"json": {"code": f"ASCN-T{unique}", "name": "Placeholder cycle",
                                              "opens_at": "2027-01-01T00:00:00Z", "closes_at": "2028-01-01T00:00:00Z"}},
        ("PUT", "/api/v1/cycles/ASCN-2026/overrides/TH"): {"json": {"limit": 4, "reason": "Placeholder reason."}},
        ("PATCH", "/api/v1/member-states/TH"): {"json": {"lead_agency_email": "lead-agency@th.example"}},
        ("POST", "/api/v1/webhooks"): {"json": {"url": "https://receiver.example/scn", "secret": "s" * 16,
                                                "events": ["nomination.accepted"]}},
    }.get((method, path), {})


NOMINATION_TARGETS = ("draft", "submitted", "reviewed", "accepted")


def _prepare(api, path: str) -> dict:
    """Make what the path names (only that); returns the values of its placeholders."""
    values = {}
    cities = iter(("Banyuwangi", "DKI Jakarta", "Sumedang", "Makassar"))
    for target in NOMINATION_TARGETS:  # in this order: the worker runs before anything is accepted
        if "{" + target + "}" not in path:
            continue
        if target == "draft":
            n = api.create("sub-id", complete_draft(next(cities)))
            values["draft_file"] = _attach(api, n)
        elif target == "submitted":
            n = api.create("sub-id", complete_draft(next(cities)))
            values["submitted_file"] = _attach(api, n)
            n = api.fire(api.read(n["id"]), "submit", "sub-id")
            api.run_worker()
        elif target == "reviewed":
            n = api.walk("checked", next(cities))
            n = api.fire(n, "review", "rev-ph", assessment=ASSESSMENT)
        else:
            n = api.walk("accepted", next(cities))
        values[target] = n["id"]
    if "{failure}" in path:
        values["failure"] = failures.record(api.svc, task="notify", event_id=str(uuid.uuid4()),
                                            arguments=["notifications", str(uuid.uuid4())],
                                            error="placeholder: the mail server refused", attempts=6)
    if path == "/api/v1/tokens":
        users.create_user(api.svc, username="token-probe", password=PROBE_PASSWORD, email="token-probe@test.example",
                          role="reviewer")
    return values


def _attach(api, nomination) -> int:
    data, content_type = multipart({"kind": "action_plan"}, {"file": ("action-plan.pdf", PDF, "application/pdf")})
    response = api.post(f"nominations/{nomination['id']}/attachments", "sub-id", data=data, content_type=content_type)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def _versions(api, values: dict) -> dict:
    with api.svc.engine.connect() as connection:
        return {target: connection.scalar(sa.select(t.nominations.c.version)
                                          .where(t.nominations.c.id == values[target]))
                for target in NOMINATION_TARGETS if target in values}


@pytest.fixture
def matrix_api(sqlite_url, clock, tmp_path):
    client = open_api(sqlite_url, clock, tmp_path)
    yield client
    client.svc.engine.dispose()


@pytest.fixture(scope="module")
def reading_api(sqlite_template, tmp_path_factory):
    """One world with every target, shared by the rows that only read (GET changes nothing)."""
    folder = tmp_path_factory.mktemp("authz")
    shutil.copy(sqlite_template, folder / "scn.sqlite3")
    client = open_api(f"sqlite:///{folder / 'scn.sqlite3'}", Clock(datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)),
                      folder)
    values = _prepare(client, "".join("{%s}" % name for name in NOMINATION_TARGETS + ("failure",)))
    yield client, values
    client.svc.engine.dispose()


@pytest.mark.parametrize("role, relation, method, endpoint, expected", MATRIX,
                         ids=[f"{m} {e} as {r}-{rel}" for r, rel, m, e, _ in MATRIX])
def test_the_authorization_matrix(request, role, relation, method, endpoint, expected):
    path = endpoint.partition(" [")[0]
    if method == "GET":
        api, values = request.getfixturevalue("reading_api")
    else:  # a fresh world with only what the row needs
        api = request.getfixturevalue("matrix_api")
        values = _prepare(api, path)
    before = _versions(api, values)
    response = api.call(method, path.format(**values), ACTORS[(role, relation)], **_body(method, endpoint))
    try:
        assert response.status_code == expected, response.get_data(as_text=True)
        if expected >= 400:
            assert_problem(response, expected)
        if expected >= 400 or method == "GET":
            assert _versions(api, values) == before  # a refusal (or a read) changes nothing
    finally:
        response.close()


def test_the_matrix_covers_every_endpoint_of_the_openapi_document(matrix_api):
    spec = matrix_api.get("/api/openapi.json").get_json()
    documented = {(method.upper(), path) for path, operations in spec["paths"].items()
                  for method in operations if method in ("get", "post", "put", "patch", "delete")}
    covered = set()
    for method, endpoint, *_ in TABLE:
        path = endpoint.partition(" [")[0]
        for spec_method, spec_path in documented:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(spec_path))
            if spec_method == method and re.fullmatch(pattern, path):
                covered.add((spec_method, spec_path))
    assert documented - covered == set()
    assert all(len(statuses) == len(ACTORS) for _, _, *statuses in TABLE)


def test_every_api_path_is_documented(matrix_api):
    """No endpoint under /api/v1 escapes the document (and so the matrix)."""
    spec_paths = {re.sub(r"\{[^}]+\}", "<>", p) for p in matrix_api.get("/api/openapi.json").get_json()["paths"]}
    routes = {re.sub(r"<[^>]+>", "<>", rule.rule) for rule in matrix_api.app.url_map.iter_rules()
              if rule.rule.startswith(API)}
    assert routes - spec_paths == set()
