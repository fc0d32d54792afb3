"""The workflow: one shared `transitions` machine, the single source of truth.

The machine is built once with `model=None` and never bound to a nomination: a trigger is
fired with `MACHINE.events[trigger].trigger(nomination, facts=...)`, which costs no
per-object binding. Each transition's conditions are the `Rule` objects of rules.py, so the
machine itself refuses what a rule refuses; `fire` evaluates them first to name every rule
that refuses, not only the first. Buttons, the API, the docs and the diagram read
`describe()`, which reads the machine.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from transitions import Machine

from scn_workflow.domain import rules as r
from scn_workflow.domain.errors import N_, Forbidden, InvalidTransition, RuleViolation, Text, UnknownTrigger, Violation
from scn_workflow.domain.model import DomainEvent, Nomination

STATES = ("drafted", "submitted", "reviewed", "accepted", "handed_over", "rejected", "withdrawn")
TERMINAL_STATES = ("handed_over", "rejected", "withdrawn")


QUEUES = ("checks", "notifications", "handover", "webhooks")
"""The Celery queues; each reacts to some events (see EventSpec.queues)."""


class Audience(str, enum.Enum):
    """Who hears of an event by mail."""
    SUBMITTERS = "the member state's submitters"
    REVIEWERS = "reviewers not of that member state"
    REVIEWERS_IF_SUBMITTED = "reviewers, when the nomination had been submitted"
    OPERATORS = "operators and admins"
    LEAD_AGENCY = "the member state's lead agency"


@dataclass(frozen=True)
class EventSpec:
    """An event of the audit trail: what it says happened, who is told, which queues react.

    Every event also goes to the `webhooks` queue when a subscription wants it (not listed here:
    that depends on the subscriptions, not on the event)."""
    name: str
    what: str  # completes "Nomination ASCN-2026-ID-001 (Makassar) ..."
    notify: tuple[Audience, ...] = ()
    reactions: tuple[str, ...] = ()  # queues besides notifications and webhooks

    @property
    def queues(self) -> tuple[str, ...]:
        return self.reactions + (("notifications",) if self.notify else ())


@dataclass(frozen=True)
class TriggerSpec:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    event: EventSpec
    who: str
    permissions: tuple[r.Rule, ...]
    rules: tuple[r.Rule, ...] = ()
    comment_prompt: str | None = None  # what the comment must say, when a rule requires one
    # What a person is told once it is done ("Submitted. Automated checks run now; ..."), and, for a trigger
    # that cannot be undone, the consequence a confirmation names first (placeholders: {city}, {cycle},
    # {member_state}). Plain English marked with N_: the page translates them.
    next_step: str = ""
    confirmation: str | None = None

    @property
    def label(self) -> str:
        """The trigger in words, for buttons and messages: "Return for revision"."""
        return self.trigger.replace("_", " ").capitalize()


_SUBMITTERS = (Audience.SUBMITTERS,)

SPECS = {spec.trigger: spec for spec in (
    TriggerSpec("submit", ("drafted",), "submitted",
                EventSpec("nomination.submitted", "was submitted and is being checked", _SUBMITTERS, ("checks",)),
                N_("a submitter of that member state"), (r.SUBMITTER_OF_MEMBER_STATE,),
                (r.COMPLETE, r.CYCLE_OPEN, r.WITHIN_STATE_LIMIT),
                next_step=N_("Submitted. Automated checks run now; reviewers are told when they finish.")),
    TriggerSpec("return_for_revision", ("submitted", "reviewed"), "drafted",
                EventSpec("nomination.returned", "was returned for revision", _SUBMITTERS),
                N_("a reviewer"), (r.REVIEWER,), (r.COMMENT_REQUIRED,), N_("What needs revision"),
                next_step=N_("Returned for revision. The submitters of {member_state} are told; they can edit "
                             "the draft and submit it again.")),
    TriggerSpec("review", ("submitted",), "reviewed", EventSpec("nomination.reviewed", "was reviewed", _SUBMITTERS),
                N_("a reviewer not of that member state"), (r.REVIEWER, r.REVIEWER_NOT_OF_MEMBER_STATE),
                (r.CHECKS_FINISHED, r.NO_BLOCKING_CHECK_FAILED, r.ASSESSMENT_REQUIRED,
                 r.ASSESSMENT_COMPLETE),
                next_step=N_("Review recorded. A second reviewer, not of the same member state, now accepts or "
                             "rejects the nomination.")),
    TriggerSpec("accept", ("reviewed",), "accepted",
                EventSpec("nomination.accepted", "was accepted", _SUBMITTERS, ("handover",)),
                N_("a reviewer not of that member state, other than the one who reviewed it (four eyes)"),
                (r.REVIEWER, r.REVIEWER_NOT_OF_MEMBER_STATE, r.FOUR_EYES),
                next_step=N_("Accepted. The handover package is being sent to the lead agency of {member_state}; "
                             "the nomination is handed over once it is delivered."),
                confirmation=N_("Accepting cannot be undone. {city} will join the ASEAN Smart Cities Network, "
                                "and its handover package will be sent to the lead agency of {member_state}.")),
    TriggerSpec("reject", ("reviewed",), "rejected", EventSpec("nomination.rejected", "was rejected", _SUBMITTERS),
                N_("a reviewer not of that member state, other than the one who reviewed it (four eyes)"),
                (r.REVIEWER, r.REVIEWER_NOT_OF_MEMBER_STATE, r.FOUR_EYES), (r.REASON_REQUIRED,),
                N_("Reason for rejecting"),
                next_step=N_("Rejected. The submitters of {member_state} are told, with your reason."),
                confirmation=N_("Rejecting cannot be undone. {city} will leave the {cycle} cycle; your reason "
                                "is sent to the submitters of {member_state}.")),
    TriggerSpec("withdraw", ("drafted", "submitted"), "withdrawn",
                EventSpec("nomination.withdrawn", "was withdrawn",
                          (Audience.SUBMITTERS, Audience.REVIEWERS_IF_SUBMITTED)),
                N_("a submitter of that member state"), (r.SUBMITTER_OF_MEMBER_STATE,),
                next_step=N_("Withdrawn. The nomination no longer counts towards the limit of {member_state}."),
                confirmation=N_("Withdrawing cannot be undone. {city} will leave the {cycle} cycle.")),
    TriggerSpec("hand_over", ("accepted",), "handed_over",
                EventSpec("nomination.handed_over", "was handed over to the lead agency",
                          (Audience.SUBMITTERS, Audience.LEAD_AGENCY)),
                N_("the system (handover worker) or an operator"), (r.SYSTEM_OR_OPERATOR,),
                (r.LEAD_AGENCY_SET, r.PACKAGE_DELIVERED),
                next_step=N_("Handed over. The lead agency acknowledges receipt of the package.")),
)}

# The events no trigger records: a draft's creation and edits, and what the workers record.
EVENTS = {spec.name: spec for spec in (
    EventSpec("nomination.created", "was drafted"),
    EventSpec("nomination.updated", "was edited"),
    *(trigger.event for trigger in SPECS.values()),
    EventSpec("checks.completed", "has finished its automated checks and awaits review", (Audience.REVIEWERS,)),
    EventSpec("handover.failed", "could not be handed over: delivery to the lead agency failed",
              (Audience.OPERATORS,)),
    EventSpec("handover.acknowledged", "was acknowledged by the lead agency"),
)}
TRIGGER_OF_EVENT = {spec.event.name: trigger for trigger, spec in SPECS.items()}

NEXT_FOR = {
    # What comes next for each audience a mail about the event goes to (EventSpec.notify), in the
    # reader's terms: TriggerSpec.next_step speaks to the one who fired the trigger, this to the others.
    # Placeholders: {city}, {member_state}. Plain English marked with N_: the mail translates them.
    "nomination.submitted": {
        Audience.SUBMITTERS: N_("Automated checks run now; then reviewers of other member states assess it. "
                                "You will be told of their decision.")},
    "checks.completed": {
        Audience.REVIEWERS: N_("Open it to review it. If a blocking check failed, return it for revision with a "
                               "comment saying what to change.")},
    "nomination.returned": {
        Audience.SUBMITTERS: N_("Read the comment, revise the draft and submit it again.")},
    "nomination.reviewed": {
        Audience.SUBMITTERS: N_("A second reviewer now accepts or rejects it. You will be told of the decision.")},
    "nomination.accepted": {
        Audience.SUBMITTERS: N_("Its handover package is being sent to the lead agency of {member_state}. You will "
                                "be told when it is handed over.")},
    "nomination.rejected": {
        Audience.SUBMITTERS: N_("Nothing more is needed from you for this cycle; the reason is given above.")},
    "nomination.withdrawn": {
        Audience.SUBMITTERS: N_("Nothing more is needed from you; it no longer counts towards the limit of "
                                "{member_state}."),
        Audience.REVIEWERS_IF_SUBMITTED: N_("Nothing more is needed from you: it has left the review desk.")},
    "nomination.handed_over": {
        Audience.SUBMITTERS: N_("Nothing more is needed from you: {city} is now with the lead agency of "
                                "{member_state}."),
        Audience.LEAD_AGENCY: N_("The handover package came in a separate mail; please acknowledge its receipt "
                                 "with the link in that mail.")},
    "handover.failed": {
        Audience.OPERATORS: N_("Open the failures on the operator dashboard: retry the delivery once the lead "
                               "agency's address is right, or discard it.")},
}

WAITING_NEXT = {
    # A reminder to reviewers of a nomination waiting too long, by the state it waits in.
    "submitted": N_("Open it to review it."),
    "reviewed": N_("Open it to accept or reject it; the reviewer who reviewed it may not."),
}


def queues_for(event_name: str, subscribed: bool) -> list[str]:
    """The queues that react to an event (webhooks only when a subscription wants it)."""
    spec = EVENTS.get(event_name)
    return [*(spec.queues if spec else ()), *(("webhooks",) if subscribed else ())]


def _apply(event_data) -> None:
    """After every transition: stamp the change and record its event on the aggregate."""
    nomination: Nomination = event_data.model
    facts: r.Facts = event_data.kwargs["facts"]
    trigger = event_data.event.name
    source, dest = event_data.transition.source, event_data.transition.dest
    payload = {}
    if trigger == "submit":
        nomination.submitted_at = facts.now
        nomination.checks_outcome = "pending"
    elif trigger == "return_for_revision":
        nomination.checks_outcome = None
        nomination.reviewed_by = None
    elif trigger == "review":
        nomination.reviewed_by = facts.actor.username
        nomination.assessment = dict(facts.assessment)
        payload["assessment"] = nomination.assessment
    nomination.version += 1
    nomination.updated_at = facts.now
    nomination.record(SPECS[trigger].event.name, facts.actor.username, facts.now, source, dest,
                      comment=facts.comment or None, payload=payload)


def _build_machine() -> Machine:
    machine = Machine(model=None, states=list(STATES), initial="drafted", auto_transitions=False,
                      send_event=True, ignore_invalid_triggers=False)
    for spec in SPECS.values():
        machine.add_transition(spec.trigger, list(spec.sources), spec.dest,
                               conditions=list(spec.permissions + spec.rules), after=_apply)
    return machine


MACHINE = _build_machine()


def _spec(trigger: str) -> TriggerSpec:
    try:
        return SPECS[trigger]
    except (KeyError, TypeError):
        raise UnknownTrigger(Text(N_("Unknown trigger {name}; the triggers are: {triggers}."), name=repr(trigger),
                                  triggers=", ".join(SPECS)),
                             [Violation("known_trigger", Text(N_("{name} is not a trigger of the workflow."),
                                                              name=repr(trigger)))]) from None


def _refusals(rules, nomination: Nomination, facts: r.Facts) -> list[Violation]:
    found = []
    for rule in rules:
        message = rule.explain(nomination, facts)
        if message:
            found.append(Violation(rule.name, message))
    return found


def needs(trigger: str) -> frozenset:
    """The facts the service layer must gather before firing `trigger`."""
    spec = _spec(trigger)
    out = frozenset()
    for rule in spec.permissions + spec.rules:
        out |= rule.needs
    return out


def check(nomination: Nomination, trigger: str, facts: r.Facts) -> None:
    """Raise the refusal `fire` would raise, naming every rule that refuses; change nothing."""
    spec = _spec(trigger)
    if nomination.state not in spec.sources:
        raise InvalidTransition(
            Text(N_("'{trigger}' cannot be fired on a nomination in state '{state}' (only from {states})."),
                 trigger=trigger, state=nomination.state, states=", ".join(spec.sources)),
            [Violation("valid_source_state", Text(N_("The nomination is {state}."), state=nomination.state))])
    denied = _refusals(spec.permissions, nomination, facts)
    if denied:
        raise Forbidden(" ".join(v.message for v in denied), denied)
    refused = _refusals(spec.rules, nomination, facts)
    if refused:
        raise RuleViolation(" ".join(v.message for v in refused), refused)


def fire(nomination: Nomination, trigger: str, facts: r.Facts) -> DomainEvent:
    """Fire `trigger` on the nomination as `facts.actor`; return the event it recorded."""
    check(nomination, trigger, facts)
    if not MACHINE.events[trigger].trigger(nomination, facts=facts):  # pragma: no cover - check() agrees
        raise RuleViolation(f"'{trigger}' was refused by the state machine.")
    return nomination.events[-1]


def allowed_triggers(nomination: Nomination, facts: r.Facts) -> list[str]:
    """Triggers the actor may fire now: valid from the state, and permitted to the actor.

    Rules that depend on the request (a comment, an assessment) are not anticipated here;
    firing explains them.
    """
    return [trigger for trigger in MACHINE.get_triggers(nomination.state)
            if not _refusals(SPECS[trigger].permissions, nomination, facts)]


def triggers_from(state: str) -> list[str]:
    """The triggers the machine allows from `state`, in the order of the table."""
    return MACHINE.get_triggers(state)


ROLE_RULES = frozenset({r.SUBMITTER_OF_MEMBER_STATE, r.REVIEWER, r.SYSTEM_OR_OPERATOR})
"""The permissions that say whom a trigger is for: nobody expects a trigger meant for another role."""


def unavailable(nomination: Nomination, facts: r.Facts) -> dict[str, list[Violation]]:
    """Triggers the state allows and meant for the actor's role that the actor may not fire now, each with
    the refusals that say why: another permission (four eyes, the reviewer's own member state), or a rule
    about the world around the nomination (`Rule.needs`: the cycle, the limit, the lead agency, the
    delivery), which `facts` must hold. What the request itself brings (a comment, an assessment) and the
    nomination's own fields are not anticipated: firing explains them."""
    out = {}
    for trigger in triggers_from(nomination.state):
        spec = SPECS[trigger]
        if _refusals([p for p in spec.permissions if p in ROLE_RULES], nomination, facts):
            continue
        refused = (_refusals([p for p in spec.permissions if p not in ROLE_RULES], nomination, facts)
                   or _refusals([rule for rule in spec.rules if rule.needs], nomination, facts))
        if refused:
            out[trigger] = refused
    return out


def describe() -> dict:
    """The workflow as data, read from the machine: states and each trigger's moves and rules."""
    triggers = []
    for name, event in MACHINE.events.items():
        moves = [{"from": source, "to": t.dest}
                 for source, ts in event.transitions.items() for t in ts]
        # every source shares the same conditions: read them once, not once per source
        conditions = [c.func for c in next(iter(event.transitions.values()))[0].conditions]
        triggers.append({
            "trigger": name,
            "from": [m["from"] for m in moves],
            "to": moves[0]["to"],
            "event": SPECS[name].event.name,
            "who": SPECS[name].who,
            "permissions": [{"rule": c.name, "description": c.describe} for c in conditions if c.kind == r.PERMISSION],
            "rules": [{"rule": c.name, "description": c.describe} for c in conditions if c.kind == r.RULE],
        })
    return {"states": list(MACHINE.states), "initial": MACHINE.initial,
            "terminal": list(TERMINAL_STATES), "triggers": triggers}
