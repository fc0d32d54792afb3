"""Notifications by email: who hears of each event (the workflow's EventSpec.notify), and the mail."""

from __future__ import annotations

import email.policy
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate

import functools
from pathlib import Path

import jinja2
import sqlalchemy as sa
from babel.support import Translations

from scn_workflow import labels
from scn_workflow.db import tables as t
from scn_workflow.domain.workflow import EVENTS, Audience
from scn_workflow.services import Services, mailer
from scn_workflow.services.effects import Outcome, begin, record_effects, release
from scn_workflow.services.outbox import mark_done

_UNFOLDED = email.policy.compat32.clone(max_line_length=None)  # each header on one line, as receivers read it
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


@functools.cache
def _templates(language: str) -> tuple[jinja2.Environment, Translations]:
    """The mail templates in one language (English, or a catalogue of scn_workflow/translations)."""
    translations = Translations.load(str(TRANSLATIONS), [language])
    env = jinja2.Environment(loader=jinja2.PackageLoader("scn_workflow", "templates/mail"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             extensions=["jinja2.ext.i18n"])
    env.install_gettext_translations(translations, newstyle=True)
    return env, translations


def choose_recipients(event, member_state: str, users, agency=None) -> list[tuple[str, str]]:
    """(name, address) of everyone to tell about `event`, each address once: from the active users
    (rows with username, email, role, member_state) and the member state's lead agency (a row with
    lead_agency_name, lead_agency_email)."""
    audiences = EVENTS[event.name].notify
    out = []
    for audience in audiences:
        if audience is Audience.SUBMITTERS:
            out += [u for u in users if u.role == "submitter" and u.member_state == member_state]
        elif audience is Audience.REVIEWERS or (audience is Audience.REVIEWERS_IF_SUBMITTED
                                                and event.from_state != "drafted"):
            out += [u for u in users if u.role == "reviewer" and u.member_state != member_state]
        elif audience is Audience.OPERATORS:
            out += [u for u in users if u.role in ("operator", "admin")]
    people = [(u.username, u.email) for u in out]
    if Audience.LEAD_AGENCY in audiences and agency is not None and agency.lead_agency_email:
        people.append((agency.lead_agency_name or "Lead agency", agency.lead_agency_email))
    seen, unique = set(), []
    for who, address in people:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            unique.append((who, address))
    return unique


def compose(settings, event, nomination, to_name: str, to_address: str, language: str = "en") -> MIMEMultipart:
    """The mail about `event` for one recipient, plain text and HTML. Its Message-ID follows from the
    event and the recipient, so a mail sent again is recognisably the same message. (The email
    package's compat32 classes, which skip EmailMessage's header parsing.)"""
    env, translations = _templates(language)
    member_state = translations.gettext(labels.MEMBER_STATES.get(nomination.member_state, nomination.member_state))
    sentence = translations.gettext(labels.EVENT_SENTENCES[event.name]).format(
        reference=nomination.reference, city=nomination.city_name, member_state=member_state)
    state = event.to_state or nomination.state
    context = {"nomination": nomination, "event": event, "name": to_name, "sentence": sentence, "language": language,
               "state": translations.gettext(labels.STATES.get(state, state)), "what": EVENTS[event.name].what}
    message = MIMEMultipart("alternative", policy=_UNFOLDED)
    # One line whatever a stored city name holds: compat32 would write a line break into the header.
    subject = mailer.one_line(f"[{nomination.reference}] {nomination.city_name} {context['what']}" if language == "en"
                              else f"[{nomination.reference}] {sentence}")
    message["Subject"] = subject if subject.isascii() else Header(subject, "utf-8")
    message["From"] = settings.mail_from
    message["To"] = to_address
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{event.event_id}.{to_address.replace('@', '.at.')}@scn-workflow>"
    message["X-SCN-Event"] = event.name
    message["X-SCN-Event-Id"] = event.event_id
    message.attach(MIMEText(env.get_template("event.txt").render(context), "plain", "utf-8"))
    message.attach(MIMEText(env.get_template("event.html").render(context), "html", "utf-8"))
    return message


def notify(svc: Services, event_id: str) -> Outcome:
    """Mail everyone the event concerns, each once however often this runs: send, then record."""
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
        agency = None
        if Audience.LEAD_AGENCY in EVENTS[event.name].notify:
            agency = uow.session.execute(sa.select(t.member_states).where(
                t.member_states.c.code == nomination.member_state)).one_or_none()
        uow.commit()
    # Each person reads the mail in their own language; the lead agency in its dossier's language.
    languages = {(u.email or "").lower(): getattr(u, "language", None) or "en" for u in users}
    if agency is not None and agency.lead_agency_email:
        languages[agency.lead_agency_email.lower()] = getattr(agency, "lead_agency_language", None) or "en"
    to_send = [(who, address) for who, address in choose_recipients(event, nomination.member_state, users, agency)
               if f"mail:{address.lower()}" not in done]
    sent = []
    try:
        for who, address in to_send:
            where = mailer.send(svc.settings, compose(svc.settings, event, nomination, who, address,
                                                      languages.get(address.lower(), "en")))
            sent.append((event_id, f"mail:{address.lower()}", where))
    finally:
        with svc.uow() as uow:
            now = svc.clock()
            if len(sent) == len(to_send):
                mark_done(uow, event_id, "notifications", now, sent)
            else:  # a mail failed: the retry sends the others
                record_effects(uow, sent, now)
                release(uow, event_id, "notifications")
            uow.commit()
    return Outcome.DONE
