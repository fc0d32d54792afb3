"""Our wording for marshmallow's own refusals ("Not a valid integer.", "Missing data for required
field."): plain sentences a person can act on, marked for the catalogue and translated where they
are shown (scn_workflow/labels.py `say`). Every input schema derives from `Worded`, which gives its
fields (and the items of its lists and maps) these words instead of the library's defaults; a
message a field sets itself is kept.
"""

from __future__ import annotations

from marshmallow import Schema, fields

from scn_workflow.domain.errors import N_

UNKNOWN_FIELD = N_("No such field.")
# Email and Url check with a validator made when the field is built, so their fields take these then.
EMAIL_INVALID = N_("Must be an email address, such as name@example.org.")
URL_INVALID = N_("Must be a web address that starts with https:// or http://.")
NOT_AN_OBJECT = N_("Must be a JSON object.")

# By the error's key, then (where the library's words depend on the field's type) by the field's class.
FIELD_WORDING = {
    "required": N_("This field is required."),
    "null": N_("This field needs a value; null is not accepted."),
    "validator_failed": N_("This value is not accepted."),
    "too_large": N_("The number is too large."),
    "special": N_("Must be a finite number."),
    "invalid_utf8": N_("Must be valid UTF-8 text."),
    "invalid_awareness": N_("Must be a date and time with its offset from UTC, such as 2026-03-31T17:00:00+07:00."),
    "format": N_("Must be a date and time such as 2026-03-31T17:00:00+07:00."),
}
INVALID_WORDING = (  # "invalid" and "type", by the field's class (the first one it is an instance of)
    (fields.Email, EMAIL_INVALID),
    (fields.Url, URL_INVALID),
    (fields.Integer, N_("Must be a whole number.")),
    (fields.Number, N_("Must be a number.")),
    (fields.Boolean, N_("Must be true or false.")),
    (fields.Date, N_("Must be a date such as 2026-03-31.")),
    (fields.DateTime, N_("Must be a date and time such as 2026-03-31T17:00:00+07:00.")),
    (fields.String, N_("Must be text.")),
    (fields.List, N_("Must be a list.")),
    (fields.Tuple, N_("Must be a list.")),
    (fields.Mapping, NOT_AN_OBJECT),
    (fields.Nested, NOT_AN_OBJECT),
)


def library_defaults(field: fields.Field) -> dict:
    """The messages marshmallow itself gives this kind of field (what `field` would say unless told otherwise)."""
    out: dict = {}
    for cls in reversed(type(field).__mro__):
        if cls.__module__.startswith("marshmallow"):
            out.update(cls.__dict__.get("default_error_messages", {}))
    return out


def reword(field: fields.Field) -> None:
    """Give `field`, and the fields inside it, our wording wherever it still has the library's."""
    defaults = library_defaults(field)
    invalid = next((words for cls, words in INVALID_WORDING if isinstance(field, cls)), None)
    for key, message in list(field.error_messages.items()):
        if defaults.get(key) != message:
            continue  # set by us or by the field's declaration: it stays
        if key in ("invalid", "type") and invalid:
            field.error_messages[key] = invalid
        elif key in FIELD_WORDING:
            field.error_messages[key] = FIELD_WORDING[key]
    inner = [getattr(field, "inner", None), getattr(field, "key_field", None), getattr(field, "value_field", None),
             *getattr(field, "tuple_fields", ())]
    for child in inner:
        if isinstance(child, fields.Field):
            reword(child)


class Worded(Schema):
    """The base of every input schema: our wording for the schema's and its fields' refusals."""

    error_messages = {"unknown": UNKNOWN_FIELD, "type": NOT_AN_OBJECT}

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        reword(field_obj)
