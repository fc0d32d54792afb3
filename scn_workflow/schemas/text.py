"""The one set of rules for every string and number that comes from outside (JSON bodies, HTML
forms, query strings, headers, URL paths), shaped by what the database can store.

- Text: no NUL (PostgreSQL refuses it), no lone surrogate (not encodable as UTF-8), no control
  character; `Text` (paragraphs) keeps line breaks and tabs, `Line` (a name, a title, an address)
  keeps none. Each at most as long as its column in db/tables.py.
- Numbers: ASCII digits only (`str.isdigit()` also accepts '²', which `int()` refuses) and within
  the column's range (Integer: 2**31 - 1).
- Lists and maps: their length is checked before their items, so a huge list costs one message;
  items the database keeps unique are refused when repeated.

Each refusal is a marshmallow ValidationError on the field, so the answer names the field.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from marshmallow import ValidationError, fields, validate

from scn_workflow.domain.errors import N_
from scn_workflow.domain.errors import Text as Sentence  # `Text` here is the paragraphs field
from scn_workflow.schemas.wording import EMAIL_INVALID, URL_INVALID

INT32_MAX = 2**31 - 1  # sa.Integer on PostgreSQL
INT64_MAX = 2**63 - 1  # sa.BigInteger
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls, DEL, C1 controls; a line also refuses the Unicode line and paragraph separators.
_NOT_IN_A_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ASCII_DIGITS = re.compile("[0-9]+")

NUL_MESSAGE = N_("Must not contain a NUL character.")
SURROGATE_MESSAGE = N_("Must be valid Unicode text (it contains a lone surrogate).")
LINE_MESSAGE = N_("Must be a single line without control characters (no line breaks or tabs).")
TEXT_MESSAGE = N_("Must not contain control characters other than line breaks and tabs.")


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why `value` cannot be stored as text, or None when it can."""
    if "\x00" in value:
        return NUL_MESSAGE
    if _SURROGATE.search(value):
        return SURROGATE_MESSAGE
    if (_NOT_IN_TEXT if multiline else _NOT_IN_A_LINE).search(value):
        return TEXT_MESSAGE if multiline else LINE_MESSAGE
    return None


class CleanText(validate.Validator):
    """The validator behind Line and Text (and the e-mail and URL fields)."""

    def __init__(self, *, multiline: bool):
        self.multiline = multiline

    def __call__(self, value):
        problem = text_problem(value, multiline=self.multiline) if isinstance(value, str) else None
        if problem:
            raise ValidationError(problem)
        return value


def _with_rules(kwargs: dict, *, max_length: int, min_length: int | None, multiline: bool) -> dict:
    extra = kwargs.pop("validate", None)
    extra = [] if extra is None else list(extra) if isinstance(extra, (list, tuple)) else [extra]
    kwargs["validate"] = [validate.Length(min=min_length, max=max_length), CleanText(multiline=multiline), *extra]
    return kwargs


class Line(fields.String):
    """One line of text: a name, a title, a code, a search. `max_length` is its column's length."""

    def __init__(self, *, max_length: int, min_length: int | None = None, **kwargs):
        super().__init__(**_with_rules(kwargs, max_length=max_length, min_length=min_length, multiline=False))


class Text(fields.String):
    """Paragraphs (a vision, a description, a comment): line breaks and tabs allowed."""

    def __init__(self, *, max_length: int, min_length: int | None = None, **kwargs):
        super().__init__(**_with_rules(kwargs, max_length=max_length, min_length=min_length, multiline=True))


class Email(fields.Email):
    """An e-mail address on one line, at most 254 characters (the column)."""

    def __init__(self, *, max_length: int = 254, **kwargs):
        kwargs["error_messages"] = {"invalid": EMAIL_INVALID, **kwargs.get("error_messages", {})}
        super().__init__(**_with_rules(kwargs, max_length=max_length, min_length=None, multiline=False))


class Url(fields.Url):
    """An http(s) URL on one line, at most 2000 characters (the column)."""

    def __init__(self, *, max_length: int = 2000, **kwargs):
        kwargs.setdefault("schemes", {"http", "https"})
        kwargs.setdefault("require_tld", False)
        kwargs["error_messages"] = {"invalid": URL_INVALID, **kwargs.get("error_messages", {})}
        super().__init__(**_with_rules(kwargs, max_length=max_length, min_length=None, multiline=False))


class Int32(fields.Integer):
    """A JSON integer (not a string, not a float, not a boolean) within `minimum`..`maximum`,
    which stay within the range of the column (an Integer; Int64 for a BigInteger)."""

    column_max = INT32_MAX

    def __init__(self, *, minimum: int = 0, maximum: int | None = None, **kwargs):
        maximum = self.column_max if maximum is None else maximum
        assert -self.column_max - 1 <= minimum <= maximum <= self.column_max, "beyond the column's range"
        kwargs.setdefault("strict", True)
        super().__init__(validate=validate.Range(min=minimum, max=maximum), **kwargs)


class Int64(Int32):
    column_max = INT64_MAX


class Moment(fields.AwareDateTime):
    """A date and time with its offset, between 1970 and 9999 (year 1 at +01:00 is no UTC time a
    column can hold)."""

    def __init__(self, **kwargs):
        super().__init__(default_timezone=None, validate=validate.Range(min=EARLIEST, max=LATEST), **kwargs)


def parse_int(value: str, *, minimum: int = 0, maximum: int = INT32_MAX) -> int | None:
    """The integer `value` spells in ASCII digits within minimum..maximum, else None."""
    value = value.strip()
    if not _ASCII_DIGITS.fullmatch(value) or len(value) > len(str(maximum)):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def form_number(value: str):
    """A form's number: the int its ASCII digits spell, else the text as typed, for the schema to
    refuse by name ('²' and '١' are digits to `str.isdigit()`, not to `int()` or to us)."""
    stripped = value.strip()
    if _ASCII_DIGITS.fullmatch(stripped) and len(stripped) <= 4000:  # int() refuses over 4300 digits
        return int(stripped)
    return value


def digits_message(minimum: int, maximum: int) -> str:
    return Sentence(N_("Must be a whole number from {min} to {max}, written with the digits 0-9."),
                    min=minimum, max=maximum)


class QueryInt(fields.Integer):
    """An integer in a query string or a form: ASCII digits only, within minimum..maximum."""

    def __init__(self, *, minimum: int = 0, maximum: int = INT32_MAX, **kwargs):
        self.minimum, self.maximum = minimum, maximum
        super().__init__(validate=validate.Range(min=minimum, max=maximum), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            return value  # already a number (a form's value parsed by the page)
        number = parse_int(value, minimum=self.minimum, maximum=self.maximum) if isinstance(value, str) else None
        if number is None:
            raise ValidationError(digits_message(self.minimum, self.maximum))
        return number


class BoundedList(fields.List):
    """A list whose length is checked before its items (a huge list is one message, not one per
    item); `unique` refuses repeated items where the database keeps them unique."""

    def __init__(self, inner, *, max_length: int, min_length: int | None = None, unique: bool = False, **kwargs):
        self.max_length, self.min_length, self.unique = max_length, min_length, unique
        if unique:
            kwargs.setdefault("metadata", {})["uniqueItems"] = True
        super().__init__(inner, validate=validate.Length(min=min_length, max=max_length), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, (list, tuple)) and len(value) > self.max_length:
            raise ValidationError(Sentence(N_("Must have at most {max} items; it has {count}."),
                                           max=self.max_length, count=len(value)))
        items = super()._deserialize(value, attr, data, **kwargs)
        if self.unique:
            repeated = sorted({str(item) for item in items if items.count(item) > 1})
            if repeated:
                raise ValidationError(Sentence(N_("Each item may appear once; repeated: {items}."),
                                               items=", ".join(repeated[:5])))
        return items


class BoundedDict(fields.Dict):
    """A map whose size is checked before its keys and values."""

    def __init__(self, *, max_length: int, **kwargs):
        self.max_length = max_length
        kwargs.setdefault("metadata", {})["maxProperties"] = max_length
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, dict) and len(value) > self.max_length:
            raise ValidationError(Sentence(N_("Must have at most {max} entries; it has {count}."),
                                           max=self.max_length, count=len(value)))
        return super()._deserialize(value, attr, data, **kwargs)


def json_depth_over(value, limit: int) -> bool:
    """Whether parsed JSON nests lists and objects deeper than `limit` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
