"""Words for the codes people would otherwise read, in the reader's language (pages and the API).

States, triggers, events, focus areas, member states, fields, roles and check names each have
their English word here, once, marked for the catalogue; pages use the Jinja filters that
`install` registers (`state_label`, `trigger_label`, `event_label`, `focus_area_label`,
`member_state_name`, `field_label`, ...). tests/unit/test_catalogue.py checks that every code of
the workflow (domain/workflow.py) and of the reference (reference/ascn.json) has its word here,
and that the English words agree with them (TriggerSpec.label, the focus area and member state names).

`say` turns a refusal or a message into the reader's language: a `Text` of the domain by its
template and values, a plain message by the catalogue, and a message made by a library from a
template (marshmallow's "Longer than maximum length 120.") by recognising the template.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po
from babel.support import Translations
from flask_babel import format_date, format_datetime, format_decimal, format_timedelta, gettext
from markupsafe import Markup, escape

from scn_workflow.domain.errors import N_, DomainError, Sentences, Text

STATES = {
    "drafted": N_("Draft"),
    "submitted": N_("Submitted"),
    "reviewed": N_("Reviewed"),
    "accepted": N_("Accepted"),
    "handed_over": N_("Handed over"),
    "rejected": N_("Rejected"),
    "withdrawn": N_("Withdrawn"),
}

TRIGGERS = {  # the button labels; the same words as TriggerSpec.label
    "submit": N_("Submit"),
    "return_for_revision": N_("Return for revision"),
    "review": N_("Review"),
    "accept": N_("Accept"),
    "reject": N_("Reject"),
    "withdraw": N_("Withdraw"),
    "hand_over": N_("Hand over"),
}

EVENTS = {  # a line of the timeline
    "nomination.created": N_("Draft created"),
    "nomination.updated": N_("Draft edited"),
    "nomination.submitted": N_("Submitted for review"),
    "nomination.returned": N_("Returned for revision"),
    "nomination.reviewed": N_("Reviewed"),
    "nomination.accepted": N_("Accepted"),
    "nomination.rejected": N_("Rejected"),
    "nomination.withdrawn": N_("Withdrawn"),
    "nomination.handed_over": N_("Handed over to the lead agency"),
    "checks.completed": N_("Automated checks finished"),
    "handover.failed": N_("Handover failed: delivery to the lead agency did not succeed"),
    "handover.acknowledged": N_("Acknowledged by the lead agency"),
}
ATTACHMENT_ADDED = N_("Attachment uploaded: {filename}")

EVENT_SENTENCES = {  # the first line of a mail: EventSpec.what as a whole sentence
    "nomination.created": N_("Nomination {reference} ({city}, {member_state}) was drafted."),
    "nomination.updated": N_("Nomination {reference} ({city}, {member_state}) was edited."),
    "nomination.submitted": N_("Nomination {reference} ({city}, {member_state}) was submitted and is being checked."),
    "nomination.returned": N_("Nomination {reference} ({city}, {member_state}) was returned for revision."),
    "nomination.reviewed": N_("Nomination {reference} ({city}, {member_state}) was reviewed."),
    "nomination.accepted": N_("Nomination {reference} ({city}, {member_state}) was accepted."),
    "nomination.rejected": N_("Nomination {reference} ({city}, {member_state}) was rejected."),
    "nomination.withdrawn": N_("Nomination {reference} ({city}, {member_state}) was withdrawn."),
    "nomination.handed_over": N_("Nomination {reference} ({city}, {member_state}) was handed over to the lead "
                                 "agency."),
    "checks.completed": N_("Nomination {reference} ({city}, {member_state}) has finished its automated checks "
                           "and awaits review."),
    "handover.failed": N_("Nomination {reference} ({city}, {member_state}) could not be handed over: delivery "
                          "to the lead agency failed."),
    "handover.acknowledged": N_("Nomination {reference} ({city}, {member_state}) was acknowledged by the lead "
                                "agency."),
}

FOCUS_AREAS = {  # the names of reference/ascn.json
    "civic_social": N_("Civic and Social"),
    "health_wellbeing": N_("Health and Well-being"),
    "safety_security": N_("Safety and Security"),
    "quality_environment": N_("Quality Environment"),
    "built_infrastructure": N_("Built Infrastructure"),
    "industry_innovation": N_("Industry and Innovation"),
}

MEMBER_STATES = {  # the names of reference/ascn.json
    "BN": N_("Brunei Darussalam"),
    "KH": N_("Cambodia"),
    "ID": N_("Indonesia"),
    "LA": N_("Lao PDR"),
    "MY": N_("Malaysia"),
    "MM": N_("Myanmar"),
    "PH": N_("Philippines"),
    "SG": N_("Singapore"),
    "TH": N_("Thailand"),
    "VN": N_("Viet Nam"),
    "TL": N_("Timor-Leste"),
}

FIELDS = {  # the form's labels, by the field names of the API and the database
    "city_name": N_("City"),
    "region": N_("Province or region"),
    "population": N_("Population"),
    "csco_name": N_("Chief Smart City Officer's name"),
    "csco_email": N_("Chief Smart City Officer's email"),
    "vision": N_("Vision statement"),
    "focus_areas": N_("Focus areas"),
    "projects": N_("Projects"),
    "cycle": N_("Cycle"),
    "member_state": N_("Member state"),
    "title": N_("Title"),
    "focus_area": N_("Focus area"),
    "description": N_("Description"),
    "priority": N_("Priority project"),
    "kind": N_("Kind"),
    "file": N_("PDF file"),
    "scores": N_("Scores"),
    "recommendation": N_("Recommendation"),
    "summary": N_("Summary"),
    "comment": N_("Comment"),
    "username": N_("Username"),
    "password": N_("Password"),
    "email": N_("Email"),
    "role": N_("Role"),
    "name": N_("Name"),
    "code": N_("Code"),
    "opens_at": N_("Opens"),
    "closes_at": N_("Closes"),
    "limit_per_state": N_("Limit per member state"),
    "requires_action_plan": N_("Requires a Smart City Action Plan"),
    "limit": N_("Limit"),
    "reason": N_("Reason"),
    "lead_agency_name": N_("Lead agency"),
    "lead_agency_email": N_("Contact email"),
    "lead_agency_webhook_url": N_("Handover webhook URL"),
    "lead_agency_webhook_secret": N_("Webhook secret"),
    "language": N_("Language"),
}

ROLES = {"submitter": N_("Submitter"), "reviewer": N_("Reviewer"), "operator": N_("Operator"),
         "admin": N_("Administrator"), "system": N_("System")}

RECOMMENDATIONS = {"accept": N_("Accept"), "reject": N_("Reject"), "return": N_("Return for revision")}

ATTACHMENT_KINDS = {"action_plan": N_("Smart City Action Plan"), "supporting_document": N_("Supporting document")}

CHECKS = {  # the automated checks of domain/checks.py
    "completeness": N_("Completeness"),
    "state_limit": N_("Member state's limit"),
    "duplicate_city": N_("City nominated once"),
    "focus_areas_covered": N_("Focus areas covered by projects"),
    "action_plan": N_("Smart City Action Plan"),
}

OUTCOMES = {"passed": N_("passed"), "warning": N_("warning"), "failed": N_("failed"), "pending": N_("running")}

# Library messages (marshmallow's validators format these templates); `say` recognises them.
LIBRARY_TEMPLATES = (
    N_("Longer than maximum length {max}."),
    N_("Shorter than minimum length {min}."),
    N_("Length must be between {min} and {max}."),
    N_("Length must be {equal}."),
    N_("Must be greater than or equal to {min} and less than or equal to {max}."),
    N_("Must be greater than or equal to {min}."),
    N_("Must be less than or equal to {max}."),
    N_("Must be one of: {choices}."),
    N_("Not a valid email address."),
    N_("Not a valid URL."),
    N_("String does not match expected pattern."),
    N_("Invalid value."),
)

HTTP_ERRORS = (  # werkzeug's names and descriptions of the errors pages and the API show
    N_('Bad Request'), N_('The browser (or proxy) sent a request that this server could not understand.'),
    N_('Unauthorized'), N_("The server could not verify that you are authorized to access the URL requested. You either supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials required."),
    N_('Forbidden'), N_("You don't have the permission to access the requested resource. It is either read-protected or not readable by the server."),
    N_('Not Found'), N_('The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.'),
    N_('Method Not Allowed'), N_('The method is not allowed for the requested URL.'),
    N_('Conflict'), N_('A conflict happened while processing the request. The resource might have been modified while the request was being processed.'),
    N_('Precondition Failed'), N_('The precondition on the request for the URL failed positive evaluation.'),
    N_('Request Entity Too Large'), N_('The data value transmitted exceeds the capacity limit.'),
    N_('Unsupported Media Type'), N_('The server does not support the media type transmitted in the request.'),
    N_('Unprocessable Entity'), N_('The request was well-formed but was unable to be followed due to semantic errors.'),
    N_('Too Many Requests'), N_('This user has exceeded an allotted request count. Try again later.'),
    N_('Internal Server Error'), N_('The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.'),
    N_('Service Unavailable'), N_('The server is temporarily unable to service your request due to maintenance downtime or capacity problems. Please try again later.'),
)


def _word(table: dict, code, translations=None) -> str:
    """The word for `code` in the request's language, or in `translations` (a catalogue, for what is
    read outside a request: mails, the dossier)."""
    if code is None or code == "":
        return ""
    word = table.get(code)
    if not word:
        return str(code)
    return _gettext(word, translations)


def _gettext(message: str, translations) -> str:
    return translations.gettext(message) if translations is not None else gettext(message)


def state_label(code, translations=None) -> str:
    return _word(STATES, code, translations)


def trigger_label(code, translations=None) -> str:
    return _word(TRIGGERS, code, translations)


def focus_area_label(code, translations=None) -> str:
    return _word(FOCUS_AREAS, code, translations)


def member_state_name(code, translations=None) -> str:
    return _word(MEMBER_STATES, code, translations)


def field_label(name, translations=None) -> str:
    return _word(FIELDS, name, translations)


def role_label(code, translations=None) -> str:
    return _word(ROLES, getattr(code, "value", code), translations)


def recommendation_label(code, translations=None) -> str:
    return _word(RECOMMENDATIONS, code, translations)


def kind_label(code, translations=None) -> str:
    return _word(ATTACHMENT_KINDS, code, translations)


def check_label(code, translations=None) -> str:
    return _word(CHECKS, code, translations)


def outcome_label(code, translations=None) -> str:
    return _word(OUTCOMES, code, translations)


def event_label(event, translations=None) -> str:
    """What a line of the timeline says happened: an attachment upload says so, with its file name."""
    def field(name):
        return event.get(name) if isinstance(event, dict) else getattr(event, name, None)
    payload = field("payload") or {}
    added = payload.get("attachment_added") if isinstance(payload, dict) else None
    if field("name") == "nomination.updated" and isinstance(added, dict):
        return _gettext(ATTACHMENT_ADDED, translations).format(filename=added.get("filename", ""))
    return _word(EVENTS, field("name"), translations)


def event_sentence(event_name: str, nomination, translations) -> str:
    """What happened to which nomination, as a whole sentence in the language of `translations`."""
    return translations.gettext(EVENT_SENTENCES[event_name]).format(
        reference=nomination.reference, city=nomination.city_name,
        member_state=member_state_name(nomination.member_state, translations))


def number(value) -> str:
    return format_decimal(value) if value is not None else ""


def when(value, time: bool = True) -> str:
    """A date (and time) in the reader's locale."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_datetime(value, "medium") if time else format_date(value, "long")
    return format_date(value, "long")


def duration(value) -> str:
    """A duration as words: "3 days", "7 days", "5 hours", "36 hours" (seconds or a timedelta).

    In the largest unit that counts at least two of them (threshold 2): a week reads "7 days", not
    Babel's "1 week", and a day and a half "36 hours", not a rounded "2 days"."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return format_timedelta(timedelta(seconds=seconds), threshold=2, granularity="second")


TRANSLATIONS = Path(__file__).resolve().parent / "translations"
CATALOGUE = TRANSLATIONS / "id" / "LC_MESSAGES" / "messages.po"


@cache
def catalogue(language: str) -> Translations:
    """The compiled catalogue of `language`, for what is read outside a request (mails, the dossier):
    English, or "id", falls back to the English text where a catalogue is missing."""
    return Translations.load(str(TRANSLATIONS), [language])

# The words for values of a message's placeholders, by the placeholder's name.
_LISTS = {"fields": field_label, "focus_areas": focus_area_label, "triggers": trigger_label, "states": state_label,
          "kinds": kind_label}
_WORDS = {"member_state": member_state_name, "state": state_label, "trigger": trigger_label,
          "field": field_label, "focus_area": focus_area_label, "role": role_label, "kind": kind_label}


def _value(name: str, value, link, translations):
    if isinstance(value, Sentences):
        parts = [say(sentence, link, translations) for sentence in value]
        return Markup(" ").join(parts) if link is not None else " ".join(parts)
    if isinstance(value, Text):  # a sentence inside a sentence ("{url} was not called: {reason}")
        return say(value, link, translations)
    if name in _LISTS:
        items = value.split(", ") if isinstance(value, str) else list(value)
        words = [_LISTS[name](item, translations) for item in items]
        if name == "fields" and link is not None:
            return Markup(", ").join(Markup('<a href="{}#{}">{}</a>').format(link, item, word)
                                     for item, word in zip(items, words))
        return ", ".join(words)
    if name in _WORDS:
        return _WORDS[name](value, translations)
    # Outside a request (`translations` given) there is no reader's locale: ISO 8601 dates, plain digits.
    if isinstance(value, (datetime, date)):
        return when(value, time=False) if translations is None else value.strftime("%Y-%m-%d")
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return number(value) if translations is None else str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return value


@cache
def _patterns() -> list[tuple[re.Pattern, str]]:
    """The catalogue's templates with placeholders, as patterns that recognise a filled-in message."""
    with CATALOGUE.open("rb") as po:
        templates = [m.id for m in read_po(po) if m.id and isinstance(m.id, str) and re.search(r"\{\w+\}", m.id)]
    out = []
    for template in sorted(templates, key=len, reverse=True):
        parts = re.split(r"\{(\w+)\}", template)
        if len(set(parts[1::2])) != len(parts[1::2]):
            continue
        pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(parts))
        out.append((re.compile(pattern + r"\Z", re.S), template))
    return out


def say(message, link: str | None = None, translations=None) -> str:
    """A message in the reader's language, or in `translations` (a catalogue, for what is read outside
    a request). With `link`, field names become links to `link#field` (and the result is markup)."""
    if message is None:
        return ""
    html = link is not None
    if isinstance(message, Text):
        template, params = message.template, message.params
    else:
        message = str(message)
        translated = _gettext(message, translations)
        if translated != message or not message:
            return translated
        for pattern, candidate in _patterns():
            found = pattern.match(message)
            if found:
                template, params = candidate, found.groupdict()
                break
        else:
            return message
    values = {name: _value(name, value, link, translations) for name, value in params.items()}
    translated = _gettext(template, translations)
    if html:
        return Markup(escape(translated)).format(**values)
    try:
        return translated.format(**values)
    except (KeyError, IndexError, ValueError):  # a translation that lost a placeholder: the English
        return template.format(**values)


def refusal(err: DomainError, link: str | None = None) -> str:
    """A refusal's detail in the reader's language; when it joins its violations, each is translated."""
    if err.violations and str(err.detail) == " ".join(str(v.message) for v in err.violations):
        parts = [say(v.message, link) for v in err.violations]
        return Markup(" ").join(parts) if link is not None else " ".join(parts)
    return say(err.detail, link)


def field_problems(fields: dict, link: str | None = None) -> str:
    """A form's refusal as one line: each field by its label, then its messages ("PDF file: Only PDF
    files are accepted ..."); with `link`, each label links to `link#field` (and the result is markup)."""
    def leaves(value):
        if isinstance(value, dict):
            for inner in value.values():
                yield from leaves(inner)
        elif isinstance(value, (list, tuple)):
            for inner in value:
                yield from leaves(inner)
        else:
            yield value

    parts = []
    for name, messages in fields.items():
        said = [say(m, link) for m in leaves(messages)]
        if link is None:
            parts.append(f"{field_label(name)}: {' '.join(said)}" if name != "_schema" else " ".join(said))
        else:
            text = Markup(" ").join(said)
            parts.append(text if name == "_schema" else
                         Markup('<a href="{}#{}">{}</a>: {}').format(link, name, field_label(name), text))
    return Markup("; ").join(parts) if link is not None else "; ".join(parts)


def field_messages(fields) -> dict | list | str:
    """An InvalidInput's (or marshmallow's) messages by field, each in the reader's language."""
    if isinstance(fields, dict):
        return {name: field_messages(value) for name, value in fields.items()}
    if isinstance(fields, (list, tuple)):
        return [field_messages(value) for value in fields]
    return say(fields)


FILTERS = {f.__name__: f for f in (state_label, trigger_label, focus_area_label, member_state_name, field_label,
                                   role_label, recommendation_label, kind_label, check_label, outcome_label,
                                   event_label, number, when, duration, say, field_problems)}


def install(app) -> None:
    app.jinja_env.filters.update(FILTERS)
    app.jinja_env.globals.update(FILTERS)
