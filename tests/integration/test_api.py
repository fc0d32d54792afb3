"""The JSON API over HTTP (Flask test client), as a client sees it: every endpoint's success and
its refusals, each refusal as application/problem+json naming the field or the rule.

Most tests run on SQLite and on PostgreSQL (`api`); those about parsing, documents and limits
that the database plays no part in run on SQLite only (`sqlite_api`).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.reference import ascn
from scn_workflow.services import failures, tokens, users
from tests.api_support import (API, PDF, PROBLEM, api, assert_problem, multipart, rules,  # noqa: F401
                               sqlite_api)
from tests.conftest import ASSESSMENT, PASSWORD, complete_draft

MIB = 1024 * 1024


def count(api, table) -> int:
    with api.svc.engine.connect() as connection:
        return connection.scalar(sa.select(sa.func.count()).select_from(table))


def upload(api, nomination, username="sub-id", content=PDF, filename="action-plan.pdf", kind="action_plan",
           **headers):
    body, content_type = multipart({"kind": kind}, {"file": (filename, content, "application/pdf")})
    return api.post(f"nominations/{nomination['id']}/attachments", username, headers=headers, data=body,
                    content_type=content_type)


def download(api, path, username):
    """GET a file; the response is closed (the file it streams from with it)."""
    response = api.get(path, username)
    try:
        return response.status_code, response.mimetype, dict(response.headers), response.get_data()
    finally:
        response.close()


# --- tokens ---------------------------------------------------------------------------------


def test_a_token_for_a_correct_password(api, clock):
    response = api.post("tokens", json={"username": "sub-th", "password": PASSWORD})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"token", "expires_at"} and len(body["token"]) >= 32
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=11) < expires - clock.now <= timedelta(hours=12)
    listed = api.client.get(f"{API}/nominations", headers={"Authorization": f"Bearer {body['token']}"})
    assert listed.status_code == 200


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(api):
    wrong = api.post("tokens", json={"username": "sub-id2", "password": "not-the-password"})
    unknown = api.post("tokens", json={"username": "nobody-at-all", "password": "not-the-password"})
    body = assert_problem(wrong, 401, "Unauthorized")
    assert_problem(unknown, 401)
    assert wrong.get_data() == unknown.get_data()
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert "token" not in body


def test_the_token_endpoint_refuses_the_sixth_failure_for_one_user_from_one_address(sqlite_api):
    name = f"limited-{uuid.uuid4().hex[:8]}"
    users.create_user(sqlite_api.svc, username=name, password="a-long-passphrase", email=f"{name}@test.example",
                      role="reviewer", member_state=None)
    for _ in range(5):
        assert_problem(sqlite_api.post("tokens", json={"username": name, "password": "wrong-password"}), 401)
    refused = sqlite_api.post("tokens", json={"username": name, "password": "a-long-passphrase"})
    body = assert_problem(refused, 429)
    assert "Too many failed sign-ins" in body["detail"]
    assert 0 < int(refused.headers["Retry-After"]) <= 15 * 60
    # the limit is per username (and address): someone else still gets in
    assert sqlite_api.post("tokens", json={"username": "rev-ph", "password": PASSWORD}).status_code == 201


def test_the_token_endpoint_names_missing_and_unknown_fields(sqlite_api):
    body = assert_problem(sqlite_api.post("tokens", json={"user": "sub-id"}), 422, "Invalid input")
    assert set(body["errors"]) == {"username", "password", "user"}
    body = assert_problem(sqlite_api.post("tokens", json={"username": "", "password": "x" * 201}), 422)
    assert set(body["errors"]) == {"username", "password"}


def test_no_token_a_bad_token_a_revoked_one_and_an_expired_one_get_401(api, clock):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic c3ViLWlkOng="},
                    {"Authorization": "Bearer "}):
        response = api.client.get(f"{API}/nominations", headers=headers)
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    assert api.client.get(f"{API}/nominations", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    tokens.revoke(api.svc, token)
    assert_problem(api.client.get(f"{API}/nominations", headers={"Authorization": f"Bearer {token}"}), 401)
    token, _ = tokens.issue(api.svc, "sub-id", PASSWORD)
    clock.advance(hours=12, seconds=1)
    assert_problem(api.client.get(f"{API}/nominations", headers={"Authorization": f"Bearer {token}"}), 401)


# --- generic refusals -----------------------------------------------------------------------


def test_unknown_paths_and_methods_are_problems(sqlite_api):
    assert_problem(sqlite_api.get(f"{API}/no-such-thing"), 404, "Not Found")
    assert_problem(sqlite_api.get("nominations/999999", "root"), 404)
    assert_problem(sqlite_api.get(f"nominations/{2**63}", "root"), 404)  # larger than any id: no 500
    assert_problem(sqlite_api.get(f"nominations/{2**70}/events", "root"), 404)
    response = sqlite_api.call("DELETE", "nominations", "root")
    assert_problem(response, 405, "Method Not Allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_a_body_that_is_not_json_gets_415(sqlite_api):
    n = sqlite_api.create()
    for path, headers in (("nominations", {}), (f"nominations/{n['id']}", {"If-Match": '"1"'}),
                          (f"nominations/{n['id']}/transitions", {"If-Match": '"1"'})):
        method = "PATCH" if path.count("/") == 1 else "POST"
        body = assert_problem(sqlite_api.call(method, path, "sub-id", headers=headers, data="trigger=submit",
                                              content_type="text/plain"), 415)
        assert "text/plain" in body["detail"]
        body = assert_problem(sqlite_api.call(method, path, "sub-id", headers=headers, data='{"trigger": "submit"',
                                              content_type="application/json"), 415)
        assert "not valid JSON" in body["detail"]
    assert sqlite_api.read(n["id"])["version"] == 1  # nothing changed


def test_a_json_body_over_one_mib_gets_413(sqlite_api):
    n = sqlite_api.create()
    big = {"trigger": "submit", "comment": "x" * MIB}
    body = assert_problem(sqlite_api.post(f"nominations/{n['id']}/transitions", "sub-id", json=big,
                                          headers={"If-Match": '"1"'}), 413)
    assert "1024 KiB" in body["detail"]
    assert_problem(sqlite_api.post("nominations", "sub-id", json=complete_draft(vision="x" * MIB)), 413)
    # just under the limit is parsed (and refused by the schema, not by size)
    body = assert_problem(sqlite_api.post("nominations", "sub-id", json=complete_draft(vision="x" * (MIB - 1000))),
                          422)
    assert "vision" in body["errors"]


# --- nominations: create, read, edit --------------------------------------------------------


def test_create_answers_201_with_location_and_etag(api):
    response = api.post("nominations", "sub-id", json=complete_draft())
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"{API}/nominations/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert body["reference"] == "ASCN-2026-ID-001"
    assert (body["member_state"], body["cycle"], body["state"], body["version"]) == ("ID", "ASCN-2026", "drafted", 1)
    assert body["city_name"] == "Banyuwangi" and body["attachments"] == []
    assert body["allowed_triggers"] == ["submit", "withdraw"]
    again = api.get(response.headers["Location"], "sub-id")
    assert again.status_code == 200 and again.get_json() == body
    assert again.headers["ETag"] == '"1"'
    second = api.create("sub-id2", complete_draft("Makassar"))
    assert second["reference"] == "ASCN-2026-ID-002"


def test_create_names_each_invalid_field(sqlite_api):
    bad = complete_draft(csco_email="not-an-email", focus_areas=["civic_social", "moonshots"], population=-5,
                         projects=[{"title": "", "focus_area": "civic_social", "priority": "yes"}], colour="red")
    body = assert_problem(sqlite_api.post("nominations", "sub-id", json=bad), 422, "Invalid input")
    assert {"csco_email", "focus_areas", "population", "projects", "colour"} <= set(body["errors"])
    assert set(body["errors"]["projects"]["0"]) == {"title", "priority"}
    body = assert_problem(sqlite_api.post("nominations", "sub-id", json={}), 422)
    assert set(body["errors"]) == {"city_name"}
    body = assert_problem(sqlite_api.post("nominations", "sub-id", json=[1, 2]), 422)
    assert body["errors"]
    body = assert_problem(sqlite_api.post("nominations", "sub-id", json=complete_draft(cycle="ASCN-1999")), 422)
    assert set(body["errors"]) == {"cycle"}
    assert count(sqlite_api, t.nominations) == 0


def test_create_is_for_submitters_of_their_own_member_state(api):
    body = assert_problem(api.post("nominations", "rev-sg", json=complete_draft()), 403, "Not permitted")
    assert rules(body) == ["submitter_of_member_state"]
    body = assert_problem(api.post("nominations", "sub-id", json=complete_draft(member_state="TH")), 403)
    assert rules(body) == ["submitter_of_member_state"]
    assert count(api, t.nominations) == 0


def test_get_answers_304_for_the_current_etag(api):
    n = api.create()
    response = api.get(f"nominations/{n['id']}", "sub-id", headers={"If-None-Match": '"1"'})
    assert response.status_code == 304 and response.headers["ETag"] == '"1"' and not response.data
    assert api.get(f"nominations/{n['id']}", "sub-id", headers={"If-None-Match": '"7"'}).status_code == 200


def test_patch_needs_the_current_version(api):
    n = api.create()
    path = f"nominations/{n['id']}"
    body = assert_problem(api.patch(path, "sub-id", json={"vision": "Revised."}), 428, "Precondition Required")
    assert "If-Match" in body["detail"]
    response = api.patch(path, "sub-id", json={"vision": "Revised."}, headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert response.headers["ETag"] == '"2"'
    assert response.get_json()["vision"] == "Revised." and response.get_json()["version"] == 2
    body = assert_problem(api.patch(path, "sub-id2", json={"vision": "Lost update."}, headers={"If-Match": '"1"'}),
                          412, "Stale version")
    assert rules(body) == ["current_version"] and "version 2" in body["detail"]
    assert_problem(api.patch(path, "sub-id", json={"vision": "x"}, headers={"If-Match": "yesterday"}), 412)
    response = api.patch(path, "sub-id2", json={"region": "Placeholder region"}, headers={"If-Match": "*"})
    assert response.status_code == 200 and response.headers["ETag"] == '"3"'
    response = api.patch(path, "sub-id", json={"population": 100}, headers={"If-Match": 'W/"3"'})
    assert response.status_code == 200 and response.get_json()["version"] == 4
    assert api.read(n["id"])["vision"] == "Revised."


def test_patch_refusals(api):
    n = api.create()
    path = f"nominations/{n['id']}"
    body = assert_problem(api.patch(path, "sub-id", json={"csco_email": "nope", "state": "accepted"},
                                    headers={"If-Match": '"1"'}), 422, "Invalid input")
    assert set(body["errors"]) == {"csco_email", "state"}
    assert_problem(api.patch(path, "ops", json={"vision": "x"}, headers={"If-Match": '"1"'}), 404)  # never a draft
    assert_problem(api.patch(path, "sub-th", json={"vision": "x"}, headers={"If-Match": '"1"'}), 404)
    submitted = api.fire(n, "submit", "sub-id")
    body = assert_problem(api.patch(path, "ops", json={"vision": "x"},
                                    headers={"If-Match": f'"{submitted["version"]}"'}), 403)
    assert rules(body) == ["submitter_of_member_state"]
    body = assert_problem(api.patch(path, "sub-id", json={"vision": "x"},
                                    headers={"If-Match": f'"{submitted["version"]}"'}), 422)
    assert rules(body) == ["editable_only_when_drafted"]


# --- transitions ----------------------------------------------------------------------------


def test_a_transition_answers_the_new_representation_with_its_etag(api):
    n = api.create()
    response = api.post(f"nominations/{n['id']}/transitions", "sub-id", json={"trigger": "submit"},
                        headers={"If-Match": '"1"'})
    assert response.status_code == 200
    body = response.get_json()
    assert response.headers["ETag"] == '"2"'
    assert (body["state"], body["version"], body["checks_outcome"]) == ("submitted", 2, "pending")
    assert body["submitted_at"] is not None and body["allowed_triggers"] == ["withdraw"]


def test_if_match_on_transitions(api):
    n = api.create()
    path = f"nominations/{n['id']}/transitions"
    assert_problem(api.post(path, "sub-id", json={"trigger": "submit"}), 428)
    assert api.read(n["id"])["state"] == "drafted"
    api.patch(f"nominations/{n['id']}", "sub-id", json={"vision": "Second thoughts."}, headers={"If-Match": '"1"'})
    body = assert_problem(api.post(path, "sub-id", json={"trigger": "submit"}, headers={"If-Match": '"1"'}), 412)
    assert rules(body) == ["current_version"]
    response = api.post(path, "sub-id", json={"trigger": "submit"}, headers={"If-Match": "*"})
    assert response.status_code == 200 and response.get_json()["state"] == "submitted"


def test_409_for_a_trigger_not_valid_from_the_state(api):
    n = api.create()
    assert_problem(api.post(f"nominations/{n['id']}/transitions", "rev-sg", json={"trigger": "accept"},
                            headers={"If-Match": '"1"'}), 404)  # a reviewer does not see a draft
    body = assert_problem(api.post(f"nominations/{n['id']}/transitions", "sub-id", json={"trigger": "accept"},
                                   headers={"If-Match": '"1"'}), 409, "Transition not allowed from this state")
    assert rules(body) == ["valid_source_state"] and "drafted" in body["detail"]
    withdrawn = api.fire(n, "withdraw", "sub-id")
    body = assert_problem(api.post(f"nominations/{n['id']}/transitions", "sub-id", json={"trigger": "submit"},
                                   headers={"If-Match": f'"{withdrawn["version"]}"'}), 409)
    assert rules(body) == ["valid_source_state"]


def test_an_unknown_trigger_or_a_bad_body_is_invalid_input(sqlite_api):
    n = sqlite_api.create()
    path = f"nominations/{n['id']}/transitions"
    body = assert_problem(sqlite_api.post(path, "sub-id", json={"trigger": "approve"}, headers={"If-Match": '"1"'}),
                          422, "Invalid input")
    assert set(body["errors"]) == {"trigger"}
    body = assert_problem(sqlite_api.post(path, "sub-id", json={"comment": "x"}, headers={"If-Match": '"1"'}), 422)
    assert set(body["errors"]) == {"trigger"}
    body = assert_problem(sqlite_api.post(path, "sub-id", headers={"If-Match": '"1"'},
                                          json={"trigger": "review", "assessment": {"scores": {"civic_social": 9},
                                                                                    "recommendation": "maybe"}}), 422)
    assert set(body["errors"]["assessment"]) == {"scores", "recommendation", "summary"}


def test_403_names_the_rule_that_says_who_may_fire(api):
    n = api.walk("checked")
    path = f"nominations/{n['id']}/transitions"
    version = {"If-Match": f'"{n["version"]}"'}
    body = assert_problem(api.post(path, "rev-id", json={"trigger": "review", "assessment": ASSESSMENT},
                                   headers=version), 403, "Not permitted")
    assert rules(body) == ["reviewer_not_of_member_state"]
    body = assert_problem(api.post(path, "sub-id", json={"trigger": "review", "assessment": ASSESSMENT},
                                   headers=version), 403)
    assert "reviewer" in rules(body)
    body = assert_problem(api.post(path, "ops", json={"trigger": "withdraw"}, headers=version), 403)
    assert rules(body) == ["submitter_of_member_state"]
    reviewed = api.fire(n, "review", "rev-sg", assessment=ASSESSMENT)
    body = assert_problem(api.post(path, "rev-sg", json={"trigger": "accept"},
                                   headers={"If-Match": f'"{reviewed["version"]}"'}), 403)
    assert rules(body) == ["four_eyes"] and "rev-sg" in body["detail"]
    body = assert_problem(api.post(path, "rev-sg", json={"trigger": "reject", "comment": "No."},
                                   headers={"If-Match": f'"{reviewed["version"]}"'}), 403)
    assert rules(body) == ["four_eyes"]
    assert api.read(n["id"])["state"] == "reviewed"


def test_422_names_each_rule_that_refuses(api):
    draft = api.create(data={"city_name": "Makassar"})
    body = assert_problem(api.post(f"nominations/{draft['id']}/transitions", "sub-id", json={"trigger": "submit"},
                                   headers={"If-Match": '"1"'}), 422, "Refused by the rules of the process")
    assert rules(body) == ["complete"]
    assert "csco_name" in body["detail"] and "vision" in body["detail"]

    n = api.walk("submitted", "Banyuwangi")
    path = f"nominations/{n['id']}/transitions"
    version = {"If-Match": f'"{n["version"]}"'}
    body = assert_problem(api.post(path, "rev-sg", json={"trigger": "review"}, headers=version), 422)
    assert rules(body) == ["checks_finished", "assessment_required"]
    body = assert_problem(api.post(path, "rev-sg", json={"trigger": "return_for_revision", "comment": "  "},
                                   headers=version), 422)
    assert rules(body) == ["comment_required"]
    api.run_worker()
    n = api.read(n["id"])
    body = assert_problem(api.post(path, "rev-sg", headers={"If-Match": f'"{n["version"]}"'}, json={
        "trigger": "review", "assessment": {**ASSESSMENT, "scores": {"civic_social": 4}}}), 422)
    assert rules(body) == ["assessment_complete"] and "quality_environment" in body["detail"]
    reviewed = api.fire(n, "review", "rev-sg", assessment=ASSESSMENT)
    body = assert_problem(api.post(path, "rev-ph", json={"trigger": "reject"},
                                   headers={"If-Match": f'"{reviewed["version"]}"'}), 422)
    assert rules(body) == ["reason_required"]
    accepted = api.fire(reviewed, "accept", "rev-ph")
    # an operator may hand over, but not before the package was delivered
    body = assert_problem(api.post(path, "ops", json={"trigger": "hand_over"},
                                   headers={"If-Match": f'"{accepted["version"]}"'}), 422)
    assert rules(body) == ["package_delivered"]


def test_the_per_state_limit_and_a_closed_cycle_refuse_submit(api, clock):
    for city in ("Banyuwangi", "DKI Jakarta", "Makassar"):
        api.walk("submitted", city)
    fourth = api.create(data=complete_draft("Sumedang"))
    body = assert_problem(api.post(f"nominations/{fourth['id']}/transitions", "sub-id", json={"trigger": "submit"},
                                   headers={"If-Match": '"1"'}), 422)
    assert rules(body) == ["within_state_limit"] and "3" in body["detail"]
    clock.now = datetime(2027, 1, 2, tzinfo=timezone.utc)
    api.new_tokens()
    body = assert_problem(api.post(f"nominations/{fourth['id']}/transitions", "sub-id", json={"trigger": "submit"},
                                   headers={"If-Match": '"1"'}), 422)
    assert rules(body) == ["cycle_open", "within_state_limit"]


def test_an_admins_override_lets_a_fourth_city_in(api):
    for city in ("Banyuwangi", "DKI Jakarta", "Makassar"):
        api.walk("submitted", city)
    response = api.put("cycles/ASCN-2026/overrides/ID", "root",
                       json={"limit": 4, "reason": "Placeholder reason: a fourth pilot city."})
    assert response.status_code == 200
    assert response.get_json()["limit"] == 4 and response.get_json()["set_by"] == "root"
    assert api.walk("submitted", "Sumedang")["state"] == "submitted"
    cycle = next(c for c in api.get("cycles").get_json() if c["code"] == "ASCN-2026")
    assert cycle["overrides"] == [{**response.get_json()}]


def test_the_whole_workflow_over_http_with_its_audit_trail(api):
    n = api.walk("handed_over")
    assert n["state"] == "handed_over" and n["reviewed_by"] == "rev-sg" and n["assessment"] == ASSESSMENT
    response = api.get(f"nominations/{n['id']}/events", "sub-id")
    assert response.status_code == 200
    events = response.get_json()["items"]
    assert [e["name"] for e in events] == ["nomination.created", "nomination.submitted", "checks.completed",
                                           "nomination.reviewed", "nomination.accepted", "nomination.handed_over"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["actor"] == "sub-id" and events[-1]["actor"] == "system"
    assert [(e["from_state"], e["to_state"]) for e in events if e["name"] == "nomination.accepted"] == \
        [("reviewed", "accepted")]
    for before, after in zip(events, events[1:]):
        assert after["prev_hash"] == before["hash"]
    assert len({e["hash"] for e in events}) == len(events)
    checks = api.get(f"nominations/{n['id']}/checks", "rev-ph").get_json()["items"]
    assert {c["name"] for c in checks} >= {"completeness", "state_limit", "duplicate_city", "focus_areas_covered"}
    assert all(c["outcome"] == "passed" for c in checks if c["blocking"])


def test_return_for_revision_and_withdraw(api):
    n = api.walk("checked")
    returned = api.fire(n, "return_for_revision", "rev-ph", comment="Placeholder: name the project owners.")
    assert returned["state"] == "drafted" and returned["checks_outcome"] is None
    events = api.get(f"nominations/{n['id']}/events", "sub-id").get_json()["items"]
    assert events[-1]["name"] == "nomination.returned"
    assert events[-1]["comment"] == "Placeholder: name the project owners."
    withdrawn = api.fire(returned, "withdraw", "sub-id2")
    assert withdrawn["state"] == "withdrawn" and withdrawn["allowed_triggers"] == []


# --- Idempotency-Key ------------------------------------------------------------------------


def test_a_retried_create_with_the_same_key_creates_nothing_new(api):
    key = {"Idempotency-Key": "retry-" + uuid.uuid4().hex}
    first = api.post("nominations", "sub-id", json=complete_draft(), headers=key)
    assert first.status_code == 201
    before = count(api, t.nominations), count(api, t.events), count(api, t.outbox)
    second = api.post("nominations", "sub-id", json=complete_draft(), headers=key)
    assert second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["ETag"] == first.headers["ETag"] == '"1"'
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert (count(api, t.nominations), count(api, t.events), count(api, t.outbox)) == before == (1, 1, 1)
    # the same key with another body is a conflict; another user's same key is their own
    body = assert_problem(api.post("nominations", "sub-id", json=complete_draft("Makassar"), headers=key), 409)
    assert "Idempotency-Key" in body["detail"]
    other = api.post("nominations", "sub-id2", json=complete_draft("Makassar"), headers=key)
    assert other.status_code == 201 and other.get_json()["id"] != first.get_json()["id"]
    assert count(api, t.nominations) == 2


def test_a_refused_create_does_not_spend_the_key(api):
    key = {"Idempotency-Key": "k-" + uuid.uuid4().hex}
    assert_problem(api.post("nominations", "sub-id", json=complete_draft(member_state="TH"), headers=key), 403)
    response = api.post("nominations", "sub-id", json=complete_draft(member_state="TH"), headers=key)
    assert_problem(response, 403)  # refused again, not replayed, not a conflict
    assert count(api, t.nominations) == 0
    body = assert_problem(api.post("nominations", "sub-id", json=complete_draft(),
                                   headers={"Idempotency-Key": "k" * 201}), 422)
    assert set(body["errors"]) == {"Idempotency-Key"}
    assert count(api, t.nominations) == 0


# --- attachments ----------------------------------------------------------------------------


def test_a_pdf_is_attached_and_downloaded_by_those_who_may_see_it(api):
    n = api.create()
    response = upload(api, n)
    assert response.status_code == 201
    attachment = response.get_json()
    assert attachment["kind"] == "action_plan" and attachment["filename"] == "action-plan.pdf"
    assert attachment["size"] == len(PDF) and attachment["sha256"] == hashlib.sha256(PDF).hexdigest()
    n = api.read(n["id"], "sub-id")
    assert [a["id"] for a in n["attachments"]] == [attachment["id"]] and n["version"] == 2
    path = f"nominations/{n['id']}/attachments/{attachment['id']}"
    status, mimetype, headers, data = download(api, path, "sub-id2")
    assert (status, mimetype, data) == (200, "application/pdf", PDF)
    disposition = headers["Content-Disposition"]
    assert disposition.startswith("attachment") and "action-plan.pdf" in disposition
    assert_problem(api.get(path, "rev-sg"), 404)  # a draft is not the reviewers' yet
    assert_problem(api.get(path, "sub-th"), 404)
    assert_problem(api.get(f"nominations/{n['id']}/attachments/{attachment['id'] + 1}", "sub-id"), 404)
    submitted = api.fire(n, "submit", "sub-id")
    assert download(api, path, "rev-sg")[::3] == (200, PDF)
    assert_problem(api.get(path, "sub-th"), 404)
    body = assert_problem(upload(api, submitted), 422)
    assert rules(body) == ["editable_only_when_drafted"]


def test_an_attachment_must_be_a_pdf_by_its_content(api):
    n = api.create()
    body = assert_problem(upload(api, n, content=b"GIF89a not a pdf at all", filename="plan.pdf"), 422)
    assert set(body["errors"]) == {"file"} and "PDF" in body["errors"]["file"][0]
    body = assert_problem(upload(api, n, kind="holiday_photos"), 422)
    assert set(body["errors"]) == {"kind"}
    body, content_type = multipart({"kind": "action_plan"}, {})
    body = assert_problem(api.post(f"nominations/{n['id']}/attachments", "sub-id", data=body,
                                   content_type=content_type), 422)
    assert set(body["errors"]) == {"file"}
    assert_problem(api.post(f"nominations/{n['id']}/attachments", "sub-id", data=PDF,
                            content_type="application/pdf"), 415)
    assert_problem(upload(api, n, username="sub-th"), 404)
    assert_problem(upload(api, n, **{"If-Match": '"9"'}), 412)
    assert api.read(n["id"])["attachments"] == [] and count(api, t.attachments) == 0


def test_an_upload_over_the_limits_gets_413(sqlite_api):
    n = sqlite_api.create()
    over_attachment_limit = PDF[:-6] + b" " * (8 * MIB) + b"%%EOF\n"  # 8 MiB and a little: under 10 MiB
    body = assert_problem(upload(sqlite_api, n, content=over_attachment_limit), 413)
    assert "8 MiB" in body["detail"]
    assert_problem(upload(sqlite_api, n, content=b"%PDF-1.4\n" + b" " * (11 * MIB) + b"%%EOF\n"), 413)
    assert count(sqlite_api, t.attachments) == 0
    exactly = PDF[:-6] + b" " * (8 * MIB - len(PDF)) + b"%%EOF\n"
    assert len(exactly) == 8 * MIB
    assert upload(sqlite_api, n, content=exactly).status_code == 201


# --- events and checks ----------------------------------------------------------------------


def test_events_and_checks_of_a_submission(api):
    n = api.walk("submitted")
    assert api.get(f"nominations/{n['id']}/checks", "sub-id").get_json() == {"items": []}
    api.run_worker()
    checks = api.get(f"nominations/{n['id']}/checks", "rev-sg").get_json()["items"]
    assert [c["name"] for c in checks] == ["completeness", "state_limit", "duplicate_city", "focus_areas_covered"]
    assert all(set(c) == {"name", "outcome", "blocking", "message", "ran_at"} for c in checks)
    events = api.get(f"nominations/{n['id']}/events", "rev-sg").get_json()["items"]
    assert [e["name"] for e in events] == ["nomination.created", "nomination.submitted", "checks.completed"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", e["hash"]) for e in events)
    assert_problem(api.get(f"nominations/{n['id']}/events", "sub-th"), 404)
    assert_problem(api.get(f"nominations/{n['id']}/checks", "sub-th"), 404)


# --- reference data, workflow, documents ----------------------------------------------------


def test_member_states_and_cycles(sqlite_api):
    states = sqlite_api.get("member-states").get_json()
    assert [(s["code"], s["name"]) for s in states] == sorted((m["code"], m["name"]) for m in ascn()["member_states"])
    assert "lead_agency_webhook_secret" not in states[0]
    cycles = sqlite_api.get("cycles").get_json()
    assert [c["code"] for c in cycles] == ["ASCN-2026"] and cycles[0]["limit_per_state"] == 3


def test_the_workflow_lists_seven_states_and_seven_triggers(sqlite_api):
    response = sqlite_api.get("workflow")
    assert response.status_code == 200
    body = response.get_json()
    assert body["states"] == ["drafted", "submitted", "reviewed", "accepted", "handed_over", "rejected", "withdrawn"]
    assert body["initial"] == "drafted"
    assert set(body["terminal"]) == {"handed_over", "rejected", "withdrawn"}
    triggers = {tr["trigger"]: tr for tr in body["triggers"]}
    assert set(triggers) == {"submit", "return_for_revision", "review", "accept", "reject", "withdraw", "hand_over"}
    assert (triggers["submit"]["from"], triggers["submit"]["to"]) == (["drafted"], "submitted")
    assert sorted(triggers["return_for_revision"]["from"]) == ["reviewed", "submitted"]
    assert [p["rule"] for p in triggers["accept"]["permissions"]] == ["reviewer", "reviewer_not_of_member_state",
                                                                      "four_eyes"]
    assert [r["rule"] for r in triggers["submit"]["rules"]] == ["complete", "cycle_open", "within_state_limit"]
    assert all(tr["who"] and tr["event"].startswith("nomination.") for tr in body["triggers"])


def test_the_openapi_document(sqlite_api):
    response = sqlite_api.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    spec = response.get_json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "scn-workflow"
    paths = spec["paths"]
    for path in ("/api/v1/tokens", "/api/v1/member-states", "/api/v1/cycles", "/api/v1/workflow",
                 "/api/v1/nominations", "/api/v1/nominations/{nomination_id}",
                 "/api/v1/nominations/{nomination_id}/transitions", "/api/v1/nominations/{nomination_id}/events",
                 "/api/v1/nominations/{nomination_id}/checks", "/api/v1/nominations/{nomination_id}/attachments",
                 "/api/v1/users", "/api/v1/cycles/{code}/overrides/{member_state}", "/api/v1/member-states/{code}",
                 "/api/v1/webhooks", "/api/v1/ops/queues", "/api/v1/ops/failures"):
        assert path in paths, path
    transitions = paths["/api/v1/nominations/{nomination_id}/transitions"]["post"]["responses"]
    assert {"200", "403", "409", "412", "422", "428"} <= set(transitions)
    # every documented error is problem+json, the default one included; but the 414 of a URL too long for
    # the HTTP server, which answers it before the service (test_schemathesis.py sends one)
    for operations in paths.values():
        for operation in operations.values():
            for status, answer in (operation.get("responses", {}) if isinstance(operation, dict) else {}).items():
                if "$ref" in answer:
                    answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
                if status == "414":
                    assert set(answer["content"]) == {"text/html"}, answer
                elif status.startswith(("4", "5")) or status == "default":
                    assert set(answer.get("content", {})) == {PROBLEM}, (status, answer)


def test_the_docs_page_loads_nothing_from_another_host(sqlite_api):
    response = sqlite_api.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert 'url: "/api/openapi.json"' in page  # the spec, from this host
    external = [url for url in re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", page) if urlsplit(url).netloc]
    assert external == []
    # Swagger UI would otherwise show a badge loaded from validator.swagger.io (told the spec's URL)
    assert re.search(r'override_config = \{[^}]*"validatorUrl": null', page)
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)
    assert len(assets) == 3 and all(a.startswith("/api/docs/assets/") for a in assets), assets
    for asset in assets:
        status, mimetype, _, data = download(sqlite_api, asset, None)
        assert status == 200 and data, asset


# --- lists: pagination, filters, search -----------------------------------------------------


def test_pagination_links_and_totals(api, clock):
    for i in range(5):
        api.create("sub-id", complete_draft(f"Placeholder City {i}"))
        clock.advance(seconds=1)
    page1 = api.get("nominations?per_page=2", "sub-id").get_json()
    assert page1["total"] == 5 and (page1["page"], page1["per_page"]) == (1, 2)
    assert [n["city_name"] for n in page1["items"]] == ["Placeholder City 4", "Placeholder City 3"]
    links = page1["links"]
    assert links["prev"] is None
    assert parse_qs(urlsplit(links["next"]).query) == {"page": ["2"], "per_page": ["2"]}
    assert parse_qs(urlsplit(links["last"]).query)["page"] == ["3"]
    seen = [n["id"] for n in page1["items"]]
    following = links["next"]
    while following:
        page = api.get(following, "sub-id").get_json()
        seen += [n["id"] for n in page["items"]]
        following = page["links"]["next"]
    assert len(seen) == len(set(seen)) == 5
    assert page["page"] == 3 and len(page["items"]) == 1 and page["links"]["prev"].endswith("page=2&per_page=2")
    beyond = api.get("nominations?page=9&per_page=2", "sub-id").get_json()
    assert beyond["items"] == [] and beyond["total"] == 5
    for query in ("per_page=101", "page=0", "state=approved", "page=two"):
        assert_problem(api.get(f"nominations?{query}", "sub-id"), 422)


def test_filters_and_search(api):
    api.walk("submitted", "Banyuwangi")
    api.create("sub-id", complete_draft("Makassar", region="Sulawesi Selatan (placeholder)"))
    api.create("sub-th", complete_draft("Chiang Mai"))
    assert api.get("nominations?state=submitted", "sub-id").get_json()["total"] == 1
    assert api.get("nominations?q=makassar", "sub-id").get_json()["items"][0]["city_name"] == "Makassar"
    assert api.get("nominations?q=SULAWESI", "sub-id").get_json()["total"] == 1
    assert api.get("nominations?q=indonesia", "root").get_json()["total"] == 2
    assert api.get("nominations?q=th", "root").get_json()["total"] == 1  # a member state code, exactly
    assert api.get("nominations?q=%25", "root").get_json()["total"] == 0  # a literal %, not a wildcard
    assert api.get("nominations?member_state=TH", "root").get_json()["total"] == 1
    assert api.get("nominations?cycle=ASCN-2026&state=drafted", "root").get_json()["total"] == 2
    # what each role sees: its own member state; reviewers only what was submitted
    assert {n["city_name"] for n in api.get("nominations", "sub-th").get_json()["items"]} == {"Chiang Mai"}
    assert {n["city_name"] for n in api.get("nominations", "rev-sg").get_json()["items"]} == {"Banyuwangi"}
    assert api.get("nominations?q=makassar", "rev-sg").get_json()["total"] == 0
    assert api.get("nominations", "ops").get_json()["total"] == 1  # an operator: never a draft


# --- admins ---------------------------------------------------------------------------------


def test_admins_create_users(api):
    response = api.post("users", "root", json={"username": "submitter-vn", "password": "a-long-password",
                                               "email": "submitter-vn@test.example", "role": "submitter",
                                               "member_state": "VN"})
    assert response.status_code == 201
    assert response.get_json() == {"username": "submitter-vn", "name": None, "email": "submitter-vn@test.example",
                                   "role": "submitter", "member_state": "VN", "language": None, "active": True}
    assert api.post("tokens", json={"username": "submitter-vn", "password": "a-long-password"}).status_code == 201
    assert_problem(api.post("users", "root", json={"username": "submitter-vn", "password": "a-long-password",
                                                   "email": "x@test.example", "role": "submitter",
                                                   "member_state": "VN"}), 409)
    body = assert_problem(api.post("users", "root", json={"username": "X", "password": "short", "email": "no",
                                                          "role": "king"}), 422)
    assert set(body["errors"]) == {"username", "password", "email", "role"}
    body = assert_problem(api.post("users", "root", json={"username": "sub-zz", "password": "a-long-password",
                                                          "email": "zz@test.example", "role": "submitter",
                                                          "member_state": "ZZ"}), 422)
    assert set(body["errors"]) == {"member_state"}


def test_admins_open_cycles(api):
    cycle = {"code": "ASCN-2027", "name": "2027 call (placeholder dates)", "opens_at": "2027-01-01T00:00:00Z",
             "closes_at": "2028-01-01T00:00:00Z", "limit_per_state": 3, "requires_action_plan": True}
    response = api.post("cycles", "root", json=cycle)
    assert response.status_code == 201
    assert response.get_json()["code"] == "ASCN-2027" and response.get_json()["requires_action_plan"] is True
    assert "ASCN-2027" in [c["code"] for c in api.get("cycles").get_json()]
    assert_problem(api.post("cycles", "root", json=cycle), 409)
    body = assert_problem(api.post("cycles", "root", json={**cycle, "code": "ASCN-2028",
                                                           "closes_at": "2026-01-01T00:00:00Z"}), 422)
    assert set(body["errors"]) == {"closes_at"}
    body = assert_problem(api.post("cycles", "root", json={**cycle, "code": "ASCN-2029",
                                                           "opens_at": "2029-01-01T00:00:00"}), 422)
    assert set(body["errors"]) == {"opens_at"}  # a time without its zone is ambiguous
    body = assert_problem(api.put("cycles/ASCN-1999/overrides/ID", "root", json={"limit": 4, "reason": "why not"}),
                          404)
    assert "ASCN-1999" in body["detail"]
    assert_problem(api.put("cycles/ASCN-2026/overrides/ZZ", "root", json={"limit": 4, "reason": "why not"}), 404)
    body = assert_problem(api.put("cycles/ASCN-2026/overrides/ID", "root", json={"limit": 0}), 422)
    assert set(body["errors"]) == {"limit", "reason"}


def test_admins_set_lead_agencies_and_subscribe_webhooks(api):
    response = api.patch("member-states/TH", "root", json={
        "lead_agency_name": "Placeholder agency", "lead_agency_email": "lead-agency@th.example",
        "lead_agency_webhook_url": "https://receiver.example/th", "lead_agency_webhook_secret": "s" * 20})
    assert response.status_code == 200
    body = response.get_json()
    assert body["lead_agency_email"] == "lead-agency@th.example" and "lead_agency_webhook_secret" not in body
    th = next(s for s in api.get("member-states").get_json() if s["code"] == "TH")
    assert th["lead_agency_name"] == "Placeholder agency"
    assert_problem(api.patch("member-states/ZZ", "root", json={"lead_agency_name": "x"}), 404)
    body = assert_problem(api.patch("member-states/TH", "root", json={"lead_agency_webhook_secret": "short"}), 422)
    assert set(body["errors"]) == {"lead_agency_webhook_secret"}
    response = api.post("webhooks", "root", json={"url": "https://receiver.example/scn", "secret": "s" * 16,
                                                  "events": ["nomination.accepted", "nomination.handed_over"]})
    assert response.status_code == 201
    assert set(response.get_json()) == {"id", "url", "events"}
    body = assert_problem(api.post("webhooks", "root", json={"url": "ftp://x", "secret": "s", "events": ["x"]}), 422)
    assert set(body["errors"]) == {"url", "secret", "events"}


# --- operators ------------------------------------------------------------------------------


def test_operators_see_queues_and_act_on_failures(api):
    n = api.walk("submitted")
    queues = api.get("ops/queues", "ops")
    assert queues.status_code == 200 and queues.get_json()["broker"] == "embedded"
    assert queues.get_json()["queues"][0]["depth"] >= 1  # the submission waits for the worker
    with api.svc.engine.connect() as connection:
        event_id = connection.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == n["id"], t.events.c.name == "nomination.submitted"))
    first = failures.record(api.svc, task="notify", event_id=event_id, arguments=["notifications", event_id],
                            error="placeholder: SMTP refused", attempts=6)
    second = failures.record(api.svc, task="notify", event_id=event_id, arguments=["notifications", event_id],
                             error="placeholder: SMTP refused", attempts=6)
    listed = api.get("ops/failures", "ops").get_json()["items"]
    assert [f["id"] for f in listed] == [first, second] and listed[0]["status"] == "open"
    retried = api.post(f"ops/failures/{first}/retry", "ops")
    assert retried.status_code == 200 and retried.get_json()["status"] == "retried"
    assert retried.get_json()["resolved_by"] == "ops"
    discarded = api.post(f"ops/failures/{second}/discard", "ops")
    assert discarded.status_code == 200 and discarded.get_json()["status"] == "discarded"
    assert api.get("ops/failures", "ops").get_json()["items"] == []
    assert_problem(api.post(f"ops/failures/{first}/discard", "ops"), 409)
    assert_problem(api.post("ops/failures/999999/retry", "ops"), 404)
