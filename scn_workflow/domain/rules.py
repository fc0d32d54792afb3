"""The rules of the process, one object each: a stable name and a check that explains a refusal.

A rule's check returns None when it passes, or a message for people when it refuses.
Rules read the nomination and `Facts`, which the service layer gathers before a trigger
is fired (only the facts a trigger's rules `need`), so the rules themselves stay pure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from scn_workflow.domain.errors import N_, Sentences, Text
from scn_workflow.domain.model import Actor, Cycle, MemberState, Nomination, Role

PERMISSION = "permission"  # who may fire: refused with 403
RULE = "rule"  # a rule of the process: refused with 422

RECOMMENDATIONS = ("accept", "reject", "return")


class Sight(enum.Enum):
    """Which nominations someone sees (DESIGN.md, Roles). `may_see` reads it in Python and
    services/search.py in SQL, so a page, a list and the API cannot disagree."""
    OWN_MEMBER_STATE = "the nominations of its own member state, drafts included"
    EVER_SUBMITTED = "every nomination ever submitted, also one returned to draft"
    SUBMITTED = "every nomination submitted and not back in draft (never a draft)"
    ALL = "every nomination"
    PUBLIC_REGISTER = "the accepted and handed-over cities"


SIGHT = {Role.SUBMITTER: Sight.OWN_MEMBER_STATE, Role.REVIEWER: Sight.EVER_SUBMITTED,
         Role.OPERATOR: Sight.SUBMITTED, Role.ADMIN: Sight.ALL, Role.SYSTEM: Sight.ALL}
PUBLIC_STATES = ("accepted", "handed_over")


def sight(actor: Actor | None) -> Sight:
    """What `actor` sees; nobody signed in sees the public register."""
    return SIGHT.get(actor.role, Sight.PUBLIC_REGISTER) if actor else Sight.PUBLIC_REGISTER


def may_see(actor: Actor | None, nomination: Nomination) -> bool:
    """Whether `actor` may see the nomination (and so its events, checks and attachments)."""
    seen = sight(actor)
    if seen is Sight.OWN_MEMBER_STATE:
        return actor.member_state == nomination.member_state
    if seen is Sight.EVER_SUBMITTED:
        return nomination.submitted_at is not None
    if seen is Sight.SUBMITTED:
        return nomination.submitted_at is not None and nomination.state != "drafted"
    if seen is Sight.ALL:
        return True
    return nomination.state in PUBLIC_STATES


@dataclass(frozen=True)
class Facts:
    """What the rules may need to know besides the nomination itself."""

    actor: Actor
    now: datetime
    comment: str | None = None
    assessment: dict | None = None
    cycle: Cycle | None = None
    member_state: MemberState | None = None
    active_in_cycle: int | None = None  # other active nominations of the member state in the cycle
    limit: int | None = None  # the member state's limit in the cycle (override or default)
    package_delivered: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    describe: str  # the rule in one line, for docs and the workflow endpoint
    check: Callable[[Nomination, Facts], str | None] = field(repr=False)
    needs: frozenset = frozenset()

    def explain(self, nomination: Nomination, facts: Facts) -> str | None:
        return self.check(nomination, facts)

    def __call__(self, event_data) -> bool:
        """The `transitions` condition: the machine itself refuses a transition a rule refuses."""
        return self.check(event_data.model, event_data.kwargs["facts"]) is None


def _blank(text: str | None) -> bool:
    return not (text or "").strip()


def _submitter_of_member_state(n: Nomination, f: Facts):
    if f.actor.role is not Role.SUBMITTER or f.actor.member_state != n.member_state:
        return Text(N_("Only a submitter of member state {member_state} may do this."), member_state=n.member_state)


def _reviewer(n: Nomination, f: Facts):
    if f.actor.role is not Role.REVIEWER:
        return Text(N_("Only a reviewer may do this."))


def _reviewer_not_of_member_state(n: Nomination, f: Facts):
    # Only a reviewer's member state matters here; who is not a reviewer is refused by `reviewer`.
    if f.actor.role is Role.REVIEWER and f.actor.member_state == n.member_state:
        return Text(N_("A reviewer of member state {member_state} may not review, accept or reject a nomination "
                       "of their own member state."), member_state=n.member_state)


def _four_eyes(n: Nomination, f: Facts):
    if f.actor.username == n.reviewed_by:
        return Text(N_("Four eyes: {reviewer} reviewed this nomination, so a different reviewer must accept or "
                       "reject it."), reviewer=n.reviewed_by)


def _system_or_operator(n: Nomination, f: Facts):
    if f.actor.role not in (Role.SYSTEM, Role.OPERATOR):
        return Text(N_("Only the handover worker or an operator may hand a nomination over."))


def _complete(n: Nomination, f: Facts):
    missing = n.missing_fields()
    if missing:
        return Text(N_("Required fields are missing: {fields}."), fields=", ".join(missing))


def _cycle_open(n: Nomination, f: Facts):
    c = f.cycle
    if c is None:
        return Text(N_("The cycle {cycle} does not exist."), cycle=n.cycle)
    if not c.is_open(f.now):
        return Text(N_("The cycle {cycle} is not open for submissions (open from {opens} until {closes})."),
                    cycle=n.cycle, opens=c.opens_at.date(), closes=c.closes_at.date())


def _within_state_limit(n: Nomination, f: Facts):
    if f.active_in_cycle is not None and f.limit is not None and f.active_in_cycle >= f.limit:
        return Text(N_("Member state {member_state} already has {active} active nomination(s) in cycle {cycle}, "
                       "its limit is {limit}."), member_state=n.member_state, active=f.active_in_cycle,
                    cycle=n.cycle, limit=f.limit)


def _comment_required(n: Nomination, f: Facts):
    if _blank(f.comment):
        return Text(N_("A comment is required: say what needs revision."))


def _reason_required(n: Nomination, f: Facts):
    if _blank(f.comment):
        return Text(N_("A reason is required to reject a nomination."))


def _checks_finished(n: Nomination, f: Facts):
    if n.checks_outcome in (None, "pending"):
        return Text(N_("The automated checks have not finished yet."))


def _no_blocking_check_failed(n: Nomination, f: Facts):
    if n.checks_outcome == "failed":
        return Text(N_("A blocking automated check failed; return the nomination for revision."))


def _assessment_required(n: Nomination, f: Facts):
    if not f.assessment:
        return Text(N_("An assessment (scores, recommendation, summary) is required to review."))


def _assessment_complete(n: Nomination, f: Facts):
    a = f.assessment
    if not a:
        return None  # assessment_required says it
    problems = []
    scores = a.get("scores") or {}
    missing = [code for code in n.focus_areas if code not in scores]
    if missing:
        problems.append(Text(N_("No score for focus area(s) {focus_areas}."), focus_areas=", ".join(missing)))
    extra = [code for code in scores if code not in n.focus_areas]
    if extra:
        problems.append(Text(N_("Scores for focus area(s) the city does not claim: {focus_areas}."),
                             focus_areas=", ".join(extra)))
    bad = [code for code, value in scores.items()
           if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 5]
    if bad:
        problems.append(Text(N_("Scores must be whole numbers from 1 to 5 ({focus_areas})."),
                             focus_areas=", ".join(bad)))
    if a.get("recommendation") not in RECOMMENDATIONS:
        problems.append(Text(N_("The recommendation must be one of {choices}."), choices=", ".join(RECOMMENDATIONS)))
    if problems:
        return Text(N_("The assessment is incomplete. {problems}"), problems=Sentences(problems))


def _lead_agency_set(n: Nomination, f: Facts):
    if f.member_state is None or not f.member_state.has_lead_agency:
        return Text(N_("No lead agency (with an email or webhook) is set for member state {member_state}."),
                    member_state=n.member_state)


def _package_delivered(n: Nomination, f: Facts):
    if not f.package_delivered:
        return Text(N_("The handover package has not been delivered to the lead agency."))


SUBMITTER_OF_MEMBER_STATE = Rule("submitter_of_member_state", PERMISSION,
                                 N_("the actor is a submitter of the nomination's member state"),
                                 _submitter_of_member_state)
REVIEWER = Rule("reviewer", PERMISSION, N_("the actor is a reviewer"), _reviewer)
REVIEWER_NOT_OF_MEMBER_STATE = Rule("reviewer_not_of_member_state", PERMISSION,
                                    N_("the reviewer is not of the nomination's member state"),
                                    _reviewer_not_of_member_state)
FOUR_EYES = Rule("four_eyes", PERMISSION, N_("the actor is not the reviewer who reviewed it"), _four_eyes)
SYSTEM_OR_OPERATOR = Rule("system_or_operator", PERMISSION,
                          N_("the actor is the handover worker (system) or an operator"),
                          _system_or_operator)
COMPLETE = Rule("complete", RULE, N_("every required field is filled in"), _complete)
CYCLE_OPEN = Rule("cycle_open", RULE, N_("the cycle is open"), _cycle_open, frozenset({"cycle"}))
WITHIN_STATE_LIMIT = Rule("within_state_limit", RULE,
                          N_("the member state is below its limit of active nominations in the cycle"),
                          _within_state_limit, frozenset({"limit"}))
COMMENT_REQUIRED = Rule("comment_required", RULE, N_("a comment is given"), _comment_required)
REASON_REQUIRED = Rule("reason_required", RULE, N_("a reason is given"), _reason_required)
CHECKS_FINISHED = Rule("checks_finished", RULE, N_("the automated checks have finished"), _checks_finished)
NO_BLOCKING_CHECK_FAILED = Rule("no_blocking_check_failed", RULE, N_("no blocking check failed"),
                                _no_blocking_check_failed)
ASSESSMENT_REQUIRED = Rule("assessment_required", RULE, N_("an assessment is given"), _assessment_required)
ASSESSMENT_COMPLETE = Rule("assessment_complete", RULE,
                           N_("the assessment scores each claimed focus area 1-5 and recommends"),
                           _assessment_complete)
LEAD_AGENCY_SET = Rule("lead_agency_set", RULE, N_("the member state has a lead agency"),
                       _lead_agency_set, frozenset({"member_state"}))
PACKAGE_DELIVERED = Rule("package_delivered", RULE, N_("the handover package was delivered"),
                         _package_delivered, frozenset({"delivery"}))
