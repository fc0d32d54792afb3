"""Every (state, trigger, role): the outcome the table of DESIGN.md promises.

The expectations are written out here from DESIGN.md, not read from workflow.SPECS, so a
wrong line in the machine's definition shows up as a failing combination.
"""

from __future__ import annotations

import pytest

from scn_workflow.domain import workflow
from scn_workflow.domain.errors import Forbidden, InvalidTransition, RuleViolation
from tests.unit.builders import (ADMIN, NOW, OPERATOR, REVIEWER_ID, REVIEWER_PH, REVIEWER_SG, SUBMITTER_ID,
                                 SUBMITTER_TH, SYSTEM_ACTOR, facts, nomination, snapshot)

STATES = ["drafted", "submitted", "reviewed", "accepted", "handed_over", "rejected", "withdrawn"]
TRIGGERS = ["submit", "return_for_revision", "review", "accept", "reject", "withdraw", "hand_over"]

# The nomination is Indonesian (ID).
ROLES = {
    "submitter_same": SUBMITTER_ID,
    "submitter_other": SUBMITTER_TH,
    "reviewer_other": REVIEWER_SG,
    "reviewer_same": REVIEWER_ID,
    "reviewer_who_reviewed": REVIEWER_PH,  # reviewed_by once the nomination is reviewed
    "operator": OPERATOR,
    "admin": ADMIN,
    "system": SYSTEM_ACTOR,
}

# trigger: (from states, to state, event name), as in DESIGN.md.
MOVES = {
    "submit": ({"drafted"}, "submitted", "nomination.submitted"),
    "return_for_revision": ({"submitted", "reviewed"}, "drafted", "nomination.returned"),
    "review": ({"submitted"}, "reviewed", "nomination.reviewed"),
    "accept": ({"reviewed"}, "accepted", "nomination.accepted"),
    "reject": ({"reviewed"}, "rejected", "nomination.rejected"),
    "withdraw": ({"drafted", "submitted"}, "withdrawn", "nomination.withdrawn"),
    "hand_over": ({"accepted"}, "handed_over", "nomination.handed_over"),
}

# trigger: the roles that may fire it (DESIGN.md, "who may fire it").
WHO = {
    "submit": {"submitter_same"},
    "return_for_revision": {"reviewer_other", "reviewer_same", "reviewer_who_reviewed"},
    # rev-ph has not reviewed a submitted nomination yet; it is a reviewer of another state.
    "review": {"reviewer_other", "reviewer_who_reviewed"},
    # accept and reject: rev-ph reviewed it (four eyes) and rev-id is of its member state
    "accept": {"reviewer_other"},
    "reject": {"reviewer_other"},
    "withdraw": {"submitter_same"},
    "hand_over": {"operator", "system"},
}

NOT_REVIEWERS = {"submitter_other", "operator", "admin", "system"}

# (trigger, role) -> the permission rules a refusal names, for every role not in WHO.
DENIED = {}
for _role in ROLES:
    for _trigger in ("submit", "withdraw"):
        DENIED[_trigger, _role] = {"submitter_of_member_state"}
    DENIED["hand_over", _role] = {"system_or_operator"}
    for _trigger in ("return_for_revision", "review", "accept", "reject"):
        DENIED[_trigger, _role] = {"reviewer"}
for _trigger in ("review", "accept", "reject"):
    DENIED[_trigger, "reviewer_same"] = {"reviewer_not_of_member_state"}
    DENIED[_trigger, "submitter_same"] = {"reviewer"}  # not a reviewer: whose member state does not matter
DENIED["accept", "reviewer_who_reviewed"] = {"four_eyes"}
DENIED["reject", "reviewer_who_reviewed"] = {"four_eyes"}


def expected(state: str, trigger: str, role: str):
    sources, dest, event = MOVES[trigger]
    if state not in sources:
        return ("invalid", None)
    if role not in WHO[trigger]:
        return ("forbidden", DENIED[trigger, role])
    return ("moves", (dest, event))


def test_the_table_allows_what_design_md_allows():
    """A guard on the table itself: 15 allowed combinations from the 7x7x8."""
    allowed = [(s, t, r) for s in STATES for t in TRIGGERS for r in ROLES if expected(s, t, r)[0] == "moves"]
    assert len(allowed) == 15
    assert ("reviewed", "accept", "reviewer_who_reviewed") not in allowed
    assert ("reviewed", "accept", "reviewer_same") not in allowed
    assert ("reviewed", "reject", "reviewer_same") not in allowed
    assert ("submitted", "review", "reviewer_same") not in allowed


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("trigger", TRIGGERS)
@pytest.mark.parametrize("state", STATES)
def test_fire(state, trigger, role):
    n = nomination(state)
    actor = ROLES[role]
    before = snapshot(n)
    outcome, detail = expected(state, trigger, role)

    if outcome == "moves":
        dest, event_name = detail
        event = workflow.fire(n, trigger, facts(actor))
        assert n.state == dest
        assert n.version == before["version"] + 1
        assert len(n.events) == len(before["events"]) + 1
        assert n.events[:-1] == before["events"]
        assert n.events[-1] is event
        assert (event.name, event.actor, event.from_state, event.to_state) == (event_name, actor.username, state, dest)
        assert event.occurred_at == NOW
        assert n.updated_at == NOW
        return

    if outcome == "invalid":
        with pytest.raises(InvalidTransition) as refused:
            workflow.fire(n, trigger, facts(actor))
        assert refused.value.status == 409
        assert [v.rule for v in refused.value.violations] == ["valid_source_state"]
        assert trigger in refused.value.detail and state in refused.value.detail
    else:
        with pytest.raises(Forbidden) as refused:
            workflow.fire(n, trigger, facts(actor))
        assert refused.value.status == 403
        assert {v.rule for v in refused.value.violations} == detail
        assert all(v.message for v in refused.value.violations)
    assert not isinstance(refused.value, RuleViolation)
    assert snapshot(n) == before


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("state", STATES)
def test_allowed_triggers_match_the_table(state, role):
    """The buttons a user sees are exactly what the user may fire (all other rules satisfied)."""
    n = nomination(state)
    want = {t for t in TRIGGERS if expected(state, t, role)[0] == "moves"}
    assert set(workflow.allowed_triggers(n, facts(ROLES[role]))) == want


def test_submit_starts_the_checks():
    n = nomination("drafted")
    workflow.fire(n, "submit", facts(SUBMITTER_ID))
    assert n.submitted_at == NOW
    assert n.checks_outcome == "pending"


def test_review_records_the_reviewer_and_the_assessment():
    n = nomination("submitted")
    event = workflow.fire(n, "review", facts(REVIEWER_SG, comment=None))
    assert n.reviewed_by == "rev-sg"
    assert n.assessment["scores"] == {"civic_social": 4, "quality_environment": 3}
    assert event.payload == {"assessment": n.assessment}
    assert event.comment is None


@pytest.mark.parametrize("state", ["submitted", "reviewed"])
def test_return_for_revision_forgets_checks_and_review_and_keeps_the_comment(state):
    n = nomination(state)
    event = workflow.fire(n, "return_for_revision", facts(REVIEWER_SG, comment="Add a project for health."))
    assert n.state == "drafted"
    assert n.checks_outcome is None
    assert n.reviewed_by is None
    assert event.comment == "Add a project for health."


def test_a_nomination_walks_from_draft_to_handover():
    n = nomination("drafted")
    steps = [("submit", SUBMITTER_ID), ("review", REVIEWER_PH), ("accept", REVIEWER_SG), ("hand_over", SYSTEM_ACTOR)]
    for trigger, actor in steps:
        if trigger == "review":
            n.checks_outcome = "passed"  # the checks worker's part
        workflow.fire(n, trigger, facts(actor))
    assert n.state == "handed_over"
    assert [e.name for e in n.events] == ["nomination.created", "nomination.submitted", "nomination.reviewed",
                                          "nomination.accepted", "nomination.handed_over"]
    assert n.version == 5
