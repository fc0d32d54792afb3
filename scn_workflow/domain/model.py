"""Entities of the nomination process. Persistence is mapped onto them from outside."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Role(str, enum.Enum):
    SUBMITTER = "submitter"
    REVIEWER = "reviewer"
    OPERATOR = "operator"
    ADMIN = "admin"
    SYSTEM = "system"  # the workers; never a user account


ACTIVE_STATES = frozenset({"submitted", "reviewed", "accepted", "handed_over"})
"""States that count against a member state's limit in a cycle."""


@dataclass(eq=False)
class MemberState:
    code: str
    name: str
    lead_agency_name: str | None = None
    lead_agency_email: str | None = None
    lead_agency_webhook_url: str | None = None
    lead_agency_webhook_secret: str | None = None
    lead_agency_language: str = "en"

    @property
    def has_lead_agency(self) -> bool:
        """A lead agency is set when it has a name and a way to receive the package."""
        return bool(self.lead_agency_name and (self.lead_agency_email or self.lead_agency_webhook_url))


@dataclass(eq=False)
class LimitOverride:
    cycle_code: str
    member_state: str
    limit: int
    reason: str
    set_by: str
    set_at: datetime


@dataclass(eq=False)
class Cycle:
    code: str
    name: str
    opens_at: datetime
    closes_at: datetime
    limit_per_state: int = 3
    requires_action_plan: bool = False

    def is_open(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at


@dataclass(eq=False)
class User:
    username: str
    email: str
    role: Role
    member_state: str | None = None
    password_hash: str = ""
    active: bool = True
    id: int | None = None
    name: str | None = None
    language: str | None = None  # "en" or "id"; None: the browser's language
    mail_digest: bool = False
    must_change_password: bool = False

    def __post_init__(self):
        self.role = Role(self.role)


@dataclass(frozen=True)
class Actor:
    """Who acts: a user's identity as the rules see it, or the system."""

    username: str
    role: Role
    member_state: str | None = None
    language: str | None = None  # what the person reads: "en" or "id"; None: what their browser asks for

    @classmethod
    def of(cls, user: User) -> "Actor":
        return cls(user.username, Role(user.role), user.member_state, user.language)


SYSTEM = Actor("system", Role.SYSTEM)


@dataclass(frozen=True)
class Project:
    title: str
    focus_area: str
    description: str = ""
    priority: bool = False

    def as_dict(self) -> dict:
        return {"title": self.title, "focus_area": self.focus_area,
                "description": self.description, "priority": self.priority}


@dataclass(frozen=True)
class DomainEvent:
    """Something that happened to a nomination; persisted as an audit event and an outbox row."""

    name: str
    actor: str
    occurred_at: datetime
    from_state: str | None
    to_state: str | None
    comment: str | None = None
    payload: dict = field(default_factory=dict)


EDITABLE_FIELDS = ("city_name", "region", "population", "csco_name", "csco_email",
                   "vision", "focus_areas", "projects")
REQUIRED_FIELDS = ("city_name", "csco_name", "csco_email", "vision", "focus_areas", "projects")


class Nomination:
    """The aggregate: a city nominated by a member state in a cycle."""

    def __init__(self, *, member_state: str, cycle: str, city_name: str, reference: str,
                 created_by: str, now: datetime, region: str | None = None,
                 population: int | None = None, csco_name: str | None = None,
                 csco_email: str | None = None, vision: str | None = None,
                 focus_areas: list[str] | None = None, projects: list[Project] | None = None):
        self.id: int | None = None
        self.reference = reference
        self.member_state = member_state
        self.cycle = cycle
        self.city_name = city_name
        self.region = region
        self.population = population
        self.csco_name = csco_name
        self.csco_email = csco_email
        self.vision = vision
        self.focus_areas = list(focus_areas or [])
        self.projects = list(projects or [])
        self.state = "drafted"
        self.version = 1
        self.created_by = created_by
        self.created_at = now
        self.updated_at = now
        self.submitted_at: datetime | None = None
        self.reviewed_by: str | None = None
        self.assessment: dict | None = None
        self.checks_outcome: str | None = None
        self.last_event_hash: str | None = None
        self.event_count = 0
        self.events: list[DomainEvent] = []
        self.record("nomination.created", created_by, now, None, "drafted", payload=self.snapshot())

    def record(self, name: str, actor: str, now: datetime, from_state: str | None,
               to_state: str | None, comment: str | None = None, payload: dict | None = None) -> DomainEvent:
        event = DomainEvent(name, actor, now, from_state, to_state, comment, dict(payload or {}))
        self.events.append(event)
        return event

    def snapshot(self) -> dict:
        """The editable content, as plain data."""
        data = {name: getattr(self, name) for name in EDITABLE_FIELDS}
        data["projects"] = [p.as_dict() for p in self.projects]
        data["focus_areas"] = list(self.focus_areas)
        return data

    def missing_fields(self) -> list[str]:
        return [name for name in REQUIRED_FIELDS if getattr(self, name) in (None, "", [])]

    def update(self, changes: dict, actor: str, now: datetime) -> dict:
        """Apply edits of a draft; returns what changed (field -> new value)."""
        changed = {}
        for name, value in changes.items():
            if name not in EDITABLE_FIELDS:
                raise KeyError(name)
            if name == "projects":
                value = [p if isinstance(p, Project) else Project(**p) for p in value]
            if getattr(self, name) != value:
                setattr(self, name, value)
                changed[name] = value
        if changed:
            self.version += 1
            self.updated_at = now
            payload = {k: ([p.as_dict() for p in v] if k == "projects" else v) for k, v in changed.items()}
            self.record("nomination.updated", actor, now, self.state, self.state, payload={"changes": payload})
        return changed

    def add_attachment(self, kind: str, filename: str, content_hash: str, size: int, actor: str,
                       now: datetime) -> None:
        """Record an attachment added to the draft (the file itself is stored by the service)."""
        self.version += 1
        self.updated_at = now
        self.record("nomination.updated", actor, now, self.state, self.state, payload={"attachment_added": {
            "kind": kind, "filename": filename, "sha256": content_hash, "size": size}})

    def complete_checks(self, outcome: str, results: list[dict], now: datetime) -> None:
        """Record the outcome of the automated checks of the current submission."""
        self.checks_outcome = outcome
        self.version += 1
        self.updated_at = now
        self.record("checks.completed", "system", now, self.state, self.state,
                    payload={"outcome": outcome, "checks": results})

    def note_handover_failed(self, error: str, accepted_event_id: str, now: datetime) -> None:
        """Record that the handover package could not be delivered, for good."""
        self.version += 1
        self.updated_at = now
        self.record("handover.failed", "system", now, self.state, self.state, comment=error,
                    payload={"accepted_event_id": accepted_event_id})

    def note_handover_acknowledged(self, agency: str, via: str, accepted_event_id: str, now: datetime) -> None:
        """Record that the lead agency acknowledged receipt of the handover package (`via`: webhook or link)."""
        self.version += 1
        self.updated_at = now
        actor = agency if len(agency) <= 80 else agency[:79] + "…"  # the actor column's width; the payload has it all
        self.record("handover.acknowledged", actor, now, self.state, self.state,
                    payload={"accepted_event_id": accepted_event_id, "agency": agency, "via": via})

    def __repr__(self):
        return f"<Nomination {self.reference} {self.city_name} {self.state} v{self.version}>"
