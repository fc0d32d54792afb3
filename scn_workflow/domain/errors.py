"""Refusals of the domain. Each names the rules that refused, in words a user understands."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One failed rule: a stable name for programs and a message for people."""

    rule: str
    message: str

    def as_dict(self) -> dict:
        return {"rule": self.rule, "message": self.message}


class DomainError(Exception):
    """Base of every refusal. `status` is the HTTP status the API maps it to."""

    status = 400
    title = "Request refused"

    def __init__(self, detail: str, violations: list[Violation] | tuple = ()):
        super().__init__(detail)
        self.detail = detail
        self.violations = list(violations)


class NotFound(DomainError):
    status = 404
    title = "Not found"


class UnknownTrigger(DomainError):
    status = 422
    title = "Unknown trigger"


class InvalidTransition(DomainError):
    """The trigger cannot be fired from the nomination's current state."""

    status = 409
    title = "Transition not allowed from this state"


class Forbidden(DomainError):
    """The actor may not do this (who may fire it)."""

    status = 403
    title = "Not permitted"


class RuleViolation(DomainError):
    """The actor may act, but a rule of the process refuses it."""

    status = 422
    title = "Refused by the rules of the process"


class StaleVersion(DomainError):
    """The change was based on a version that is no longer current."""

    status = 412
    title = "Stale version"


class Conflict(DomainError):
    status = 409
    title = "Conflict"


class InvalidInput(DomainError):
    """Input that failed validation; `fields` maps each field to its messages."""

    status = 422
    title = "Invalid input"

    def __init__(self, detail: str, fields: dict):
        super().__init__(detail)
        self.fields = fields
