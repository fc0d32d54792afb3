"""Each rule refuses with its name and a message a person understands; refusals change nothing."""

from __future__ import annotations

from datetime import datetime

import pytest

from scn_workflow.domain import workflow
from scn_workflow.domain.errors import Forbidden, InvalidTransition, RuleViolation, UnknownTrigger
from scn_workflow.domain.model import Actor, Cycle, MemberState, Role
from tests.unit.builders import (ADMIN, OPERATOR, REVIEWER_ID, REVIEWER_PH, REVIEWER_SG, SUBMITTER_ID,
                                 SUBMITTER_TH, SYSTEM_ACTOR, UTC, facts, nomination, snapshot)


def refusal(error_type, n, trigger, f):
    """Fire, expect `error_type`, check nothing changed; return {rule: message}."""
    before = snapshot(n)
    with pytest.raises(error_type) as refused:
        workflow.fire(n, trigger, f)
    assert snapshot(n) == before
    violations = {v.rule: v.message for v in refused.value.violations}
    for message in violations.values():
        assert message in refused.value.detail  # the detail a user reads carries every reason
    return violations


def refused_by_rules(n, trigger, f):
    return refusal(RuleViolation, n, trigger, f)


# --- submit -----------------------------------------------------------------------------------

def test_submit_lists_the_missing_fields_by_name():
    n = nomination("drafted", csco_email=None, vision="", focus_areas=[], projects=[])
    violations = refused_by_rules(n, "submit", facts(SUBMITTER_ID))
    assert set(violations) == {"complete"}
    message = violations["complete"]
    for name in ("csco_email", "vision", "focus_areas", "projects"):
        assert name in message
    assert "city_name" not in message and "csco_name" not in message


@pytest.mark.parametrize("now, when", [(datetime(2025, 12, 31, 23, 59, tzinfo=UTC), "before it opens"),
                                       (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), "when it has closed"),
                                       (datetime(2027, 3, 1, tzinfo=UTC), "after it closed")])
def test_submit_refused_while_the_cycle_is_closed(now, when):
    n = nomination("drafted")
    violations = refused_by_rules(n, "submit", facts(SUBMITTER_ID, now=now))
    assert set(violations) == {"cycle_open"}, when
    message = violations["cycle_open"]
    assert "ASCN-2026" in message and "not open" in message
    assert "2026-01-01" in message and "2027-01-01" in message


def test_submit_refused_when_the_cycle_does_not_exist():
    violations = refused_by_rules(nomination("drafted"), "submit", facts(SUBMITTER_ID, cycle=None))
    assert set(violations) == {"cycle_open"}
    assert "ASCN-2026" in violations["cycle_open"] and "does not exist" in violations["cycle_open"]


def test_submit_allowed_on_the_first_and_last_moment_of_the_cycle():
    for now in (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)):
        n = nomination("drafted")
        workflow.fire(n, "submit", facts(SUBMITTER_ID, now=now))
        assert n.state == "submitted"


def test_submit_refused_when_the_member_state_is_at_its_limit():
    n = nomination("drafted", city="Makassar")
    violations = refused_by_rules(n, "submit", facts(SUBMITTER_ID, active_in_cycle=3, limit=3))
    assert set(violations) == {"within_state_limit"}
    message = violations["within_state_limit"]
    assert "ID" in message and "ASCN-2026" in message and "3" in message


def test_submit_allowed_below_the_limit():
    n = nomination("drafted", city="Makassar")
    workflow.fire(n, "submit", facts(SUBMITTER_ID, active_in_cycle=2, limit=3))
    assert n.state == "submitted"


def test_an_override_lets_malaysia_nominate_a_fourth_city_as_in_2018():
    pilot = Cycle("ASCN-2018", "2018 pilot cohort", opens_at=datetime(2018, 1, 1, tzinfo=UTC),
                  closes_at=datetime(2019, 1, 1, tzinfo=UTC), limit_per_state=3)
    malaysia = Actor("sub-my", Role.SUBMITTER, "MY")
    when = datetime(2018, 4, 1, tzinfo=UTC)
    # Johor Bahru, Kota Kinabalu and Kuala Lumpur are active; Kuching is the fourth.
    at_default = nomination("drafted", city="Kuching", member_state="MY", cycle="ASCN-2018")
    violations = refused_by_rules(at_default, "submit",
                                  facts(malaysia, now=when, cycle=pilot, active_in_cycle=3, limit=3))
    assert set(violations) == {"within_state_limit"}
    assert "MY" in violations["within_state_limit"]

    overridden = nomination("drafted", city="Kuching", member_state="MY", cycle="ASCN-2018")
    workflow.fire(overridden, "submit", facts(malaysia, now=when, cycle=pilot, active_in_cycle=3, limit=4))
    assert overridden.state == "submitted"


def test_every_failing_rule_is_named_in_one_refusal():
    n = nomination("drafted", vision=None)
    closed = datetime(2027, 2, 1, tzinfo=UTC)
    violations = refused_by_rules(n, "submit", facts(SUBMITTER_ID, now=closed, active_in_cycle=3, limit=3))
    assert set(violations) == {"complete", "cycle_open", "within_state_limit"}
    assert "vision" in violations["complete"]


def test_who_acts_is_decided_before_the_rules():
    """An actor who may not fire it learns that (403), not the rules it would also break."""
    n = nomination("drafted", vision=None)
    violations = refusal(Forbidden, n, "submit", facts(SUBMITTER_TH, cycle=None, active_in_cycle=9, limit=3))
    assert set(violations) == {"submitter_of_member_state"}
    assert "ID" in violations["submitter_of_member_state"]


# --- return_for_revision and reject -------------------------------------------------------------

@pytest.mark.parametrize("state", ["submitted", "reviewed"])
@pytest.mark.parametrize("comment", [None, "", "   \n"])
def test_return_for_revision_needs_a_comment(state, comment):
    violations = refused_by_rules(nomination(state), "return_for_revision", facts(REVIEWER_SG, comment=comment))
    assert set(violations) == {"comment_required"}
    assert "comment" in violations["comment_required"]


@pytest.mark.parametrize("comment", [None, "", "  "])
def test_reject_needs_a_reason(comment):
    violations = refused_by_rules(nomination("reviewed"), "reject", facts(REVIEWER_SG, comment=comment))
    assert set(violations) == {"reason_required"}
    assert "reason" in violations["reason_required"]


def test_accept_needs_no_comment():
    n = nomination("reviewed")
    event = workflow.fire(n, "accept", facts(REVIEWER_SG, comment=None))
    assert n.state == "accepted" and event.comment is None


# --- review -------------------------------------------------------------------------------------

@pytest.mark.parametrize("outcome", [None, "pending"])
def test_review_refused_before_the_checks_finished(outcome):
    n = nomination("submitted")
    n.checks_outcome = outcome
    violations = refused_by_rules(n, "review", facts(REVIEWER_SG))
    assert set(violations) == {"checks_finished"}
    assert "checks" in violations["checks_finished"] and "not finished" in violations["checks_finished"]


def test_review_refused_after_a_blocking_check_failed():
    n = nomination("submitted")
    n.checks_outcome = "failed"
    violations = refused_by_rules(n, "review", facts(REVIEWER_SG))
    assert set(violations) == {"no_blocking_check_failed"}
    assert "failed" in violations["no_blocking_check_failed"]


def test_review_allowed_after_checks_with_a_warning():
    n = nomination("submitted")
    n.checks_outcome = "warning"
    workflow.fire(n, "review", facts(REVIEWER_SG))
    assert n.state == "reviewed"


@pytest.mark.parametrize("assessment", [None, {}])
def test_review_needs_an_assessment(assessment):
    violations = refused_by_rules(nomination("submitted"), "review", facts(REVIEWER_SG, assessment=assessment))
    assert set(violations) == {"assessment_required"}
    assert "assessment" in violations["assessment_required"]


def _assessment(**changes):
    a = {"scores": {"civic_social": 4, "quality_environment": 3}, "recommendation": "accept",
         "summary": "Placeholder summary."}
    a.update(changes)
    return a


@pytest.mark.parametrize("assessment, mentions", [
    (_assessment(scores={"civic_social": 4}), ["No score", "quality_environment"]),
    (_assessment(scores={}), ["No score", "civic_social", "quality_environment"]),
    (_assessment(scores={"civic_social": 0, "quality_environment": 3}), ["1 to 5", "civic_social"]),
    (_assessment(scores={"civic_social": 4, "quality_environment": 6}), ["1 to 5", "quality_environment"]),
    (_assessment(scores={"civic_social": 4.5, "quality_environment": 3}), ["1 to 5", "civic_social"]),
    (_assessment(scores={"civic_social": True, "quality_environment": 3}), ["1 to 5", "civic_social"]),
    (_assessment(scores={"civic_social": "4", "quality_environment": 3}), ["1 to 5", "civic_social"]),
    (_assessment(scores={"civic_social": 4, "quality_environment": 3, "health_wellbeing": 5}),
     ["does not claim", "health_wellbeing"]),
    (_assessment(recommendation="maybe"), ["recommendation", "accept", "reject", "return"]),
    (_assessment(recommendation=None), ["recommendation"]),
])
def test_review_refuses_an_incomplete_assessment(assessment, mentions):
    violations = refused_by_rules(nomination("submitted"), "review", facts(REVIEWER_SG, assessment=assessment))
    assert set(violations) == {"assessment_complete"}
    for word in mentions:
        assert word in violations["assessment_complete"]


def test_review_names_every_failing_rule():
    n = nomination("submitted")
    n.checks_outcome = "failed"
    violations = refused_by_rules(n, "review", facts(REVIEWER_SG, assessment=None))
    assert set(violations) == {"no_blocking_check_failed", "assessment_required"}


def test_a_reviewer_of_the_same_member_state_may_not_review():
    violations = refusal(Forbidden, nomination("submitted"), "review", facts(REVIEWER_ID))
    assert set(violations) == {"reviewer_not_of_member_state"}
    assert "ID" in violations["reviewer_not_of_member_state"]


@pytest.mark.parametrize("trigger", ["accept", "reject"])
def test_a_reviewer_of_the_same_member_state_may_not_accept_or_reject(trigger):
    violations = refusal(Forbidden, nomination("reviewed"), trigger, facts(REVIEWER_ID, comment="A reason."))
    assert set(violations) == {"reviewer_not_of_member_state"}
    assert "ID" in violations["reviewer_not_of_member_state"]


# --- accept and reject: four eyes ----------------------------------------------------------------

@pytest.mark.parametrize("trigger", ["accept", "reject"])
def test_the_reviewer_who_reviewed_may_not_accept_or_reject(trigger):
    violations = refusal(Forbidden, nomination("reviewed"), trigger, facts(REVIEWER_PH))
    assert set(violations) == {"four_eyes"}
    assert "rev-ph" in violations["four_eyes"]


@pytest.mark.parametrize("trigger", ["accept", "reject"])
def test_another_reviewer_may_accept_or_reject(trigger):
    n = nomination("reviewed")
    workflow.fire(n, trigger, facts(REVIEWER_SG))
    assert n.state == {"accept": "accepted", "reject": "rejected"}[trigger]


def test_four_eyes_after_a_real_review():
    n = nomination("submitted")
    workflow.fire(n, "review", facts(REVIEWER_SG))
    violations = refusal(Forbidden, n, "accept", facts(REVIEWER_SG))
    assert set(violations) == {"four_eyes"}
    workflow.fire(n, "accept", facts(REVIEWER_PH))
    assert n.state == "accepted"


# --- hand_over ----------------------------------------------------------------------------------

@pytest.mark.parametrize("member_state", [
    None,
    MemberState("ID", "Indonesia"),
    MemberState("ID", "Indonesia", lead_agency_name="Kementerian Dalam Negeri"),  # no way to deliver
    MemberState("ID", "Indonesia", lead_agency_email="lead@agency.example"),  # no name
])
def test_hand_over_needs_a_lead_agency(member_state):
    violations = refused_by_rules(nomination("accepted"), "hand_over", facts(SYSTEM_ACTOR, member_state=member_state))
    assert set(violations) == {"lead_agency_set"}
    assert "lead agency" in violations["lead_agency_set"] and "ID" in violations["lead_agency_set"]


def test_hand_over_with_a_webhook_only_lead_agency():
    ms = MemberState("ID", "Indonesia", lead_agency_name="Kementerian Dalam Negeri",
                     lead_agency_webhook_url="https://agency.example/hook")
    n = nomination("accepted")
    workflow.fire(n, "hand_over", facts(OPERATOR, member_state=ms))
    assert n.state == "handed_over"


def test_hand_over_needs_the_package_delivered():
    violations = refused_by_rules(nomination("accepted"), "hand_over", facts(SYSTEM_ACTOR, package_delivered=False))
    assert set(violations) == {"package_delivered"}
    assert "package" in violations["package_delivered"] and "not been delivered" in violations["package_delivered"]


def test_hand_over_names_both_missing_things():
    violations = refused_by_rules(nomination("accepted"), "hand_over",
                                  facts(OPERATOR, member_state=None, package_delivered=False))
    assert set(violations) == {"lead_agency_set", "package_delivered"}


def test_an_admin_may_not_hand_over():
    violations = refusal(Forbidden, nomination("accepted"), "hand_over", facts(ADMIN))
    assert set(violations) == {"system_or_operator"}


# --- triggers and states --------------------------------------------------------------------------

@pytest.mark.parametrize("trigger", ["approve", "", None, ["submit"]])
def test_an_unknown_trigger_is_named(trigger):
    n = nomination("drafted")
    before = snapshot(n)
    with pytest.raises(UnknownTrigger) as refused:
        workflow.fire(n, trigger, facts(SUBMITTER_ID))
    assert refused.value.status == 422
    assert [v.rule for v in refused.value.violations] == ["known_trigger"]
    assert repr(trigger) in refused.value.detail
    assert "submit, return_for_revision, review" in refused.value.detail  # says what the triggers are
    assert snapshot(n) == before


def test_the_wrong_state_says_where_the_trigger_can_be_fired():
    with pytest.raises(InvalidTransition) as refused:
        workflow.fire(nomination("drafted"), "accept", facts(REVIEWER_SG))
    assert refused.value.status == 409
    assert "drafted" in refused.value.detail and "reviewed" in refused.value.detail


def test_the_wrong_state_is_decided_before_who_acts():
    with pytest.raises(InvalidTransition):
        workflow.fire(nomination("handed_over"), "submit", facts(ADMIN))


def test_check_refuses_like_fire_and_passes_silently():
    n = nomination("drafted", vision=None)
    before = snapshot(n)
    with pytest.raises(RuleViolation) as refused:
        workflow.check(n, "submit", facts(SUBMITTER_ID))
    assert [v.rule for v in refused.value.violations] == ["complete"]
    assert workflow.check(nomination("drafted"), "submit", facts(SUBMITTER_ID)) is None
    assert snapshot(n) == before


def test_the_machine_itself_refuses_what_a_rule_refuses():
    """Firing through the machine, bypassing fire(), still obeys the rules."""
    n = nomination("drafted", vision=None)
    before = snapshot(n)
    assert workflow.MACHINE.events["submit"].trigger(n, facts=facts(SUBMITTER_ID)) is False
    assert snapshot(n) == before


def test_needs_names_the_facts_to_gather():
    assert workflow.needs("submit") == {"cycle", "limit"}
    assert workflow.needs("hand_over") == {"member_state", "delivery"}
    assert workflow.needs("accept") == frozenset()
    with pytest.raises(UnknownTrigger):
        workflow.needs("approve")


# --- describe and allowed_triggers ----------------------------------------------------------------

DESIGN_TABLE = {
    "submit": (["drafted"], "submitted"),
    "return_for_revision": (["submitted", "reviewed"], "drafted"),
    "review": (["submitted"], "reviewed"),
    "accept": (["reviewed"], "accepted"),
    "reject": (["reviewed"], "rejected"),
    "withdraw": (["drafted", "submitted"], "withdrawn"),
    "hand_over": (["accepted"], "handed_over"),
}


def test_describe_lists_the_states_and_triggers_of_design_md():
    d = workflow.describe()
    assert sorted(d["states"]) == sorted(["drafted", "submitted", "reviewed", "accepted", "handed_over",
                                          "rejected", "withdrawn"])
    assert d["initial"] == "drafted"
    assert set(d["terminal"]) == {"handed_over", "rejected", "withdrawn"}
    got = {t["trigger"]: (sorted(t["from"]), t["to"]) for t in d["triggers"]}
    assert got == {k: (sorted(v[0]), v[1]) for k, v in DESIGN_TABLE.items()}


def test_describe_names_each_rule_once():
    by_trigger = {t["trigger"]: t for t in workflow.describe()["triggers"]}

    def names(trigger, kind):
        return [rule["rule"] for rule in by_trigger[trigger][kind]]

    assert names("submit", "permissions") == ["submitter_of_member_state"]
    assert names("submit", "rules") == ["complete", "cycle_open", "within_state_limit"]
    assert names("return_for_revision", "permissions") == ["reviewer"]
    assert names("return_for_revision", "rules") == ["comment_required"]
    assert names("withdraw", "permissions") == ["submitter_of_member_state"]
    assert names("withdraw", "rules") == []
    assert names("review", "permissions") == ["reviewer", "reviewer_not_of_member_state"]
    assert names("accept", "permissions") == ["reviewer", "reviewer_not_of_member_state", "four_eyes"]
    assert names("reject", "permissions") == ["reviewer", "reviewer_not_of_member_state", "four_eyes"]
    assert names("hand_over", "rules") == ["lead_agency_set", "package_delivered"]
    for t in by_trigger.values():
        assert t["who"] and t["event"].startswith("nomination.")
        assert all(rule["description"] for rule in t["permissions"] + t["rules"])


@pytest.mark.parametrize("state, actor, triggers", [
    ("drafted", SUBMITTER_ID, ["submit", "withdraw"]),
    ("drafted", SUBMITTER_TH, []),
    ("submitted", SUBMITTER_ID, ["withdraw"]),
    ("submitted", REVIEWER_SG, ["return_for_revision", "review"]),
    ("submitted", REVIEWER_ID, ["return_for_revision"]),
    ("reviewed", REVIEWER_PH, ["return_for_revision"]),
    ("reviewed", REVIEWER_SG, ["return_for_revision", "accept", "reject"]),
    ("accepted", OPERATOR, ["hand_over"]),
    ("accepted", ADMIN, []),
    ("handed_over", SYSTEM_ACTOR, []),
    ("rejected", REVIEWER_SG, []),
    ("withdrawn", SUBMITTER_ID, []),
])
def test_allowed_triggers(state, actor, triggers):
    assert workflow.allowed_triggers(nomination(state), facts(actor)) == triggers


def test_allowed_triggers_do_not_anticipate_request_rules():
    """Buttons show what the actor may fire; a missing comment is explained when it is fired."""
    f = facts(REVIEWER_SG, comment=None, assessment=None)
    assert workflow.allowed_triggers(nomination("submitted"), f) == ["return_for_revision", "review"]


# --- one shared machine ---------------------------------------------------------------------------

def test_the_machine_is_shared_and_never_bound_to_a_nomination(monkeypatch):
    machine = workflow.MACHINE

    def no_new_machine(*args, **kwargs):
        raise AssertionError("a machine was built while firing")

    monkeypatch.setattr(workflow, "Machine", no_new_machine)
    monkeypatch.setattr(workflow, "_build_machine", no_new_machine)
    fired = []
    real_trigger = machine.events["submit"].trigger
    monkeypatch.setattr(machine.events["submit"], "trigger",
                        lambda model, **kw: fired.append(model) or real_trigger(model, **kw))

    n = nomination("drafted")
    workflow.fire(n, "submit", facts(SUBMITTER_ID))
    n.checks_outcome = "passed"
    workflow.fire(n, "review", facts(REVIEWER_SG))

    assert fired == [n]  # fire() went through the one machine
    assert workflow.MACHINE is machine
    assert machine.models == []
    assert n not in machine.models
    # nothing of the machine was attached to the nomination
    for attribute in ("submit", "trigger", "is_drafted", "may_submit", "to_submitted"):
        assert not hasattr(n, attribute)
