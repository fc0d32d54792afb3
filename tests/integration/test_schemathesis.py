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
from hypothesis import HealthCheck
from schemathesis import engine
from schemathesis.checks import not_a_server_error
from schemathesis.engine import events
from schemathesis.engine.statistic import Statistic
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from scn_workflow.api.nominations import EXAMPLE
from scn_workflow.app import create_app
from scn_workflow.db import migrate
from scn_workflow.services.seed import DEMO_PASSWORD, seed

MAX_EXAMPLES = int(os.environ.get("SCN_SCHEMATHESIS_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("SCN_SCHEMATHESIS_STATEFUL_EXAMPLES", "100"))
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
                  "embedded_autostart": False, "env": "development"})
APP.config["TESTING"] = True
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP, config=schemathesis.Config.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES},  # positive and negative data
    "cache": {"enabled": False},  # no .schemathesis/ folder in the working tree; each run starts afresh
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
            out.append(f"  {run}: {sum(counter.values())} cases over {len(counter)} operations")
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


def _engine_run(api_schema) -> tuple[Statistic, collections.Counter, list]:
    """Run Schemathesis' engine (what `schemathesis run` does) on the schema; collect what it saw."""
    statistic, outcomes, errors = Statistic(), collections.Counter(), []
    for event in engine.from_schema(api_schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statistic.on_scenario_finished(event.recorder)
            for case_id, node in event.recorder.cases.items():
                interaction = event.recorder.interactions.get(case_id)
                status = interaction.response.status_code if interaction and interaction.response else None
                outcomes[(node.value.operation.label, status, node.is_transition_applied)] += 1
        elif isinstance(event, (events.NonFatalError, events.FatalError)):
            errors.append(event)
    return statistic, outcomes, errors


def _failures(statistic: Statistic) -> list[str]:
    """Each failure: what failed, the answer's status, and the request that reproduces it."""
    return [f"{label}: {failure.title} {failure.message} -> "
            f"{group.response.status_code if group.response else 'no answer'}\n    {group.code_sample}"
            for label, groups in statistic.failures.items() for group in groups.values()
            for failure in group.failures]


def test_stateful_from_creation_to_transitions(tokens, counter):
    """Sequences of calls that follow the document's links: create a nomination, then read it,
    edit it, attach to it and fire transitions on it, with the ETag it answered as If-Match.

    The nomination operations only, as submitter-id. A created nomination carries the documented
    example's content (generated values for the rest), so that `submit` can succeed and the run
    goes past the draft; the stateless tests above send arbitrary bodies."""
    stateful = schemathesis.openapi.from_wsgi("/api/openapi.json", APP, config=schemathesis.Config.from_dict({
        "headers": tokens["submitter-id"],
        "seed": 4,
        "cache": {"enabled": False},
        "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
        "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "fuzzing": {"enabled": False},
                   "stateful": {"max-steps": 12,
                                "generation": {"mode": "positive", "max-examples": STATEFUL_EXAMPLES}}},
    })).include(path_regex="^/api/v1/nominations")

    @stateful.hook
    def map_body(context, body):
        if context.operation is not None and context.operation.label == "POST /api/v1/nominations" \
                and isinstance(body, dict):
            body = {**{k: v for k, v in body.items() if k not in ("member_state", "cycle")}, **EXAMPLE}
        return body

    statistic, outcomes, errors = _engine_run(stateful)
    for (label, status, linked), n in outcomes.items():
        for _ in range(n):
            counter.add("stateful (engine), as submitter-id", label)

    assert not errors, [getattr(e, "info", e) for e in errors]
    assert not _failures(statistic), "\n".join(_failures(statistic))
    # The run reached the workflow through the links, not by guessing ids: transitions were fired
    # on nominations created in the run, with the answered ETag as If-Match, and some succeeded.
    fire = "POST /api/v1/nominations/{nomination_id}/transitions"
    assert outcomes[("POST /api/v1/nominations", 201, False)] > 0, dict(outcomes)
    fired = sum(n for (label, status, linked), n in outcomes.items() if label == fire and linked and status == 200)
    assert fired > 0, dict(outcomes)
