"""The automated checks run on each submission. Pure: the service layer supplies the facts."""

from __future__ import annotations

from dataclasses import dataclass

from scn_workflow.domain.errors import N_, Text
from scn_workflow.domain.model import Nomination

PASSED, WARNING, FAILED = "passed", "warning", "failed"


@dataclass(frozen=True)
class CheckFacts:
    active_in_cycle: int  # other active nominations of the member state in the cycle
    limit: int
    same_city_in_cycle: list[str]  # references of other live nominations of the city in this cycle
    accepted_earlier: list[str]  # cycles in which the city was accepted before
    requires_action_plan: bool
    has_action_plan: bool


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: str
    blocking: bool
    message: str


def run(nomination: Nomination, facts: CheckFacts) -> list[CheckResult]:
    """Every check, in a fixed order, each with its outcome and a message for people."""
    results = []
    missing = nomination.missing_fields()
    results.append(CheckResult("completeness", FAILED if missing else PASSED, True,
                               Text(N_("Missing: {fields}."), fields=", ".join(missing)) if missing
                               else Text(N_("Every required field is filled in."))))
    over = facts.active_in_cycle > facts.limit - 1
    results.append(CheckResult("state_limit", FAILED if over else PASSED, True,
                               Text(N_("{active} active nomination(s) with this one; the limit is {limit}."),
                                    active=facts.active_in_cycle + 1, limit=facts.limit)))
    if facts.same_city_in_cycle:
        results.append(CheckResult("duplicate_city", FAILED, True,
                                   Text(N_("{city} is also nominated in this cycle by {references}."),
                                        city=nomination.city_name, references=", ".join(facts.same_city_in_cycle))))
    elif facts.accepted_earlier:
        results.append(CheckResult("duplicate_city", WARNING, False,
                                   Text(N_("{city} was already accepted in {cycles}."), city=nomination.city_name,
                                        cycles=", ".join(facts.accepted_earlier))))
    else:
        results.append(CheckResult("duplicate_city", PASSED, True,
                                   Text(N_("{city} is nominated once in this cycle."), city=nomination.city_name)))
    covered = {p.focus_area for p in nomination.projects}
    uncovered = [area for area in nomination.focus_areas if area not in covered]
    results.append(CheckResult("focus_areas_covered", FAILED if uncovered else PASSED, True,
                               Text(N_("No project for focus area(s): {focus_areas}."), focus_areas=", ".join(uncovered))
                               if uncovered else Text(N_("Every claimed focus area has at least one project."))))
    if facts.requires_action_plan:
        results.append(CheckResult("action_plan", PASSED if facts.has_action_plan else FAILED, True,
                                   Text(N_("A Smart City Action Plan is attached.")) if facts.has_action_plan
                                   else Text(N_("The cycle requires a Smart City Action Plan (PDF) and none is "
                                                "attached."))))
    return results


def outcome(results: list[CheckResult]) -> str:
    """failed when a blocking check failed, warning when any warned, else passed."""
    if any(r.outcome == FAILED and r.blocking for r in results):
        return FAILED
    if any(r.outcome == WARNING for r in results):
        return WARNING
    return PASSED
