"""Schemathesis against the app's own OpenAPI document (/api/openapi.json), in process (WSGI).

The app runs on a migrated and seeded SQLite database (the demo data of `scn-workflow seed`,
with the real clock, so the current year's cycle is open). Every generated request carries a
bearer token (a submitter's, or an admin's). Each answer must be no 5xx, a documented status
code and content type, documented headers, and a body that matches the documented schema.
The stateful run follows the OpenAPI links of the document, from creating a nomination to
reading, editing and firing transitions on it.

How many cases ran is printed at the end of the session (and written to the file named by
SCN_SCHEMATHESIS_REPORT, if set), so it can be quoted. SCN_SCHEMATHESIS_EXAMPLES and
SCN_SCHEMATHESIS_STATEFUL_EXAMPLES raise or lower the effort.
"""

from __future__ import annotations

import atexit
import collections
import os
import shutil
import tempfile
import threading

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from scn_workflow.app import create_app
from scn_workflow.db import migrate
from scn_workflow.services.seed import DEMO_PASSWORD, seed

MAX_EXAMPLES = int(os.environ.get("SCN_SCHEMATHESIS_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("SCN_SCHEMATHESIS_STATEFUL_EXAMPLES", "40"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
SETTINGS = dict(deadline=None, database=None, derandomize=True, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture, HealthCheck.data_too_large])

# The OpenAPI document does not depend on the data, so it is read at collection time from an app
# whose SQLite file is created (migrated and seeded) only when the tests run.
_FOLDER = tempfile.mkdtemp(prefix="scn-schemathesis-")
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
DATABASE_URL = f"sqlite:///{os.path.join(_FOLDER, 'scn.sqlite3')}"
APP = create_app({"database_url": DATABASE_URL, "instance_path": _FOLDER, "broker_url": None,
                  "embedded_autostart": False})
APP.config["TESTING"] = True
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP, config=schemathesis.Config.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES},  # positive and negative data
    "phases": {"stateful": {"generation": {"mode": "positive"}}},  # sequences of valid calls
}))


class CaseCounter:
    """Counts the cases Schemathesis ran, by run and by operation; reports them at the end."""

    def __init__(self):
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._lock = threading.Lock()

    def add(self, run: str, label: str) -> None:
        with self._lock:
            self.counts[run][label] += 1

    def lines(self) -> list[str]:
        total = sum(sum(c.values()) for c in self.counts.values())
        out = [f"schemathesis: {total} cases run against /api/openapi.json"]
        for run, counter in sorted(self.counts.items()):
            out.append(f"  {run}: {sum(counter.values())} ({len(counter)} kinds)")
        return out

    def pytest_terminal_summary(self, terminalreporter):
        if self.counts:
            for line in self.lines():
                terminalreporter.write_line(line)
            target = os.environ.get("SCN_SCHEMATHESIS_REPORT")
            if target:
                with open(target, "w", encoding="utf-8") as handle:
                    handle.write("\n".join(self.lines()) + "\n")


_COUNTER = CaseCounter()


@pytest.fixture(scope="module")
def counter(request):
    if not request.config.pluginmanager.is_registered(_COUNTER):
        request.config.pluginmanager.register(_COUNTER, "scn-schemathesis-counter")
    return _COUNTER


@pytest.fixture(scope="module")
def tokens():
    """Migrate and seed the app's database (real clock: this year's cycle is open); a token per role."""
    migrate.upgrade(DATABASE_URL)
    seed(APP.extensions["scn"])
    client = APP.test_client()
    found = {}
    for username in ("submitter-id", "admin"):
        response = client.post("/api/v1/tokens", json={"username": username, "password": DEMO_PASSWORD})
        assert response.status_code == 201, response.get_data(as_text=True)
        found[username] = {"Authorization": f"Bearer {response.get_json()['token']}"}
    yield found
    APP.extensions["scn"].engine.dispose()


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, **SETTINGS)
def test_every_operation_as_a_submitter(case, tokens, counter):
    counter.add("stateless, as submitter-id", case.operation.label)
    case.call_and_validate(headers=tokens["submitter-id"], checks=CHECKS)


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, **SETTINGS)
def test_every_operation_as_an_admin(case, tokens, counter):
    counter.add("stateless, as admin", case.operation.label)
    case.call_and_validate(headers=tokens["admin"], checks=CHECKS)


def test_the_document_links_creation_to_transitions():
    """The stateful run below depends on these links: without them it would test nothing deeper."""
    paths = APP.test_client().get("/api/openapi.json").get_json()["paths"]
    created = paths["/api/v1/nominations"]["post"]["responses"]["201"]["links"]
    assert created["FireTransition"] == {"operationId": "fireTransition", "parameters": {
        "nomination_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}}
    fired = paths["/api/v1/nominations/{nomination_id}/transitions"]["post"]["responses"]["200"]["links"]
    assert fired["FireTransition"]["operationId"] == "fireTransition"
    assert paths["/api/v1/nominations/{nomination_id}/transitions"]["post"]["operationId"] == "fireTransition"


def test_stateful_from_creation_to_transitions(tokens, counter):
    """Sequences of calls that follow the document's links: create a nomination, then read it,
    edit it, attach to it and fire transitions on it with the ETag it answered as If-Match."""
    outcomes: collections.Counter = collections.Counter()

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"headers": tokens["submitter-id"]}

        def step(self, input):
            output = super().step(input)
            linked = input.transition is not None and input.is_applied
            counter.add("stateful, as submitter-id (steps)", input.case.operation.label)
            outcomes[(input.case.operation.label, output.response.status_code, linked)] += 1
            return output

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    # The database outlives each scenario, so a scenario cannot be replayed: no shrinking.
    Machine.run(settings=hypothesis.settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=8,
                                             phases=[Phase.explicit, Phase.generate], **SETTINGS))

    # The run reached the workflow through links, not only by guessing ids: a nomination created
    # in the run had a transition fired on it, with the ETag from the answer before as If-Match.
    fire = "POST /api/v1/nominations/{nomination_id}/transitions"
    print(*sorted(outcomes.items()), sep="\n")
    assert outcomes[("POST /api/v1/nominations", 201, False)] > 0, dict(outcomes)
    assert sum(n for (label, status, linked), n in outcomes.items() if label == fire and linked) > 0, dict(outcomes)
    assert sum(n for (label, status, linked), n in outcomes.items()
               if label == fire and linked and status == 200) > 0, dict(outcomes)
