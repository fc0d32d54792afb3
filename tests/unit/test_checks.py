"""The automated checks: each one passed, warning or failed, and the outcome they add up to."""

from __future__ import annotations

import pytest

from scn_workflow.domain.checks import FAILED, PASSED, WARNING, CheckFacts, CheckResult, outcome, run
from scn_workflow.domain.model import Project
from tests.unit.builders import nomination


def check_facts(**changes) -> CheckFacts:
    values = dict(active_in_cycle=0, limit=3, same_city_in_cycle=[], accepted_earlier=[],
                  requires_action_plan=False, has_action_plan=False)
    values.update(changes)
    return CheckFacts(**values)


def by_name(results) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def test_a_good_nomination_passes_every_check():
    results = run(nomination("submitted"), check_facts())
    assert [r.name for r in results] == ["completeness", "state_limit", "duplicate_city", "focus_areas_covered"]
    assert all(r.outcome == PASSED for r in results)
    assert all(r.message for r in results)
    assert outcome(results) == PASSED


def test_completeness_fails_and_lists_what_is_missing():
    check = by_name(run(nomination("submitted", csco_name="", vision=None), check_facts()))["completeness"]
    assert (check.outcome, check.blocking) == (FAILED, True)
    assert "csco_name" in check.message and "vision" in check.message
    assert "city_name" not in check.message


@pytest.mark.parametrize("active, limit, expected", [(0, 3, PASSED), (2, 3, PASSED), (3, 3, FAILED),
                                                      (4, 3, FAILED), (3, 4, PASSED)])
def test_state_limit(active, limit, expected):
    check = by_name(run(nomination("submitted"), check_facts(active_in_cycle=active, limit=limit)))["state_limit"]
    assert check.outcome == expected and check.blocking
    assert f"{active + 1} active" in check.message and f"limit is {limit}" in check.message


def test_the_same_city_twice_in_a_cycle_fails():
    results = run(nomination("submitted", city="Makassar"), check_facts(same_city_in_cycle=["ASCN-2026-ID-002"]))
    check = by_name(results)["duplicate_city"]
    assert (check.outcome, check.blocking) == (FAILED, True)
    assert "Makassar" in check.message and "ASCN-2026-ID-002" in check.message
    assert outcome(results) == FAILED


def test_a_city_accepted_in_an_earlier_cycle_is_a_warning():
    results = run(nomination("submitted", city="Banyuwangi"), check_facts(accepted_earlier=["ASCN-2018"]))
    check = by_name(results)["duplicate_city"]
    assert (check.outcome, check.blocking) == (WARNING, False)
    assert "Banyuwangi" in check.message and "ASCN-2018" in check.message
    assert outcome(results) == WARNING


def test_a_duplicate_in_this_cycle_outweighs_an_earlier_acceptance():
    results = run(nomination("submitted", city="Banyuwangi"),
                  check_facts(same_city_in_cycle=["ASCN-2026-ID-002"], accepted_earlier=["ASCN-2018"]))
    assert by_name(results)["duplicate_city"].outcome == FAILED
    assert [r.name for r in results].count("duplicate_city") == 1


def test_a_claimed_focus_area_without_a_project_fails():
    n = nomination("submitted", focus_areas=["civic_social", "health_wellbeing", "quality_environment"],
                   projects=[Project("Placeholder project", "civic_social"),
                             Project("Placeholder project", "quality_environment")])
    check = by_name(run(n, check_facts()))["focus_areas_covered"]
    assert (check.outcome, check.blocking) == (FAILED, True)
    assert "health_wellbeing" in check.message
    assert "civic_social" not in check.message


def test_a_project_outside_the_claimed_focus_areas_does_not_fail_coverage():
    n = nomination("submitted", focus_areas=["civic_social"],
                   projects=[Project("Placeholder project", "civic_social"),
                             Project("Placeholder project", "safety_security")])
    assert by_name(run(n, check_facts()))["focus_areas_covered"].outcome == PASSED


def test_no_action_plan_check_when_the_cycle_does_not_require_one():
    results = run(nomination("submitted"), check_facts(requires_action_plan=False, has_action_plan=False))
    assert "action_plan" not in by_name(results)


@pytest.mark.parametrize("attached, expected", [(True, PASSED), (False, FAILED)])
def test_action_plan_when_the_cycle_requires_one(attached, expected):
    results = run(nomination("submitted"), check_facts(requires_action_plan=True, has_action_plan=attached))
    check = by_name(results)["action_plan"]
    assert (check.outcome, check.blocking) == (expected, True)
    assert "Action Plan" in check.message
    assert outcome(results) == expected


def _result(name, result, blocking=True):
    return CheckResult(name, result, blocking, "placeholder")


@pytest.mark.parametrize("results, expected", [
    ([], PASSED),
    ([_result("a", PASSED), _result("b", PASSED)], PASSED),
    ([_result("a", PASSED), _result("b", WARNING, blocking=False)], WARNING),
    ([_result("a", WARNING, blocking=False), _result("b", FAILED)], FAILED),
    ([_result("a", FAILED), _result("b", WARNING, blocking=False)], FAILED),
])
def test_outcome_precedence(results, expected):
    assert outcome(results) == expected


def test_every_failure_is_reported_not_only_the_first():
    n = nomination("submitted", vision=None, focus_areas=["civic_social", "health_wellbeing"])
    results = run(n, check_facts(active_in_cycle=3, same_city_in_cycle=["ASCN-2026-ID-003"],
                                 requires_action_plan=True))
    assert {r.name for r in results if r.outcome == FAILED} == {
        "completeness", "state_limit", "duplicate_city", "focus_areas_covered", "action_plan"}
