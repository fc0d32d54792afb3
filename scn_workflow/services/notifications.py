"""Notifications by email: who hears of each event (the workflow's EventSpec.notify), and the mail."""

from __future__ import annotations

import email.policy
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

import functools
from types import SimpleNamespace
from typing import NamedTuple

import jinja2
import sqlalchemy as sa
from babel.support import Translations

from scn_workflow import labels
from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_
from scn_workflow.domain.model import SYSTEM
from scn_workflow.domain.workflow import EVENTS, NEXT_FOR, WAITING_NEXT, Audience
from scn_workflow.services import Services, mailer
from scn_workflow.services.effects import Outcome, begin, record_effects, release
from scn_workflow.services.outbox import mark_done

_UNFOLDED = email.policy.compat32.clone(max_line_length=None)  # each header on one line, as receivers read it


@functools.cache
def templates(language: str) -> tuple[jinja2.Environment, Translations]:
    """The mail templates in one language (English, or a catalogue of scn_workflow/translations)."""
    translations = labels.catalogue(language)
    env = jinja2.Environment(loader=jinja2.PackageLoader("scn_workflow", "templates/mail"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True,
                             extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations, newstyle=True)
    return env, translations


class Recipient(NamedTuple):
    """One person (or the lead agency) a mail goes to, and what the mail needs to know of them."""
    name: str  # the name the mail greets: the user's display name, else the username
    address: str
    audience: Audience  # why they hear of it, which says what comes next for them
    language: str = "en"
    digest: bool = False  # one mail a day (services/digest.py) instead of a mail per event


def display_name(user) -> str:
    """The name a mail greets a user by: their display name, else their username."""
    return getattr(user, "name", None) or user.username


def recipient(user, audience: Audience) -> Recipient:
    """A user (a row of users, or a User) as the recipient of a mail for `audience`."""
    return Recipient(display_name(user), user.email, audience, getattr(user, "language", None) or "en",
                     bool(getattr(user, "mail_digest", False)))


def choose_recipients(event, member_state: str, users, agency=None) -> list[Recipient]:
    """Everyone to tell about `event`, each address once: from the active users (rows with username,
    email, role, member_state, and name, language, mail_digest when known) and the member state's lead
    agency (a row with lead_agency_name, lead_agency_email, lead_agency_language)."""
    out = []
    for audience in EVENTS[event.name].notify:
        if audience is Audience.SUBMITTERS:
            chosen = [u for u in users if u.role == "submitter" and u.member_state == member_state]
        elif audience is Audience.REVIEWERS or (audience is Audience.REVIEWERS_IF_SUBMITTED
                                                and event.from_state != "drafted"):
            chosen = [u for u in users if u.role == "reviewer" and u.member_state != member_state]
        elif audience is Audience.OPERATORS:
            chosen = [u for u in users if u.role in ("operator", "admin")]
        else:
            chosen = []
        out += [recipient(u, audience) for u in chosen]
        if audience is Audience.LEAD_AGENCY and agency is not None and agency.lead_agency_email:
            out.append(Recipient(agency.lead_agency_name or "Lead agency", agency.lead_agency_email, audience,
                                 getattr(agency, "lead_agency_language", None) or "en"))
    seen, unique = set(), []
    for person in out:
        if person.address and person.address.lower() not in seen:
            seen.add(person.address.lower())
            unique.append(person)
    return unique


def nomination_link(settings, nomination_id: int, audience: Audience | None = None) -> str:
    """Where the recipient opens the nomination: its page, or for the lead agency (which has no account)
    the city's public page in the register."""
    if audience is Audience.LEAD_AGENCY:
        return f"{settings.base_url.rstrip('/')}/cities/{nomination_id}"
    return f"{settings.base_url.rstrip('/')}/nominations/{nomination_id}"


def next_step(translations: Translations, event_name: str, audience: Audience, nomination) -> str:
    """What comes next for a recipient of `audience` (domain/workflow.py NEXT_FOR), or ""."""
    text = NEXT_FOR.get(event_name, {}).get(audience)
    if not text:
        return ""
    return translations.gettext(text).format(city=nomination.city_name,
                                             member_state=labels.member_state_name(nomination.member_state, translations))


def actor_name(translations: Translations, actor: str, names: dict[str, str]) -> str:
    """Who did it, in words: the user's display name, or "the system" for the workers."""
    if actor == SYSTEM.username:
        return translations.gettext(N_("the system"))
    return names.get(actor) or actor


def build_message(settings, to: Recipient, subject: str, message_id: str, template: str, context: dict,
                  headers: dict[str, str] | None = None) -> MIMEMultipart:
    """A mail to one recipient from mail/<template>.txt and .html, in the recipient's language: plain text
    and HTML parts, the subject on one line. (The email package's compat32 classes, which skip
    EmailMessage's header parsing.)"""
    env, _translations = templates(to.language)
    # Only a user has an account page on which to choose a mail per event or the digest.
    account = f"{settings.base_url.rstrip('/')}/account" if to.audience is not Audience.LEAD_AGENCY else None
    context = {"name": to.name, "language": to.language, "account_link": account, **context}
    message = MIMEMultipart("alternative", policy=_UNFOLDED)
    # One line whatever a stored city name holds: compat32 would write a line break into the header.
    subject = mailer.one_line(subject)
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["From"] = settings.mail_from
    message["To"] = to.address
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = value
    message.attach(MIMEText(env.get_template(f"{template}.txt").render(context), "plain", "utf-8"))
    message.attach(MIMEText(env.get_template(f"{template}.html").render(context), "html", "utf-8"))
    return message


def address_key(address: str) -> str:
    """An address as it may stand in a Message-ID."""
    return address.lower().replace("@", ".at.")


def compose(settings, event, nomination, to: Recipient, actor: str | None = None) -> MIMEMultipart:
    """The mail about `event` for one recipient: whom it greets, what happened to which nomination, who
    did it (`actor`: their name), what comes next for them, and the link. Its Message-ID follows from the
    event and the recipient, so a mail sent again is recognisably the same message."""
    _env, translations = templates(to.language)
    sentence = labels.event_sentence(event.name, nomination, translations)
    state = event.to_state or nomination.state
    context = {"nomination": nomination, "event": event, "sentence": sentence,
               "actor": actor_name(translations, event.actor, {event.actor: actor} if actor else {}),
               "next_step": next_step(translations, event.name, to.audience, nomination),
               "link": nomination_link(settings, event.nomination_id, to.audience),
               "state": translations.gettext(labels.STATES.get(state, state))}
    subject = (f"[{nomination.reference}] {nomination.city_name} {EVENTS[event.name].what}" if to.language == "en"
               else f"[{nomination.reference}] {sentence}")
    return build_message(settings, to, subject, f"<{event.event_id}.{address_key(to.address)}@scn-workflow>",
                         "event", context, {"X-SCN-Event": event.name, "X-SCN-Event-Id": event.event_id})


def compose_reminder(settings, item: dict, period: int, to: Recipient) -> MIMEMultipart:
    """A reminder to a reviewer of a nomination waiting too long (services/ops.py `waiting` items)."""
    _env, translations = templates(to.language)
    nomination = SimpleNamespace(reference=item["reference"], city_name=item["city_name"],
                                 member_state=item["member_state"])
    values = {"reference": item["reference"], "city": item["city_name"], "hours": f"{item['waiting_h']:.0f}",
              "member_state": labels.member_state_name(item["member_state"], translations)}
    context = {"sentence": translations.gettext(WAITING_SENTENCES[item["state"]]).format(**values),
               "next_step": translations.gettext(WAITING_NEXT[item["state"]]),
               "link": nomination_link(settings, item["id"]), "nomination": nomination}
    subject = f"[{item['reference']}] " + translations.gettext(WAITING_SUBJECTS[item["state"]]).format(**values)
    key = f"{item['id']}/{item['state']}/{period}"
    return build_message(settings, to, subject,
                         f"<reminder.{key.replace('/', '.')}.{address_key(to.address)}@scn-workflow>",
                         "reminder", context, {"X-SCN-Reminder": key})


WAITING_SENTENCES = {  # the first line of a reminder, by the state the nomination waits in
    "submitted": N_("Nomination {reference} ({city}, {member_state}) has waited {hours} hours for review."),
    "reviewed": N_("Nomination {reference} ({city}, {member_state}) has waited {hours} hours for a decision "
                   "after its review."),
}
WAITING_SUBJECTS = {
    "submitted": N_("{city} has waited {hours} h for review"),
    "reviewed": N_("{city} has waited {hours} h for a decision"),
}


def notify(svc: Services, event_id: str) -> Outcome:
    """Mail everyone the event concerns, each once however often this runs: send, then record. A person
    who chose the daily digest gets none, and the event is recorded as held for them
    (`digest:<address>`): services/digest.py tells them."""
    now = svc.clock()
    with svc.uow() as uow:
        busy, done = begin(uow, event_id, "notifications", now, svc.settings.redeliver_after_s)
        if busy:
            return busy
        n = t.nominations.c
        event = nomination = uow.session.execute(  # one row: what the mail says of both
            sa.select(t.events, n.reference, n.city_name, n.member_state, n.cycle, n.state)
            .join(t.nominations, n.id == t.events.c.nomination_id).where(t.events.c.event_id == event_id)).one()
        users = uow.session.execute(sa.select(t.users).where(t.users.c.active.is_(True))
                                    .order_by(t.users.c.username)).all()
        actor = uow.session.execute(sa.select(t.users.c.name).where(t.users.c.username == event.actor)).scalar()
        agency = None
        if Audience.LEAD_AGENCY in EVENTS[event.name].notify:
            agency = uow.session.execute(sa.select(t.member_states).where(
                t.member_states.c.code == nomination.member_state)).one_or_none()
        uow.commit()
    recipients = choose_recipients(event, nomination.member_state, users, agency)
    to_send = [to for to in recipients if not to.digest and f"mail:{to.address.lower()}" not in done]
    # Held for the digest, by address: the digest of the day tells them even if they switch back to a
    # mail per event before it is sent.
    held = [(event_id, f"digest:{to.address.lower()}", None) for to in recipients if to.digest]
    sent = []
    try:
        for to in to_send:
            where = mailer.send(svc.settings, compose(svc.settings, event, nomination, to, actor))
            sent.append((event_id, f"mail:{to.address.lower()}", where))
    finally:
        with svc.uow() as uow:
            now = svc.clock()
            if len(sent) == len(to_send):
                mark_done(uow, event_id, "notifications", now, held + sent)
            else:  # a mail failed: the retry sends the others
                record_effects(uow, held + sent, now)
                release(uow, event_id, "notifications")
            uow.commit()
    return Outcome.DONE
