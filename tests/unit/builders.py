"""Plain builders for unit tests: domain objects and facts, no database.

City and member-state names come from reference/ascn.json; everything else is a placeholder.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

from scn_workflow.domain.model import SYSTEM, Actor, Cycle, MemberState, Nomination, Project, Role
from scn_workflow.domain.rules import Facts

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

CYCLE = Cycle("ASCN-2026", "Placeholder 2026 cycle", opens_at=datetime(2026, 1, 1, tzinfo=UTC),
              closes_at=datetime(2027, 1, 1, tzinfo=UTC), limit_per_state=3)
INDONESIA = MemberState("ID", "Indonesia", lead_agency_name="Kementerian Dalam Negeri",
                        lead_agency_email="lead@agency.example")

SUBMITTER_ID = Actor("sub-id", Role.SUBMITTER, "ID")
SUBMITTER_TH = Actor("sub-th", Role.SUBMITTER, "TH")
REVIEWER_SG = Actor("rev-sg", Role.REVIEWER, "SG")
REVIEWER_ID = Actor("rev-id", Role.REVIEWER, "ID")
REVIEWER_PH = Actor("rev-ph", Role.REVIEWER, "PH")  # the reviewer who reviewed, once a nomination is reviewed
OPERATOR = Actor("ops", Role.OPERATOR)
ADMIN = Actor("root", Role.ADMIN)
SYSTEM_ACTOR = SYSTEM

FOCUS_AREAS = ["civic_social", "quality_environment"]
ASSESSMENT = {"scores": {"civic_social": 4, "quality_environment": 3}, "recommendation": "accept",
              "summary": "Placeholder summary."}
COMMENT = "Placeholder comment."

AFTER_REVIEW = ("reviewed", "accepted", "handed_over", "rejected")
AFTER_SUBMISSION = ("submitted",) + AFTER_REVIEW


def nomination(state: str = "drafted", *, city: str = "Banyuwangi", member_state: str = "ID",
               cycle: str = "ASCN-2026", **content) -> Nomination:
    """A complete nomination put straight into `state`, as if it had walked there.

    Past submission its checks passed; past review it was reviewed by rev-ph.
    """
    fields = dict(
        csco_name="Placeholder Officer", csco_email="csco@city.example", vision="A placeholder vision.",
        focus_areas=list(FOCUS_AREAS),
        projects=[Project("Placeholder project A", "civic_social", priority=True),
                  Project("Placeholder project B", "quality_environment")],
    )
    fields.update(content)
    n = Nomination(member_state=member_state, cycle=cycle, city_name=city,
                   reference=f"{cycle}-{member_state}-001", created_by="sub-id", now=NOW, **fields)
    n.state = state
    if state in AFTER_SUBMISSION:
        n.submitted_at = NOW
        n.checks_outcome = "passed"
    if state in AFTER_REVIEW:
        n.reviewed_by = REVIEWER_PH.username
        n.assessment = dict(ASSESSMENT)
    return n


def facts(actor: Actor, **overrides) -> Facts:
    """Facts under which every rule that is not about who acts passes."""
    values = dict(actor=actor, now=NOW, comment=COMMENT, assessment=copy.deepcopy(ASSESSMENT),
                  cycle=CYCLE, member_state=INDONESIA, active_in_cycle=0, limit=3,
                  package_delivered=True)
    values.update(overrides)
    return Facts(**values)


def snapshot(n: Nomination) -> dict:
    """Everything about a nomination, to show a refusal changed nothing.

    SQLAlchemy's instrumentation state is left out: once any test in the process has mapped the
    domain classes (persistence maps them from outside), instances carry it, and it is not theirs."""
    return copy.deepcopy({k: v for k, v in vars(n).items() if not k.startswith("_sa_")})
