"""Input validation: refusals name each field and say what is wrong with it; good input passes."""

from __future__ import annotations

import pytest

from scn_workflow.domain.errors import InvalidInput
from scn_workflow.schemas.nominations import (AssessmentSchema, NominationContent, NominationCreate,
                                              TransitionRequest, load)


def valid_content(**changes) -> dict:
    data = {
        "city_name": "Banyuwangi", "region": None, "population": 1_000_000,
        "csco_name": "Placeholder Officer", "csco_email": "csco@city.example", "vision": "A placeholder vision.",
        "focus_areas": ["civic_social", "quality_environment"],
        "projects": [{"title": "Placeholder project A", "focus_area": "civic_social",
                      "description": "Placeholder.", "priority": True},
                     {"title": "Placeholder project B", "focus_area": "quality_environment"}],
    }
    data.update(changes)
    return data


def refused(schema, data, **kwargs) -> dict:
    """Load, expect a refusal; return its messages by field."""
    with pytest.raises(InvalidInput) as error:
        load(schema, data, **kwargs)
    assert error.value.status == 422
    assert error.value.fields
    return error.value.fields


def test_valid_content_passes():
    data = load(NominationContent(), valid_content())
    assert data["city_name"] == "Banyuwangi"
    assert data["population"] == 1_000_000
    assert data["projects"][1] == {"title": "Placeholder project B", "focus_area": "quality_environment",
                                   "description": "", "priority": False}


def test_valid_create_passes():
    data = load(NominationCreate(), valid_content(city_name="Makassar", member_state="ID", cycle="ASCN-2026"))
    assert (data["city_name"], data["member_state"], data["cycle"]) == ("Makassar", "ID", "ASCN-2026")


def test_a_partial_edit_passes():
    assert load(NominationContent(), {"vision": "A new placeholder vision."}, partial=True) == {
        "vision": "A new placeholder vision."}


def test_create_needs_a_city():
    fields = refused(NominationCreate(), {"member_state": "ID"})
    assert list(fields) == ["city_name"]


def test_unknown_fields_are_refused_by_name():
    fields = refused(NominationContent(), valid_content(nickname="x", state="accepted"))
    assert set(fields) == {"nickname", "state"}
    assert fields["nickname"] == ["No such field."]


def test_unknown_fields_inside_a_project_are_refused():
    project = {"title": "Placeholder project", "focus_area": "civic_social", "budget": 10}
    fields = refused(NominationContent(), valid_content(projects=[project]))
    assert fields["projects"][0]["budget"] == ["No such field."]


@pytest.mark.parametrize("field, limit", [("city_name", 120), ("region", 120), ("csco_name", 120),
                                          ("vision", 10_000)])
def test_over_long_strings_are_refused(field, limit):
    assert load(NominationContent(), {field: "x" * limit})[field] == "x" * limit
    fields = refused(NominationContent(), {field: "x" * (limit + 1)})
    assert list(fields) == [field]
    assert str(limit) in fields[field][0]


def test_an_over_long_project_title_is_refused():
    project = {"title": "x" * 201, "focus_area": "civic_social"}
    fields = refused(NominationContent(), {"projects": [project]})
    assert "200" in fields["projects"][0]["title"][0]


def test_every_bad_field_is_named_at_once():
    fields = refused(NominationContent(), {"city_name": "", "csco_email": "nope", "population": "many"})
    assert set(fields) == {"city_name", "csco_email", "population"}


@pytest.mark.parametrize("email", ["not-an-email", "csco@", "@city.example", "csco at city.example", 42])
def test_bad_emails_are_refused(email):
    fields = refused(NominationContent(), {"csco_email": email})
    assert list(fields) == ["csco_email"]
    assert "email" in fields["csco_email"][0].lower() or "string" in fields["csco_email"][0].lower()


def test_an_unknown_focus_area_is_refused_with_the_choices():
    fields = refused(NominationContent(), {"focus_areas": ["civic_social", "smart_parking"]})
    message = fields["focus_areas"][1][0]
    assert "civic_social" in message and "industry_innovation" in message


def test_an_unknown_project_focus_area_is_refused():
    fields = refused(NominationContent(), {"projects": [{"title": "Placeholder", "focus_area": "smart_parking"}]})
    assert "focus_area" in fields["projects"][0]


def test_a_focus_area_named_twice_is_refused():
    fields = refused(NominationContent(), {"focus_areas": ["civic_social", "civic_social"]})
    assert "once" in fields["focus_areas"][0]


@pytest.mark.parametrize("population", ["12000", 1.5, 12000.0, True, [1], {"n": 1}])
def test_a_population_that_is_not_an_integer_is_refused(population):
    fields = refused(NominationContent(), {"population": population})
    assert fields == {"population": ["Must be a whole number."]}


@pytest.mark.parametrize("population", [0, -5, 100_000_001])
def test_a_population_out_of_range_is_refused(population):
    assert list(refused(NominationContent(), {"population": population})) == ["population"]


@pytest.mark.parametrize("priority", ["yes", "true", "1", "on", 1, 0, None])
def test_strings_and_numbers_are_not_booleans(priority):
    project = {"title": "Placeholder", "focus_area": "civic_social", "priority": priority}
    fields = refused(NominationContent(), {"projects": [project]})
    assert list(fields["projects"][0]) == ["priority"]


@pytest.mark.parametrize("priority", [True, False])
def test_json_booleans_are_booleans(priority):
    project = {"title": "Placeholder", "focus_area": "civic_social", "priority": priority}
    assert load(NominationContent(), {"projects": [project]})["projects"][0]["priority"] is priority


@pytest.mark.parametrize("field, value", [("city_name", 5), ("vision", ["a"]), ("focus_areas", "civic_social"),
                                          ("projects", "Placeholder"), ("projects", ["Placeholder"]),
                                          ("focus_areas", [None])])
def test_wrong_types_are_refused_by_field(field, value):
    assert field in refused(NominationContent(), {field: value})


@pytest.mark.parametrize("body", [[], [{"city_name": "Banyuwangi"}], "Banyuwangi", None, 42, True])
@pytest.mark.parametrize("schema", [NominationContent, NominationCreate, TransitionRequest, AssessmentSchema])
def test_a_body_that_is_not_an_object_is_refused_cleanly(schema, body):
    with pytest.raises(InvalidInput) as error:
        load(schema(), body)
    assert error.value.fields == {"_schema": ["Must be a JSON object."]}
    assert "object" in error.value.detail


# --- transitions and assessments ------------------------------------------------------------------

def test_a_valid_transition_request_passes():
    data = load(TransitionRequest(), {"trigger": "review", "comment": None, "assessment": {
        "scores": {"civic_social": 5, "quality_environment": 1}, "recommendation": "return",
        "summary": "Placeholder summary."}})
    assert data["trigger"] == "review"
    assert data["assessment"]["scores"] == {"civic_social": 5, "quality_environment": 1}


@pytest.mark.parametrize("trigger", ["approve", "Submit", "", 3, None])
def test_an_unknown_trigger_is_refused(trigger):
    fields = refused(TransitionRequest(), {"trigger": trigger})
    assert list(fields) == ["trigger"]


def test_an_unknown_trigger_is_refused_with_the_choices():
    message = refused(TransitionRequest(), {"trigger": "approve"})["trigger"][0]
    assert "submit" in message and "hand_over" in message


def test_a_transition_needs_a_trigger():
    assert refused(TransitionRequest(), {"comment": "Placeholder."}) == {
        "trigger": ["This field is required."]}


def test_an_over_long_comment_is_refused():
    assert "comment" in refused(TransitionRequest(), {"trigger": "reject", "comment": "x" * 10_001})


def _assessment(**changes):
    data = {"scores": {"civic_social": 3}, "recommendation": "accept", "summary": "Placeholder summary."}
    data.update(changes)
    return data


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
def test_scores_from_1_to_5_pass(score):
    assert load(AssessmentSchema(), _assessment(scores={"civic_social": score}))["scores"] == {"civic_social": score}


@pytest.mark.parametrize("score", [0, 6, -1, 4.5, "4", True, None])
def test_other_scores_are_refused(score):
    fields = refused(AssessmentSchema(), _assessment(scores={"civic_social": score}))
    assert list(fields) == ["scores"]
    assert "value" in fields["scores"]["civic_social"]


def test_a_score_for_an_unknown_focus_area_is_refused():
    fields = refused(AssessmentSchema(), _assessment(scores={"smart_parking": 3}))
    assert "key" in fields["scores"]["smart_parking"]


@pytest.mark.parametrize("changes, field", [({"recommendation": "maybe"}, "recommendation"),
                                            ({"summary": ""}, "summary"),
                                            ({"scores": [3]}, "scores")])
def test_an_assessment_refuses_bad_values(changes, field):
    assert list(refused(AssessmentSchema(), _assessment(**changes))) == [field]


@pytest.mark.parametrize("missing", ["scores", "recommendation", "summary"])
def test_an_assessment_needs_every_part(missing):
    data = _assessment()
    del data[missing]
    assert refused(AssessmentSchema(), data) == {missing: ["This field is required."]}


@pytest.mark.parametrize("assessment", [[], "good", 5])
def test_a_transition_with_an_assessment_that_is_not_an_object_is_refused(assessment):
    fields = refused(TransitionRequest(), {"trigger": "review", "assessment": assessment})
    assert list(fields) == ["assessment"]


# --- the shared rules of schemas/text.py and the cap of schemas/errors.py ---------------------------

@pytest.mark.parametrize("field,value", [("city_name", "Banyu\x00wangi"), ("city_name", "Banyu\nwangi"),
                                         ("city_name", "\ud800"), ("csco_name", "A\x1bB"), ("region", "A\u2028B"),
                                         ("vision", "A\x00"), ("vision", "\udfff"), ("vision", "Bell\x07")])
def test_nul_surrogates_and_control_characters_are_refused_by_name(field, value):
    assert list(refused(NominationContent(), {field: value})) == [field]


def test_paragraphs_keep_their_line_breaks_and_tabs():
    assert load(NominationContent(), {"vision": "One.\r\n\r\nTwo.\tThree."})["vision"] == "One.\r\n\r\nTwo.\tThree."


def test_a_long_list_is_refused_by_its_length_before_its_items():
    fields = refused(NominationContent(), {"focus_areas": ["nope"] * 10_000})
    assert fields == {"focus_areas": ["Must have at most 6 items; it has 10000."]}


def test_scores_are_bounded_before_their_keys():
    fields = refused(AssessmentSchema(), {"scores": {f"k{i}": 1 for i in range(1000)}, "recommendation": "accept",
                                          "summary": "Fine."})
    assert fields == {"scores": ["Must have at most 6 entries; it has 1000."]}


@pytest.mark.parametrize("value,expected", [("12", 12), (" 7 ", 7), ("²", None), ("¹²", None), ("١٢", None),
                                            ("-1", None), ("1e3", None), ("", None), ("2147483647", 2147483647),
                                            ("2147483648", None), ("9" * 5000, None), ("0012", 12)])
def test_parse_int_takes_ascii_digits_within_the_column(value, expected):
    from scn_workflow.schemas.text import parse_int
    assert parse_int(value) == expected


@pytest.mark.parametrize("value", ["²", "١٢٣", "12a", "9" * 5000])
def test_a_query_number_in_other_digits_is_refused_by_name(value):
    from marshmallow import ValidationError

    from scn_workflow.schemas.api import ListQuery
    with pytest.raises(ValidationError) as error:
        ListQuery().load({"page": value})
    assert list(error.value.messages) == ["page"]


def test_an_answer_keeps_twenty_messages_and_counts_them_all():
    from scn_workflow.schemas.errors import capped, summary
    messages = {"projects": {i: {"title": ["Missing.", "Too long."]} for i in range(30)}, "city_name": ["Missing."]}
    shown, total = capped(messages)
    assert total == 61
    assert shown == {"projects": {str(i): {"title": ["Missing.", "Too long."]} for i in range(10)}}
    assert summary(shown, total).endswith("projects.9.title: Missing. … and 41 more")


def test_the_detail_of_a_refusal_is_short_whatever_the_input():
    with pytest.raises(InvalidInput) as error:
        load(NominationContent(), {f"k{i}": 1 for i in range(5000)})
    assert len(error.value.detail) < 1000
    assert error.value.detail.endswith("… and 4980 more.")
