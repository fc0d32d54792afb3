"""People read our words, in their language: marshmallow's refusals reworded (schemas/wording.py), the
services' refusals translated with their values as words, durations as "7 days", and a form's refusal
naming each field by its label with a link to it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask_babel import Babel, force_locale
from marshmallow import ValidationError, fields

from scn_workflow import labels
from scn_workflow.domain.errors import InvalidInput, Text
from scn_workflow.schemas.nominations import NominationContent, TransitionRequest
from scn_workflow.schemas.text import BoundedList, Line
from scn_workflow.schemas.wording import Worded
from scn_workflow.services.nominations import load_draft_for_change


@pytest.fixture()
def app_context():
    app = Flask(__name__)
    Babel(app, default_translation_directories=str(labels.CATALOGUE.parents[2]))
    with app.test_request_context():
        yield


def refused(schema, data) -> dict:
    with pytest.raises(ValidationError) as caught:
        schema.load(data)
    return caught.value.messages


def test_marshmallow_speaks_our_words():
    assert refused(NominationContent(), {"population": "many"}) == {"population": ["Must be a whole number."]}
    assert refused(NominationContent(), {"city_name": None}) == {
        "city_name": ["This field needs a value; null is not accepted."]}
    assert refused(NominationContent(), {"nickname": "x"}) == {"nickname": ["No such field."]}
    assert refused(NominationContent(), {"projects": ["a title"]}) == {"projects": {0: {"_schema": [
        "Must be a JSON object."]}}}
    assert refused(TransitionRequest(), {}) == {"trigger": ["This field is required."]}


def test_the_items_of_a_list_speak_our_words_and_a_fields_own_message_stays():
    class Sample(Worded):
        tags = BoundedList(fields.Integer(), max_length=3)
        flag = fields.Boolean()
        named = Line(max_length=5, required=True, error_messages={"required": "Name it."})

    assert refused(Sample(), {"tags": ["x"], "flag": "perhaps"}) == {
        "tags": {0: ["Must be a whole number."]}, "flag": ["Must be true or false."], "named": ["Name it."]}


def test_a_services_refusal_reads_in_indonesian_with_its_state_as_a_word(app_context):
    refusal = Text(load_draft_for_change.__defaults__[1], state="submitted")
    assert refusal == "Only a drafted nomination can be edited; this one is submitted."  # the API's English
    with force_locale("id"):
        assert labels.say(refusal) == "Hanya nominasi berstatus draf yang dapat diubah; nominasi ini berstatus Diajukan."
        assert labels.say("This field is required.") == "Kolom ini wajib diisi."


@pytest.mark.parametrize("value, english, indonesian", [
    (timedelta(days=7), "7 days", "7 hari"),
    (timedelta(days=3), "3 days", "3 hari"),
    (timedelta(hours=5), "5 hours", "5 jam"),
    (timedelta(hours=36), "36 hours", "36 jam"),
    (24759.4 * 3600, "3 years", "3 tahun"),
])
def test_durations_count_in_words(app_context, value, english, indonesian):
    assert labels.duration(value) == english
    with force_locale("id"):
        assert labels.duration(value) == indonesian


def test_a_forms_refusal_names_each_field_by_its_label_and_links_to_it(app_context):
    err = InvalidInput("The attachment is not valid.", {"file": ["Only PDF files are accepted (the content is not "
                                                                 "a PDF)."]})
    assert labels.field_problems(err.fields) == "PDF file: Only PDF files are accepted (the content is not a PDF)."
    with force_locale("id"):
        assert str(labels.field_problems(err.fields, link="")) == (
            '<a href="#file">Berkas PDF</a>: Hanya berkas PDF yang diterima (isi berkas ini bukan PDF).')
