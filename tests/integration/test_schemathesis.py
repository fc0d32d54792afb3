"""Schemathesis against the running service: gunicorn on PostgreSQL (tests/integration/live.py),
over HTTP, with the OpenAPI document it serves (/api/openapi.json).

Stateless: every operation with examples, boundary values (coverage) and generated data, valid
and invalid, as a submitter and as an admin. Stateful: sequences that follow the document's
links, from creating a nomination to reading, editing and firing transitions on it with the
ETag it answered as If-Match. Each answer must be no 5xx, a documented status code and content
type, documented headers, and a body that matches the documented schema.

Every run draws a fresh seed, printed at the end of the session and in any failure;
SCN_SCHEMATHESIS_SEED=<seed> runs the same cases again. SCN_SCHEMATHESIS_EXAMPLES and
SCN_SCHEMATHESIS_STATEFUL_EXAMPLES raise or lower the effort; how many cases ran is printed too
(and written to the file named by SCN_SCHEMATHESIS_REPORT, if set).

Webhook URLs in generated bodies are replaced with one on 127.0.0.1: no test sends traffic to
an address outside 127.0.0.0/8 (nor asks a DNS server about a generated host name).
"""

from __future__ import annotations

import collections
import os
import random
import threading
from datetime import datetime, timezone

import pytest
import requests
import schemathesis
from schemathesis import engine
from schemathesis.checks import not_a_server_error
from schemathesis.engine import events
from schemathesis.engine.statistic import Statistic
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from scn_workflow.api.nominations import EXAMPLE
from scn_workflow.domain.rules import SUBMITTER_OF_MEMBER_STATE
from scn_workflow.domain.workflow import SPECS
from tests.integration.live import live_server, start_live_server  # noqa: F401

MAX_EXAMPLES = int(os.environ.get("SCN_SCHEMATHESIS_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("SCN_SCHEMATHESIS_STATEFUL_EXAMPLES", "60"))
SEED = int(os.environ.get("SCN_SCHEMATHESIS_SEED") or random.SystemRandom().randrange(2**32))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
LOOPBACK_HOOK = "http://127.0.0.1:9/hook"
URL_FIELDS = ("url", "lead_agency_webhook_url")
FIRE = "POST /api/v1/nominations/{nomination_id}/transitions"
SUBMITTERS_TRIGGERS = {name for name, spec in SPECS.items() if spec.permissions == (SUBMITTER_OF_MEMBER_STATE,)}


class RunReport:
    """The seed and the cases Schemathesis ran, by run and operation; printed at the end."""

    def __init__(self):
        self.counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._lock = threading.Lock()

    def add(self, run: str, label: str, n: int = 1) -> None:
        with self._lock:
            self.counts[run][label] += n

    def lines(self) -> list[str]:
        total = sum(sum(c.values()) for c in self.counts.values())
        out = [f"schemathesis: seed {SEED} (SCN_SCHEMATHESIS_SEED={SEED} runs it again); "
               f"{total} cases run against /api/openapi.json"]
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


_REPORT = RunReport()


@pytest.fixture(scope="module")
def report(request):
    if not request.config.pluginmanager.is_registered(_REPORT):
        request.config.pluginmanager.register(_REPORT, "scn-schemathesis-report")
    return _REPORT


def load(server, headers: dict, phases: dict, seed: int = SEED):
    """The served document, with Schemathesis' configuration for one run."""
    return schemathesis.openapi.from_url(server.url + "/api/openapi.json", config=schemathesis.Config.from_dict({
        "headers": headers,
        "seed": seed,
        "cache": {"enabled": False},  # no .schemathesis/ folder in the working tree; each run starts afresh
        "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
        "phases": phases,
    }))


def on_loopback(api_schema) -> None:
    """Generated webhook URLs go to 127.0.0.1 (refused there as a private address, or unanswered)."""

    @api_schema.hook
    def map_body(context, body):
        if isinstance(body, dict):
            body = {k: LOOPBACK_HOOK if k in URL_FIELDS and isinstance(v, str) else v for k, v in body.items()}
        return body


def engine_run(api_schema) -> tuple[Statistic, collections.Counter, list]:
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


def failures(statistic: Statistic) -> list[str]:
    """Each failure: what failed, the answer's status, and the request that reproduces it."""
    return [f"{label}: {failure.title} {failure.message} -> "
            f"{group.response.status_code if group.response else 'no answer'}\n    {group.code_sample}"
            for label, groups in statistic.failures.items() for group in groups.values()
            for failure in group.failures]


def assert_clean(statistic, errors) -> None:
    again = f"(seed {SEED}: SCN_SCHEMATHESIS_SEED={SEED} runs it again)"
    assert not errors, [getattr(e, "info", e) for e in errors] + [again]
    assert not failures(statistic), "\n".join(failures(statistic) + [again])


STATELESS = {"examples": {"enabled": True}, "coverage": {"enabled": True},
             "fuzzing": {"enabled": True, "generation": {"max-examples": MAX_EXAMPLES}},
             "stateful": {"enabled": False}}


def stateless(server, username: str, report) -> None:
    """Each operation with its examples, boundary values and generated data (valid and not)."""
    # Revoking the token the run is sent with would leave the rest of the run to 401s
    # (tests/integration/test_sessions_and_limits.py revokes one).
    api_schema = load(server, {"Authorization": "Bearer " + server.token(username)}, STATELESS).exclude(
        method="DELETE", path="/api/v1/tokens/current")
    on_loopback(api_schema)
    statistic, outcomes, errors = engine_run(api_schema)
    for (label, _status, _linked), n in outcomes.items():
        report.add(f"stateless, as {username}", label, n)
    assert_clean(statistic, errors)
    assert sum(outcomes.values()) > 0
    # Invalid input was among what ran, and it was refused by name (422), not answered with a 5xx.
    assert any(status == 422 for (_label, status, _linked) in outcomes), dict(outcomes)
    assert "unhandled error" not in server.log(), server.log()[-3000:]


def test_every_operation_stateless_as_a_submitter(live_server, report):
    stateless(live_server, "submitter-id", report)


def test_every_operation_stateless_as_an_admin(tmp_path, report):
    """On a server of its own: an admin's generated requests change users (passwords, roles,
    deactivation), which would sign the other runs' users out."""
    server, stop = start_live_server(tmp_path)
    try:
        stateless(server, "admin", report)
    finally:
        stop()


def test_the_document_links_creation_to_transitions(live_server):
    """The stateful run below depends on these links: without them it would test nothing deeper."""
    paths = requests.get(live_server.url + "/api/openapi.json", timeout=10).json()["paths"]
    created = paths["/api/v1/nominations"]["post"]["responses"]["201"]["links"]
    assert created["FireTransition"] == {"operationId": "fireTransition", "parameters": {
        "nomination_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"}}
    fired = paths["/api/v1/nominations/{nomination_id}/transitions"]["post"]["responses"]["200"]["links"]
    assert fired["FireTransition"]["operationId"] == "fireTransition"
    assert paths["/api/v1/nominations/{nomination_id}/transitions"]["post"]["operationId"] == "fireTransition"


def test_a_url_longer_than_the_http_server_takes_gets_the_documented_414(live_server):
    """gunicorn refuses a request line over 4,094 bytes with its own page, before the service sees it
    (CI's stateless run at seed 2427138050 sent such a query string): the document says so."""
    answer = requests.get(live_server.url + "/api/v1/nominations", params={"q": "x" * 5000}, timeout=10)
    assert answer.status_code == 414 and answer.headers["Content-Type"].startswith("text/html"), answer.text[:300]
    paths = requests.get(live_server.url + "/api/openapi.json", timeout=10).json()["paths"]
    for operations in paths.values():
        for method, operation in operations.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert "text/html" in operation["responses"]["414"]["content"], operation["operationId"]


def test_stateful_from_creation_to_transitions(tmp_path, report):
    """Sequences of calls that follow the document's links: create a nomination, then read it,
    edit it, attach to it and fire transitions on it, with the ETag it answered as If-Match.

    The nomination operations only, as submitter-id. A created nomination carries the documented
    example's content (generated values for the rest), so that `submit` can succeed and the run
    goes past the draft; the stateless test above sends arbitrary bodies. On a server of its own:
    the stateless run may leave Indonesia at its limit of active nominations, and then no `submit`
    could succeed here."""
    live_server, stop = start_live_server(tmp_path)
    try:
        stateful_run(live_server, report)
    finally:
        stop()


def stateful_run(live_server, report) -> None:
    """An admin first raises Indonesia's limit in the open cycle to the most an override allows:
    otherwise every submit after the third is refused by the limit (tests/integration/test_api.py
    tests the limit; this run tests the links and the transitions)."""
    admin = live_server.api("admin")
    cycles = admin.get(live_server.url + "/api/v1/cycles", timeout=10).json()
    now = datetime.now(timezone.utc)
    current = [c["code"] for c in cycles if datetime.fromisoformat(c["opens_at"]) <= now
               < datetime.fromisoformat(c["closes_at"])]
    assert current, cycles
    for code in current:
        raised = admin.put(f"{live_server.url}/api/v1/cycles/{code}/overrides/ID", timeout=10,
                           json={"limit": 100, "reason": "The stateful run submits many nominations."})
        assert raised.status_code == 200, raised.text
    stateful = load(live_server, {"Authorization": "Bearer " + live_server.token("submitter-id")}, {
        "examples": {"enabled": False}, "coverage": {"enabled": False}, "fuzzing": {"enabled": False},
        "stateful": {"max-steps": 12, "generation": {"mode": "positive", "max-examples": STATEFUL_EXAMPLES}},
    }).include(path_regex="^/api/v1/nominations")

    @stateful.hook
    def map_body(context, body):
        if context.operation is not None and context.operation.label == "POST /api/v1/nominations" \
                and isinstance(body, dict):
            body = {**{k: v for k, v in body.items() if k not in ("member_state", "cycle")}, **EXAMPLE}
        if context.operation is not None and context.operation.label == FIRE and isinstance(body, dict) \
                and body.get("trigger") not in SUBMITTERS_TRIGGERS:
            # The generator picks among all seven triggers, and five are a reviewer's or the system's:
            # refused with 409 as they must be (the stateless run sends those), but a run could then
            # end without one transition succeeding. Here the run fires what its user may.
            body = {**body, "trigger": "submit"}
        return body

    statistic, outcomes, errors = engine_run(stateful)
    for (label, _status, _linked), n in outcomes.items():
        report.add("stateful, as submitter-id", label, n)

    assert_clean(statistic, errors)
    # The run reached the workflow through the links, not by guessing ids: transitions were fired
    # on nominations created in the run, with the answered ETag as If-Match, and some succeeded.
    assert outcomes[("POST /api/v1/nominations", 201, False)] > 0, dict(outcomes)
    fired = sum(n for (label, status, linked), n in outcomes.items() if label == FIRE and linked and status == 200)
    assert fired > 0, dict(outcomes)
    assert "unhandled error" not in live_server.log(), live_server.log()[-3000:]
