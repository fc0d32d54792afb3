"""Users as admins manage them over HTTP: create, change (PATCH), list. The rules that need the
database or span fields (a submitter's member state, weak passwords) are services/users.py's."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from scn_workflow.domain.errors import N_

from scn_workflow.schemas.nominations import Strict, StrictBoolean
from scn_workflow.schemas.text import Email, Line
from scn_workflow.services.users import password_problems

ROLE = validate.OneOf(["submitter", "reviewer", "operator", "admin"], error=N_("Must be one of: {choices}."))
LANGUAGE = validate.OneOf(["en", "id"], error=N_("Must be en (English) or id (Bahasa Indonesia)."))
USERNAME = validate.Regexp(r"^[a-z0-9][a-z0-9._-]{1,79}$",
                           error=N_("Must be 2 to 80 characters: lower-case letters, digits, '.', '_' or '-'."))


def strong_password(value: str) -> None:
    """services.users' password rule, so a 422 names it with the other fields' problems."""
    problems = password_problems(value)
    if problems:
        raise ValidationError(problems)


class UserCreate(Strict):
    username = Line(required=True, max_length=80, validate=USERNAME)
    password = Line(required=True, load_only=True, max_length=200, validate=strong_password,
                    metadata={"description": "At least 12 characters, not a common password."})
    email = Email(required=True)
    role = Line(required=True, max_length=20, validate=ROLE)
    member_state = Line(allow_none=True, max_length=2, min_length=2)
    name = Line(allow_none=True, max_length=120)
    language = Line(max_length=2, validate=LANGUAGE, allow_none=True, load_default=None,
                    metadata={"description": "en or id; null (the default): the browser's Accept-Language"})


class UserPatch(Strict):
    """Any of the fields; `active: false` ends the user's sessions and revokes their tokens, and a
    `password` is a temporary one the user must change."""

    role = Line(max_length=20, validate=ROLE)
    member_state = Line(allow_none=True, max_length=2, min_length=2)
    name = Line(allow_none=True, max_length=120)
    email = Email()
    language = Line(max_length=2, validate=LANGUAGE, allow_none=True,
                    metadata={"description": "en or id; null: the browser's Accept-Language"})
    active = StrictBoolean()
    password = Line(load_only=True, max_length=200, validate=strong_password)


def _role(user) -> str:
    role = user["role"] if isinstance(user, dict) else user.role
    return getattr(role, "value", role)  # a Role of a new User, or the column's text


class UserOut(Schema):
    username = fields.String()
    name = fields.String(allow_none=True)
    email = fields.String()
    role = fields.Function(_role)
    member_state = fields.String(allow_none=True)
    language = fields.String(allow_none=True)
    active = fields.Boolean()
