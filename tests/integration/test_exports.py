"""CSV exports: the nomination lists, the review desk and the public register, from the pages and
through the API (Accept: text/csv), as a person opens them in a spreadsheet.

Each file is read back with the csv module (utf-8-sig), as a spreadsheet would read it; the rows it
must hold are worked out from the database, not from the export.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import replace

import pytest
import sqlalchemy as sa
from flask_babel import force_locale, gettext

from scn_workflow.db import tables as t
from scn_workflow.services import exports
from scn_workflow.services.seed import REVIEWERS
from scn_workflow import labels
from tests.api_support import API, api, assert_problem, sign_in  # noqa: F401
from tests.conftest import USERS
from tests.integration.live import live_server, start_live_server  # noqa: F401

FORMULA = '=HYPERLINK("http://x")'
PERSONAL = {"csco_name": "+62 Siti Officer", "csco_email": "siti@kota.example"}


def read_csv(response) -> list[dict]:
    """The rows of a CSV answer, by header, as a spreadsheet opens the file."""
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_data()
    assert body.startswith(codecs.BOM_UTF8), body[:20]
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def references(rows: list[dict]) -> list[str]:
    return [row["Reference"] for row in rows]


def in_database(svc, *where) -> list[str]:
    """The references that match `where`, oldest first: what an export must hold."""
    n = t.nominations.c
    with svc.engine.connect() as c:
        return list(c.scalars(sa.select(n.reference).where(*where).order_by(n.id)))


@pytest.fixture
def lists(api):  # noqa: F811 - the fixture of tests/api_support.py
    """Nominations of Indonesia and Thailand in most states, one city named as a formula, the
    CSCO's details that would be a formula too, and a non-ASCII region."""
    api.walk("drafted", FORMULA, **PERSONAL, region="Kepulauan Riau · Tanjungpinang")
    api.walk("submitted", "Makassar")
    api.walk("reviewed", "DKI Jakarta")
    api.walk("accepted", "Banyuwangi", **PERSONAL)
    api.walk("withdrawn", "Sumedang")
    api.walk("drafted", "Phuket", username="sub-th")
    api.walk("submitted", "Chiang Mai", username="sub-th")
    api.walk("accepted", "Bangkok", username="sub-th")
    return api


def test_a_formula_in_any_cell_is_text_in_the_spreadsheet(lists):
    rows = read_csv(sign_in(lists.app, "root").get("/nominations.csv"))
    formula = next(row for row in rows if row["City"].endswith(FORMULA))
    assert formula["City"] == "'" + FORMULA  # a spreadsheet shows the text; it does not follow the link
    assert formula["Chief Smart City Officer's name"] == "'+62 Siti Officer"
    assert formula["Province or region"] == "Kepulauan Riau · Tanjungpinang"
    assert all(not value.startswith(exports.FORMULA_STARTS) for row in rows for value in row.values())


@pytest.mark.parametrize("value, cell", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\r=1", "'\r=1"), ("Makassar", "Makassar"), ("", ""), (None, ""), ("a=1", "a=1"), (42, "42"),
])
def test_cells_a_spreadsheet_would_evaluate_get_a_quote(value, cell):
    assert exports.neutralised(value) == cell


def test_the_admin_list_exports_every_filtered_row_and_no_other(lists):
    n = t.nominations.c
    # Batches of 2: every row is read, across many batches, not only the page the list shows.
    lists.svc.settings = replace(lists.svc.settings, export_batch=2)
    admin = sign_in(lists.app, "root")
    everything = read_csv(admin.get("/nominations.csv"))
    assert references(everything) == in_database(lists.svc)
    assert len(everything) == 8

    indonesia = read_csv(admin.get("/nominations.csv?member_state=ID&cycle=ASCN-2026"))
    assert references(indonesia) == in_database(lists.svc, n.member_state == "ID") and len(indonesia) == 5
    assert {row["Member state"] for row in indonesia} == {"Indonesia"}
    assert {row["Cycle"] for row in indonesia} == {"ASCN-2026"}

    accepted = read_csv(admin.get("/nominations.csv?state=accepted"))
    assert [row["City"] for row in accepted] == ["Bangkok"]
    assert accepted[0]["State"] == "Accepted"  # in words, not the code
    handed_over = read_csv(admin.get("/nominations.csv?state=handed_over"))  # the worker handed Banyuwangi over
    assert [(row["City"], row["State"]) for row in handed_over] == [("Banyuwangi", "Handed over")]

    searched = read_csv(admin.get("/nominations.csv?q=makas"))
    assert [row["City"] for row in searched] == ["Makassar"]
    assert read_csv(admin.get("/nominations.csv?cycle=ASCN-1999")) == []
    # A filter the list refuses is refused by its download too, naming the parameter.
    refused = admin.get("/nominations.csv?member_state=Indonesia")
    assert refused.status_code == 400 and "member_state" in refused.get_data(as_text=True)


def test_the_file_is_utf8_with_a_bom_and_readable_headers(lists):
    response = sign_in(lists.app, "root").get("/nominations.csv?state=submitted")
    assert response.mimetype == "text/csv"
    assert re.fullmatch(r'attachment; filename="nominations-\d{4}-\d{2}-\d{2}\.csv"',
                        response.headers["Content-Disposition"])
    body = response.get_data()
    assert body.startswith(codecs.BOM_UTF8 + b"Reference,City,Province or region,Member state,Cycle,State,")
    rows = read_csv(response)
    submitted = next(row for row in rows if row["City"] == "Makassar")
    assert submitted["State"] == "Submitted"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", submitted["Submitted on"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", submitted["Last updated on"])


def test_a_submitters_file_holds_its_member_state_only(lists):
    n = t.nominations.c
    thai = sign_in(lists.app, "sub-th")
    rows = read_csv(thai.get("/nominations.csv"))
    assert references(rows) == in_database(lists.svc, n.member_state == "TH") and len(rows) == 3
    assert {row["Member state"] for row in rows} == {"Thailand"}
    # Asking for another member state's rows finds none (the filter narrows what it may see).
    assert read_csv(thai.get("/nominations.csv?member_state=ID")) == []


def test_operators_and_reviewers_export_what_their_lists_show(lists):
    n = t.nominations.c
    operator = read_csv(sign_in(lists.app, "ops").get("/nominations.csv"))
    assert references(operator) == in_database(lists.svc, n.submitted_at.is_not(None), n.state != "drafted")
    assert "Draft" not in {row["State"] for row in operator}
    assert FORMULA not in " ".join(row["City"] for row in operator)
    reviewer = read_csv(sign_in(lists.app, "rev-sg").get("/nominations.csv"))
    assert references(reviewer) == in_database(lists.svc, n.submitted_at.is_not(None))


def test_the_review_desk_exports_its_filters(lists):
    n = t.nominations.c
    desk = sign_in(lists.app, "rev-sg")
    both = read_csv(desk.get("/review.csv"))
    assert references(both) == in_database(lists.svc, n.state.in_(("submitted", "reviewed")))
    assert {row["City"] for row in both} == {"Makassar", "DKI Jakarta", "Chiang Mai"}
    assert [row["City"] for row in read_csv(desk.get("/review.csv?state=reviewed"))] == ["DKI Jakarta"]
    assert [row["City"] for row in read_csv(desk.get("/review.csv?state=submitted&member_state=TH"))] == [
        "Chiang Mai"]
    assert sign_in(lists.app, "sub-id").get("/review.csv").status_code == 403


def test_the_public_register_has_no_personal_data(lists):
    n = t.nominations.c
    response = lists.app.test_client().get("/register.csv")
    rows = read_csv(response)
    assert references(rows) == in_database(lists.svc, n.state.in_(("accepted", "handed_over")))
    assert {row["City"] for row in rows} == {"Banyuwangi", "Bangkok"}
    assert list(rows[0]) == ["Reference", "City", "Province or region", "Member state", "Cycle", "State",
                             "Submitted on", "Last updated on"]
    body = response.get_data(as_text=True)
    for personal in (*PERSONAL.values(), "Test Officer", "csco@banyuwangi.example", *(u for u, _, _ in USERS)):
        assert personal not in body
    assert [row["City"] for row in read_csv(lists.app.test_client().get("/register.csv?q=bangk"))] == ["Bangkok"]


def test_each_list_page_links_to_its_download_with_its_filters(lists):
    admin = sign_in(lists.app, "root")
    page = admin.get("/nominations?state=accepted&member_state=TH&q=bang").get_data(as_text=True)
    link = re.search(r'<a href="(/nominations\.csv\?[^"]+)"', page).group(1).replace("&amp;", "&")
    assert [row["City"] for row in read_csv(admin.get(link))] == ["Bangkok"]
    desk = admin.get("/review?state=reviewed").get_data(as_text=True)
    assert re.search(r'href="/review\.csv\?state=reviewed"', desk)
    register = lists.app.test_client().get("/?q=bang").get_data(as_text=True)
    assert re.search(r'href="/register\.csv\?q=bang"', register)


def test_the_file_speaks_the_readers_language(lists):
    """Headers, states and member states follow the page's locale (the API's: Accept-Language)."""
    with lists.app.test_request_context(), force_locale("id"):
        indonesian = exports.headers(public=True)
        public_states = {labels.state_label(s) for s in ("accepted", "handed_over")}
        thailand = gettext("Thailand")
    with lists.app.test_request_context():
        assert indonesian != exports.headers(public=True)  # the catalogue translates them
    response = lists.app.test_client().get("/register.csv", headers={"Accept-Language": "id"})
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0] == indonesian
    assert {row[5] for row in rows[1:]} == public_states and "Accepted" not in public_states
    assert thailand in {row[3] for row in rows[1:]}
    api_rows = list(csv.reader(io.StringIO(lists.get("nominations", "root", headers={
        "Accept": "text/csv", "Accept-Language": "id"}).get_data().decode("utf-8-sig"))))
    with lists.app.test_request_context(), force_locale("id"):
        assert api_rows[0] == exports.headers(public=False)


# --- the API ---------------------------------------------------------------------------------------------


def test_the_api_returns_the_same_rows_as_csv(lists):
    n = t.nominations.c
    for username, query, where in [("root", "state=handed_over", n.state == "handed_over"),
                                   ("root", "member_state=ID&q=a", n.member_state == "ID"),
                                   ("sub-th", "", n.member_state == "TH"),
                                   ("sub-th", "member_state=ID", n.id < 0)]:
        response = lists.get(f"nominations?{query}&per_page=1", username, headers={"Accept": "text/csv"})
        assert response.mimetype == "text/csv"
        rows = read_csv(response)  # every row, although a page of the JSON list holds one
        pages, page = [], 1
        while True:
            listed = lists.get(f"nominations?{query}&per_page=100&page={page}", username).get_json()
            pages += [item["reference"] for item in listed["items"]]
            if not listed["links"]["next"]:
                break
            page += 1
        assert sorted(references(rows)) == sorted(pages), (username, query)
        expected = [r for r in in_database(lists.svc, where) if r in pages]
        assert references(rows) == expected, (username, query)


def test_the_api_answers_json_unless_csv_is_asked_for(lists):
    assert lists.get("nominations", "root").mimetype == "application/json"
    assert lists.get("nominations", "root", headers={"Accept": "*/*"}).mimetype == "application/json"
    assert lists.get("nominations", "root", headers={"Accept": "text/csv;q=0.5, application/json"}
                     ).mimetype == "application/json"
    # A filter the list refuses is refused in CSV too, with the field named.
    body = assert_problem(lists.get("nominations?state=lost", "root", headers={"Accept": "text/csv"}), 422)
    assert "state" in str(body["errors"])
    assert lists.get("nominations", headers={"Accept": "text/csv"}).status_code == 401


def test_the_csv_answer_is_in_the_openapi_description(api):  # noqa: F811
    spec = api.get("/api/openapi.json").get_json()
    answer = spec["paths"]["/api/v1/nominations"]["get"]["responses"]["200"]["content"]
    assert set(answer) == {"application/json", "text/csv"}
    assert "text/csv" in spec["paths"]["/api/v1/nominations"]["get"]["description"]


# --- over HTTP, a real server on PostgreSQL -----------------------------------------------------------------


def test_csv_over_http_from_a_real_server(live_server):  # noqa: F811
    import requests
    admin = live_server.api("admin")
    admin.headers["Accept"] = "text/csv"
    response = admin.get(live_server.url + API + "/nominations", timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert response.content.startswith(codecs.BOM_UTF8)
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    svc = live_server.services()
    try:
        assert references(rows) == in_database(svc)
        submitter = live_server.api("submitter-id")
        mine = submitter.get(live_server.url + API + "/nominations", headers={"Accept": "text/csv"}, timeout=30)
        own = list(csv.DictReader(io.StringIO(mine.content.decode("utf-8-sig"), newline="")))
        assert own and references(own) == in_database(svc, t.nominations.c.member_state == "ID")
    finally:
        svc.engine.dispose()
    public = requests.get(live_server.url + "/register.csv", timeout=30)
    assert public.status_code == 200 and public.content.startswith(codecs.BOM_UTF8)
    for name in ("admin", "operator", "submitter-id", *(u for u, _ in REVIEWERS)):
        assert name not in public.text
