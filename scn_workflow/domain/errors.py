"""Refusals of the domain. Each names the rules that refused, in words a user understands.

Messages are English sentences with named placeholders, marked with `N_` so that `make messages`
extracts them; a `Text` keeps its template and values, so the web and the API translate the
template and fill it in the reader's language (the domain itself knows nothing of languages).
"""

from dataclasses import dataclass


def N_(template: str) -> str:
    """Mark a message for the catalogue; it is translated where it is shown."""
    return template


class Text(str):
    """An English sentence made from a marked template and named values, which it keeps:
    `Text(N_("No cycle {cycle}."), cycle="ASCN-2026")` reads "No cycle ASCN-2026."."""

    template: str
    params: dict

    def __new__(cls, template: str, **params):
        text = super().__new__(cls, template.format(**params) if params else template)
        text.template, text.params = template, params
        return text

    def __reduce__(self):
        return _text, (self.template, self.params)


class Sentences(tuple):
    """Several `Text`s that fill one placeholder, read one after the other."""

    def __format__(self, spec: str) -> str:
        return " ".join(map(str, self))


def _text(template: str, params: dict) -> "Text":
    return Text(template, **params)


@dataclass(frozen=True)
class Violation:
    """One failed rule: a stable name for programs and a message for people (a `Text` when it has values)."""

    rule: str
    message: str

    def as_dict(self) -> dict:
        return {"rule": self.rule, "message": self.message}


class DomainError(Exception):
    """Base of every refusal. `status` is the HTTP status the API maps it to."""

    status = 400
    title = N_("Request refused")

    def __init__(self, detail: str, violations: list[Violation] | tuple = ()):
        super().__init__(detail)
        self.detail = detail
        self.violations = list(violations)


class NotFound(DomainError):
    status = 404
    title = N_("Not found")


class UnknownTrigger(DomainError):
    status = 422
    title = N_("Unknown trigger")


class InvalidTransition(DomainError):
    """The trigger cannot be fired from the nomination's current state."""

    status = 409
    title = N_("Transition not allowed from this state")


class Forbidden(DomainError):
    """The actor may not do this (who may fire it)."""

    status = 403
    title = N_("Not permitted")


class RuleViolation(DomainError):
    """The actor may act, but a rule of the process refuses it."""

    status = 422
    title = N_("Refused by the rules of the process")


class StaleVersion(DomainError):
    """The change was based on a version that is no longer current."""

    status = 412
    title = N_("Stale version")


class Conflict(DomainError):
    status = 409
    title = N_("Conflict")


class InvalidInput(DomainError):
    """Input that failed validation; `fields` maps each field to its messages."""

    status = 422
    title = N_("Invalid input")

    def __init__(self, detail: str, fields: dict):
        super().__init__(detail)
        self.fields = fields
