"""Property tests (Hypothesis): every input schema of scn_workflow.schemas, and the HTML forms,
fed NUL bytes, lone surrogates, control characters, digits outside ASCII, huge integers,
overlong strings, repeated items and deep or odd structures. Each input either loads or is
refused with a ValidationError naming its fields, never another exception; and what loads fits
the database's columns (db/tables.py)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError
from werkzeug.datastructures import MultiDict

import scn_workflow.schemas
from scn_workflow.db import tables
from scn_workflow.domain.reference import focus_areas
from scn_workflow.schemas.nominations import ProjectSchema, Strict
from scn_workflow.schemas.text import INT32_MAX, INT64_MAX, form_number, parse_int, text_problem
from scn_workflow.services.webhooks import EVENT_NAMES
from scn_workflow.web.forms import assessment_input, nomination_input, validate_assessment, validate_nomination

SETTINGS = settings(max_examples=50, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def input_schemas() -> list[type[Schema]]:
    """Every schema that loads input: the Strict ones (unknown fields refused) and the upload form."""
    found = {}
    for module_info in pkgutil.iter_modules(scn_workflow.schemas.__path__):
        module = importlib.import_module(f"scn_workflow.schemas.{module_info.name}")
        for _name, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Schema) and cls.__module__ == module.__name__ \
                    and (issubclass(cls, Strict) and cls is not Strict or cls.__name__.endswith("Form")):
                found[f"{cls.__module__}.{cls.__name__}"] = cls
    return [found[name] for name in sorted(found)]


SCHEMAS = input_schemas()

# Where each input field is stored: what loads must fit there.
COLUMNS = {
    "NominationContent": tables.nominations, "NominationCreate": tables.nominations,
    "MemberStatePatch": tables.member_states, "CycleCreate": tables.cycles, "OverrideRequest": tables.limit_overrides,
    "UserCreate": tables.users, "UserPatch": tables.users, "WebhookCreate": tables.webhooks,
    "TokenRequest": tables.users,
}
RENAMED = {("MemberStatePatch", "lead_agency_webhook_secret"): "lead_agency_webhook_secret",
           ("OverrideRequest", "limit"): "limit"}

HOSTILE_TEXT = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),  # surrogates and controls included
    st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "²", "¹²³", "١٢٣", "9" * 30, "-0", " 12 ", "\n",
                     "a\r\nb", "\x1b[31m", "a\u2028b", "\t", "", " ", "civic_social", "ID", "ASCN-2026", "accept",
                     "nomination.accepted", "http://127.0.0.1:9/hook", "csco@city.example",
                     "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-12:00"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "\U0001F600", "\x00"]), st.integers(0, 12_000)),
)
HOSTILE_NUMBER = st.one_of(st.integers(), st.sampled_from([0, 1, 5, 2**31 - 1, 2**31, -2**31 - 1, 2**63, 10**30]),
                           st.floats(allow_nan=True, allow_infinity=True), st.booleans())
SCALAR = st.one_of(st.none(), HOSTILE_TEXT, HOSTILE_NUMBER)
CODES = st.sampled_from([*focus_areas(), *EVENT_NAMES, "nope", "\x00"])
REPEATED = st.lists(CODES, max_size=8).map(lambda items: items + items[:3])
PROJECT = st.fixed_dictionaries({}, optional={name: SCALAR for name in ProjectSchema().fields})
VALUE = st.one_of(
    SCALAR, REPEATED, st.lists(PROJECT, max_size=4),
    st.dictionaries(st.one_of(CODES, HOSTILE_TEXT), st.one_of(HOSTILE_NUMBER, HOSTILE_TEXT), max_size=8),
    st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                 st.dictionaries(HOSTILE_TEXT, inner, max_size=4)), max_leaves=12),
)


def body_for(schema: Schema):
    """Dicts with some of the schema's fields (hostile values) and now and then an unknown key."""
    known = {name: VALUE for name, field in schema.fields.items() if not field.dump_only}
    return st.fixed_dictionaries({}, optional={**known, "unknown\x00key": SCALAR})


def named_fields(messages) -> set[str]:
    return set(messages) if isinstance(messages, dict) else {"_schema"}


def strings_in(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from strings_in(key)
            yield from strings_in(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from strings_in(inner)


def assert_fits(schema_name: str, loaded: dict) -> None:
    for text in strings_in(loaded):
        assert text_problem(text, multiline=True) is None, (schema_name, text[:50])
    table = COLUMNS.get(schema_name)
    if table is None:
        return
    for name, value in loaded.items():
        if isinstance(value, datetime):
            value.astimezone(timezone.utc)  # what the UTC column does with it; raises when out of range
        column = table.c.get(RENAMED.get((schema_name, name), name))
        if column is None or value is None:
            continue
        if isinstance(column.type, sa.String) and column.type.length and isinstance(value, str):
            assert len(value) <= column.type.length, (schema_name, name, len(value))
        if isinstance(value, int) and not isinstance(value, bool):
            top = INT64_MAX if isinstance(column.type, sa.BigInteger) else INT32_MAX
            assert -top - 1 <= value <= top, (schema_name, name, value)


def test_every_input_schema_is_found():
    names = {cls.__name__ for cls in SCHEMAS}
    assert {"NominationCreate", "NominationContent", "ProjectSchema", "AssessmentSchema", "TransitionRequest",
            "TokenRequest", "CycleCreate", "OverrideRequest", "MemberStatePatch", "WebhookCreate", "ListQuery",
            "AttachmentForm", "UserCreate"} <= names


@pytest.mark.parametrize("schema_class", SCHEMAS, ids=lambda cls: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}")
@pytest.mark.parametrize("partial", [False, True], ids=["whole", "partial"])
@SETTINGS
@given(data=st.data())
def test_hostile_input_loads_or_is_refused_by_field(schema_class, partial, data):
    schema = schema_class()
    body = data.draw(body_for(schema))
    try:
        loaded = schema.load(body, partial=partial)
    except ValidationError as err:
        assert named_fields(err.messages) <= set(schema.fields) | set(body) | {"_schema"}, err.messages
        return
    assert_fits(schema_class.__name__, loaded)


@SETTINGS
@given(items=st.lists(st.sampled_from(list(focus_areas())), min_size=2, max_size=6).filter(
    lambda items: len(set(items)) < len(items)))
def test_repeated_focus_areas_never_load(items):
    from scn_workflow.schemas.nominations import NominationContent
    with pytest.raises(ValidationError) as refused:
        NominationContent().load({"focus_areas": items})
    assert set(refused.value.messages) == {"focus_areas"}


@SETTINGS
@given(size=st.integers(7, 50_000))
def test_a_long_list_is_one_message_whatever_its_length(size):
    from scn_workflow.schemas.nominations import NominationContent
    with pytest.raises(ValidationError) as refused:
        NominationContent().load({"focus_areas": ["\x00"] * size, "projects": [{"x": 1}] * (size + 50)})
    assert refused.value.messages == {"focus_areas": [f"Must have at most 6 items; it has {size}."],
                                      "projects": [f"Must have at most 50 items; it has {size + 50}."]}


@SETTINGS
@given(text=HOSTILE_TEXT)
def test_parse_int_takes_ascii_digits_within_the_range_only(text):
    number = parse_int(text, minimum=1, maximum=100_000)
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= 6 and 1 <= int(stripped) <= 100_000:
        assert number == int(stripped)
    else:
        assert number is None
    parsed = form_number(text)
    assert parsed == text or (isinstance(parsed, int) and stripped.isascii())


@SETTINGS
@given(values=st.dictionaries(st.sampled_from(["city_name", "region", "population", "csco_name", "csco_email",
                                               "vision", "project-0-title", "project-0-focus_area",
                                               "project-0-description", "project-1-title", "action"]),
                              HOSTILE_TEXT, max_size=11),
       areas=st.lists(CODES, max_size=10))
def test_the_nomination_form_refuses_by_field(values, areas):
    form = MultiDict([*values.items(), *(("focus_areas", a) for a in areas)])
    for creating in (True, False):
        data, errors = validate_nomination(nomination_input(form), creating=creating)
        if data is None:
            assert errors and set(errors) <= {"city_name", "region", "population", "csco_name", "csco_email",
                                              "vision", "focus_areas", "projects"}, errors
        else:
            assert_fits("NominationCreate", data)


@SETTINGS
@given(scores=st.lists(HOSTILE_TEXT, min_size=1, max_size=6), recommendation=HOSTILE_TEXT, summary=HOSTILE_TEXT)
def test_the_review_form_refuses_by_field(scores, recommendation, summary):
    areas = list(focus_areas())[:len(scores)]
    form = MultiDict({**{f"score-{a}": s for a, s in zip(areas, scores)}, "recommendation": recommendation,
                      "summary": summary})
    data, errors = validate_assessment(assessment_input(form, areas))
    if data is None:
        assert errors and set(errors) <= {"scores", "recommendation", "summary"}, errors
    else:
        assert all(1 <= v <= 5 for v in data["scores"].values())
        assert text_problem(data["summary"], multiline=True) is None
