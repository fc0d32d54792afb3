"""Hostile input over HTTP against a real server (gunicorn) on PostgreSQL: every answer is a
4xx that names what is wrong, small whatever the size of the input; never a 5xx.

Each test sends what an attacker would: chunked bodies over the limit, a megabyte of bad items,
JSON nested 100000 deep, digits outside ASCII ('²'), lone surrogates, NUL bytes, values longer
than their columns, ids beyond a column's range and repeated items.
"""

from __future__ import annotations

import json

import pytest
import requests

from scn_workflow.services.seed import DEMO_PASSWORD
from tests.integration import live
from tests.integration.live import Browser, csrf_of, live_server, start_live_server  # noqa: F401

TIMEOUT = 30
REVIEWER = "reviewer-sg"  # of another member state than submitter-id's


_SESSIONS: dict[tuple[str, str], requests.Session] = {}


def api_of(server, username: str) -> requests.Session:
    """One token per user and server: sign-in is rate-limited per address and username."""
    key = (server.url, username)
    if key not in _SESSIONS:
        _SESSIONS[key] = server.api(username)
    return _SESSIONS[key]


def problem_of(response) -> dict:
    assert response.headers["Content-Type"].startswith("application/problem+json"), response.text[:300]
    return response.json()


def leaves(errors) -> int:
    """How many messages a problem's `errors` holds (nested by field, then list position)."""
    if isinstance(errors, dict):
        return sum(leaves(v) for v in errors.values())
    if isinstance(errors, list) and not any(isinstance(v, (dict, list)) for v in errors):
        return len(errors)
    return sum(leaves(v) for v in errors)


def draft(server, api: requests.Session, **content) -> dict:
    body = {"city_name": "Banyuwangi", **content}
    response = api.post(server.url + "/api/v1/nominations", json=body, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return response.json()


# --- size: the body limit counts the bytes read, and answers stay small -----------------------------

def _chunks(total: int, size: int = 64 * 1024):
    yield b'{"username": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'", "password": "x"}'


@pytest.mark.parametrize("path", ["/api/v1/tokens", "/api/v1/nominations"])
def test_a_chunked_body_over_the_limit_is_refused_with_413(live_server, path):
    headers = {"Content-Type": "application/json"}
    if path != "/api/v1/tokens":
        headers["Authorization"] = api_of(live_server, "submitter-id").headers["Authorization"]
    # A generator body goes out with Transfer-Encoding: chunked and no Content-Length.
    response = requests.post(live_server.url + path, data=_chunks(3 * 1024 * 1024), headers=headers,
                             timeout=TIMEOUT)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413, response.text[:300]
    assert problem_of(response)["status"] == 413


def test_a_chunked_body_within_the_limit_is_read(live_server):
    body = json.dumps({"username": "submitter-id", "password": DEMO_PASSWORD}).encode()
    response = requests.post(live_server.url + "/api/v1/tokens", data=iter([body[:10], body[10:]]),
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 201, response.text


def test_a_megabyte_of_unknown_keys_gets_a_small_answer_with_twenty_errors_and_the_total(live_server):
    body = {f"k{i}": 1 for i in range(60_000)}  # about 1 MB; no sign-in needed
    sent = json.dumps(body)
    assert len(sent) > 600_000
    response = requests.post(live_server.url + "/api/v1/tokens", data=sent,
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 422
    assert len(response.content) < 5_000
    problem = problem_of(response)
    assert leaves(problem["errors"]) == 20
    assert problem["error_count"] == 60_002  # the unknown keys, and username and password missing
    assert "and 59982 more" in problem["detail"]


def test_a_megabyte_of_bad_list_items_is_refused_by_its_length_first(live_server):
    api = api_of(live_server, "submitter-id")
    response = api.post(live_server.url + "/api/v1/nominations", timeout=TIMEOUT,
                        json={"city_name": "Banyuwangi", "focus_areas": ["nope"] * 100_000,
                              "projects": [{"nope": 1}] * 10_000})
    assert len(response.request.body) > 900_000
    assert response.status_code == 422
    assert len(response.content) < 2_000
    problem = problem_of(response)
    assert set(problem["errors"]) == {"focus_areas", "projects"}
    assert problem["error_count"] == 2
    assert "at most 6" in problem["errors"]["focus_areas"][0]


def test_every_unknown_key_counts_and_at_most_twenty_are_listed(live_server):
    api = api_of(live_server, "submitter-id")
    body = {"city_name": "Banyuwangi", "projects": [{"title": "x", "focus_area": "nope", f"extra{i}": 1}
                                                      for i in range(50)]}
    response = api.post(live_server.url + "/api/v1/nominations", json=body, timeout=TIMEOUT)
    assert response.status_code == 422
    problem = problem_of(response)
    assert problem["error_count"] == 100  # each project: its focus area and one unknown key
    assert leaves(problem["errors"]) == 20
    assert problem["detail"].endswith("… and 80 more.")


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_refused(live_server, depth):
    api = api_of(live_server, "submitter-id")
    for body in ("[" * depth + "]" * depth, '{"city_name": ' + "[" * depth + "]" * depth + "}",
                 '{"a":' * depth + "1" + "}" * depth):
        for path in ("/api/v1/nominations", "/api/v1/tokens"):
            response = api.post(live_server.url + path, data=body, headers={"Content-Type": "application/json"},
                                timeout=TIMEOUT)
            assert response.status_code in (413, 415, 422), (path, response.status_code, response.text[:300])
            assert len(response.content) < 5_000


# --- numbers: ASCII digits only, within the column ------------------------------------------------

def test_non_ascii_digits_in_if_match_are_a_precondition_failure(live_server):
    api = api_of(live_server, "submitter-id")
    nomination = draft(live_server, api)
    url = f"{live_server.url}/api/v1/nominations/{nomination['id']}"
    # Header values are read as Latin-1: the byte 0xB2 arrives as '²', which str.isdigit() accepts.
    for value in ('"²"', "²", '"¹³"', "W/\"2147483648\"", '"99999999999999999999"'):
        response = api.patch(url, json={"vision": "x"}, headers={"If-Match": value.encode("latin-1")},
                             timeout=TIMEOUT)
        assert response.status_code == 412, (value, response.status_code, response.text[:300])
        assert "If-Match" in problem_of(response)["detail"]


@pytest.mark.parametrize("name", ["page", "per_page"])
@pytest.mark.parametrize("value", ["²", "١", "99999999999999999999", "-1", "1e3"])
def test_non_ascii_digits_in_api_pagination_are_refused_by_name(live_server, name, value):
    api = api_of(live_server, "submitter-id")
    response = api.get(live_server.url + "/api/v1/nominations", params={name: value}, timeout=TIMEOUT)
    assert response.status_code == 422, response.text[:300]
    assert name in problem_of(response)["errors"]


@pytest.mark.parametrize("path", ["/nominations?page=²", "/nominations?page=١", "/review?state=submitted&page=²"])
def test_non_ascii_digits_in_page_numbers_of_pages_are_a_400(live_server, path):
    browser = Browser(live_server, REVIEWER if path.startswith("/review") else "submitter-id")
    response = browser.get(path)
    assert response.status_code == 400, response.text[:300]
    assert "page" in response.text


def test_non_ascii_digits_in_the_population_of_the_form_are_refused_by_name(live_server):
    browser = Browser(live_server, "submitter-id")
    for population in ("²", "١٢٣", "9" * 30):
        response = browser.post("/nominations/new", {"city_name": "Banyuwangi", "population": population,
                                                     "action": "save"}, form_page="/nominations/new")
        assert response.status_code == 422, (population, response.status_code)
        assert "population" in response.text


def test_non_ascii_digits_in_the_version_of_a_form_are_a_400(live_server):
    api = api_of(live_server, "submitter-id")
    nomination = draft(live_server, api)
    browser = Browser(live_server, "submitter-id")
    page = f"/nominations/{nomination['id']}"
    response = browser.post(page + "/fire", {"trigger": "withdraw", "version": "²", "confirm": "yes"}, form_page=page)
    assert response.status_code == 400, response.status_code
    assert "version" in response.text
    edit = browser.post(page + "/edit", {"city_name": "Banyuwangi", "version": "²", "action": "save"},
                        form_page=page + "/edit")
    assert edit.status_code == 400, edit.status_code


def test_non_ascii_digits_in_a_score_are_refused_by_name(live_server):
    submitter = api_of(live_server, "submitter-id")
    nomination = draft(live_server, submitter, vision="A vision.", csco_name="Officer",
                       csco_email="csco@city.example", focus_areas=["civic_social"],
                       projects=[{"title": "P", "focus_area": "civic_social"}])
    submitted = submitter.post(f"{live_server.url}/api/v1/nominations/{nomination['id']}/transitions",
                               json={"trigger": "submit"}, headers={"If-Match": f'"{nomination["version"]}"'},
                               timeout=TIMEOUT)
    assert submitted.status_code == 200, submitted.text
    reviewer = Browser(live_server, REVIEWER)
    page = f"/nominations/{nomination['id']}/review"
    response = reviewer.post(page, {"score-civic_social": "²", "recommendation": "accept", "summary": "Fine.",
                                    "version": str(submitted.json()["version"])}, form_page=page)
    assert response.status_code == 422, response.status_code
    assert "score" in response.text.lower()


@pytest.mark.parametrize("path", ["/api/v1/nominations/99999999999", "/api/v1/nominations/99999999999/events",
                                  "/api/v1/nominations/99999999999/checks",
                                  "/api/v1/nominations/1/attachments/99999999999"])
def test_an_id_beyond_the_column_in_an_api_path_is_404(live_server, path):
    response = api_of(live_server, "admin").get(live_server.url + path, timeout=TIMEOUT)
    assert response.status_code == 404, response.text[:300]
    assert problem_of(response)["status"] == 404


def test_an_id_beyond_the_column_in_a_page_path_is_404(live_server):
    browser = Browser(live_server, "admin")
    assert browser.get("/nominations/99999999999").status_code == 404
    response = api_of(live_server, "admin").post(live_server.url + "/api/v1/ops/failures/99999999999/retry",
                                             timeout=TIMEOUT)
    assert response.status_code == 404, response.text[:300]


# --- strings: no NUL, no lone surrogate, a line is one line, within its column --------------------

def test_a_lone_surrogate_in_json_is_refused_by_name(live_server):
    api = api_of(live_server, "submitter-id")
    response = api.post(live_server.url + "/api/v1/nominations", data=b'{"city_name": "Banyu\\ud800wangi"}',
                        headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 422, response.text[:300]
    assert "city_name" in problem_of(response)["errors"]
    # Its UTF-8-like bytes are not UTF-8, so not JSON
    response = api.post(live_server.url + "/api/v1/nominations", data=b'{"city_name": "Banyu\xed\xa0\x80wangi"}',
                        headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 415, response.text[:300]
    response = requests.post(live_server.url + "/api/v1/tokens", data=b'{"username": "\\udfff", "password": "x"}',
                             headers={"Content-Type": "application/json"}, timeout=TIMEOUT)
    assert response.status_code == 422
    assert "username" in problem_of(response)["errors"]


@pytest.mark.parametrize("field", ["username", "password"])
def test_nul_in_the_token_request_is_refused(live_server, field):
    body = {"username": "submitter-id", "password": DEMO_PASSWORD}
    body[field] = body[field][:3] + "\x00" + body[field][3:]
    response = requests.post(live_server.url + "/api/v1/tokens", json=body, timeout=TIMEOUT)
    assert response.status_code in (401, 422), response.text[:300]
    if response.status_code == 422:
        assert field in problem_of(response)["errors"]


@pytest.mark.parametrize("field", ["username", "password"])
def test_nul_in_the_sign_in_form_is_refused(live_server, field):
    session = live.http_session()
    page = session.get(live_server.url + "/login", timeout=TIMEOUT)
    data = {"username": "submitter-id", "password": DEMO_PASSWORD, "csrf_token": csrf_of(page.text)}
    data[field] = "\x00" + data[field]
    response = session.post(live_server.url + "/login", data=data, timeout=TIMEOUT, allow_redirects=False)
    assert 400 <= response.status_code < 500, response.status_code


def test_a_csrf_token_with_other_characters_is_refused(live_server):
    session = live.http_session()
    session.get(live_server.url + "/login", timeout=TIMEOUT)
    response = session.post(live_server.url + "/login", timeout=TIMEOUT, allow_redirects=False,
                            data={"username": "submitter-id", "password": DEMO_PASSWORD, "csrf_token": "é"})
    assert response.status_code == 400, response.status_code


def test_nul_in_a_search_is_refused_by_name(live_server):
    api = api_of(live_server, "admin")
    for name in ("q", "cycle", "member_state", "state"):
        response = api.get(live_server.url + "/api/v1/nominations", params={name: "a\x00b"}, timeout=TIMEOUT)
        assert response.status_code == 422, (name, response.text[:300])
        assert name in problem_of(response)["errors"]
    browser = Browser(live_server, "admin")
    for name in ("q", "cycle", "member_state"):
        response = browser.get("/nominations", params={name: "a\x00b"})
        assert response.status_code == 400, (name, response.status_code)
        assert name in response.text


@pytest.mark.parametrize("field,value", [("city_name", "Banyu\x00wangi"), ("region", "\x00"),
                                         ("csco_name", "A\x00"), ("csco_email", "a\x00@city.example"),
                                         ("vision", "A vision\x00."), ("city_name", "Banyu\nwangi"),
                                         ("csco_name", "A\rB"), ("city_name", "Banyu\x1bwangi"),
                                         ("city_name", "Banyu\u2028wangi")])
def test_nul_and_control_characters_in_nomination_fields_are_refused_by_name(live_server, field, value):
    api = api_of(live_server, "submitter-id")
    response = api.post(live_server.url + "/api/v1/nominations", json={"city_name": "Banyuwangi", field: value},
                        timeout=TIMEOUT)
    assert response.status_code == 422, response.text[:300]
    assert field in problem_of(response)["errors"]


def test_line_breaks_are_kept_where_text_has_paragraphs(live_server):
    api = api_of(live_server, "submitter-id")
    nomination = draft(live_server, api, vision="First paragraph.\r\n\r\nSecond paragraph.\tTabbed.")
    assert nomination["vision"] == "First paragraph.\r\n\r\nSecond paragraph.\tTabbed."


def test_nul_in_a_project_and_a_transition_comment_is_refused_by_name(live_server):
    api = api_of(live_server, "submitter-id")
    response = api.post(live_server.url + "/api/v1/nominations", timeout=TIMEOUT, json={
        "city_name": "Banyuwangi", "projects": [{"title": "P\x00", "focus_area": "civic_social"}]})
    assert response.status_code == 422
    assert "title" in problem_of(response)["errors"]["projects"]["0"]
    nomination = draft(live_server, api)
    response = api.post(f"{live_server.url}/api/v1/nominations/{nomination['id']}/transitions", timeout=TIMEOUT,
                        json={"trigger": "withdraw", "comment": "\x00"}, headers={"If-Match": '"1"'})
    assert response.status_code == 422
    assert "comment" in problem_of(response)["errors"]


def test_nul_in_the_nomination_form_is_refused(live_server):
    browser = Browser(live_server, "submitter-id")
    response = browser.post("/nominations/new", {"city_name": "Banyu\x00wangi", "action": "save"},
                            form_page="/nominations/new")
    assert response.status_code in (400, 422), response.status_code
    assert "city_name" in response.text


def test_an_overlong_city_name_is_refused_by_name(live_server):
    api = api_of(live_server, "submitter-id")
    response = api.post(live_server.url + "/api/v1/nominations", json={"city_name": "B" * 121}, timeout=TIMEOUT)
    assert response.status_code == 422
    assert "city_name" in problem_of(response)["errors"]
    nomination = draft(live_server, api)
    response = api.patch(f"{live_server.url}/api/v1/nominations/{nomination['id']}", json={"region": "R" * 121},
                         headers={"If-Match": '"1"'}, timeout=TIMEOUT)
    assert response.status_code == 422
    assert "region" in problem_of(response)["errors"]


def test_an_overlong_or_broken_idempotency_key_is_refused_by_name(live_server):
    api = api_of(live_server, "submitter-id")
    for key in ("k" * 201, "a\tb"):
        response = api.post(live_server.url + "/api/v1/nominations", json={"city_name": "Banyuwangi"},
                            headers={"Idempotency-Key": key}, timeout=TIMEOUT)
        assert response.status_code == 422, (key, response.text[:300])
        assert "Idempotency-Key" in problem_of(response)["errors"]


def test_repeated_webhook_events_are_refused_by_name(live_server):
    response = api_of(live_server, "admin").post(live_server.url + "/api/v1/webhooks", timeout=TIMEOUT, json={
        "url": "http://127.0.0.1:9/hook", "secret": "a-shared-secret-of-16+",
        "events": ["nomination.accepted", "nomination.accepted"]})
    assert response.status_code == 422, response.text[:300]
    assert "events" in problem_of(response)["errors"]


def test_repeated_focus_areas_are_refused_by_name(live_server):
    response = api_of(live_server, "submitter-id").post(live_server.url + "/api/v1/nominations", timeout=TIMEOUT,
                                                    json={"city_name": "Banyuwangi",
                                                          "focus_areas": ["civic_social", "civic_social"]})
    assert response.status_code == 422
    assert "focus_areas" in problem_of(response)["errors"]


def test_the_server_logged_no_unhandled_error(live_server):
    """Last in the module: nothing above reached the catch-all handler."""
    assert "unhandled error" not in live_server.log()
