"""Notifications by email: who hears of each event, and the mail rendered from templates."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formatdate

import jinja2
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain.model import MemberState, Nomination
from scn_workflow.services import Services, mailer
from scn_workflow.services.effects import already_done, effects_of, record_effect
from scn_workflow.services.relay import mark_done

WHAT_HAPPENED = {
    "nomination.submitted": "was submitted and is being checked",
    "checks.completed": "has finished its automated checks and awaits review",
    "nomination.returned": "was returned for revision",
    "nomination.reviewed": "was reviewed",
    "nomination.accepted": "was accepted",
    "nomination.rejected": "was rejected",
    "nomination.withdrawn": "was withdrawn",
    "nomination.handed_over": "was handed over to the lead agency",
    "handover.failed": "could not be handed over: delivery to the lead agency failed",
}

_templates = jinja2.Environment(loader=jinja2.PackageLoader("scn_workflow", "templates/mail"),
                                autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)


def _users(uow: UnitOfWork, *where) -> list[tuple[str, str]]:
    return list(uow.session.execute(sa.select(t.users.c.username, t.users.c.email)
                                    .where(t.users.c.active.is_(True), *where).order_by(t.users.c.username)))


def recipients(uow: UnitOfWork, event, nomination: Nomination) -> list[tuple[str, str]]:
    """(name, address) of everyone to tell about `event`, each address once."""
    u = t.users.c

    def submitters():
        return _users(uow, u.role == "submitter", u.member_state == nomination.member_state)

    def reviewers():
        return _users(uow, u.role == "reviewer",
                      sa.or_(u.member_state.is_(None), u.member_state != nomination.member_state))

    name = event.name
    out = []  # only the queries this event needs
    if name == "checks.completed":
        out = reviewers()
    elif name == "nomination.withdrawn":
        out = submitters() + (reviewers() if event.from_state != "drafted" else [])
    elif name == "handover.failed":
        out = _users(uow, u.role.in_(("operator", "admin")))
    elif name in WHAT_HAPPENED:
        out = submitters()
    if name == "nomination.handed_over":
        agency = uow.session.get(MemberState, nomination.member_state)
        if agency and agency.lead_agency_email:
            out = out + [(agency.lead_agency_name or "Lead agency", agency.lead_agency_email)]
    seen, unique = set(), []
    for who, address in out:
        if address.lower() not in seen:
            seen.add(address.lower())
            unique.append((who, address))
    return unique


def render(svc: Services, event, nomination: Nomination, to_name: str, to_address: str) -> EmailMessage:
    context = {"nomination": nomination, "event": event, "what": WHAT_HAPPENED[event.name], "name": to_name}
    message = EmailMessage()
    message["Subject"] = f"[{nomination.reference}] {nomination.city_name} {WHAT_HAPPENED[event.name]}"
    message["From"] = svc.settings.mail_from
    message["To"] = to_address
    message["Date"] = formatdate(localtime=False)
    # Deterministic: the same event and recipient always make the same Message-ID.
    message["Message-ID"] = f"<{event.event_id}.{to_address.replace('@', '.at.')}@scn-workflow>"
    message["X-SCN-Event"] = event.name
    message["X-SCN-Event-Id"] = event.event_id
    message.set_content(_templates.get_template("event.txt").render(context))
    message.add_alternative(_templates.get_template("event.html").render(context), subtype="html")
    return message


def notify(svc: Services, event_id: str) -> int:
    """Send the mails of one event, each recipient once however often this runs. Returns mails sent."""
    with svc.uow(read_only=True) as uow:
        done = effects_of(uow, event_id)
        if "done:notifications" in done:
            return 0
        event = uow.session.execute(sa.select(t.events).where(t.events.c.event_id == event_id)).one()
        nomination = uow.session.get(Nomination, event.nomination_id)
        targets = [(who, address) for who, address in recipients(uow, event, nomination)
                   if f"mail:{address.lower()}" not in done]
    sent = 0
    with mailer.Outbox(svc.settings) as outbox:  # one SMTP connection for all the event's mails
        for who, address in targets:
            effect = f"mail:{address.lower()}"
            # One transaction per mail, so a crash never sends an earlier mail again; the record
            # commits just before the server is told to accept the mail (see mailer.Outbox.send).
            with svc.uow() as uow:
                lock_effect(uow, event_id, effect)
                if already_done(uow, event_id, effect):  # another worker sent it meanwhile
                    continue

                def record(where, uow=uow):
                    record_effect(uow, event_id, effect, svc.clock(), where)
                    uow.commit()

                try:
                    outbox.send(render(svc, event, nomination, who, address), on_ready=record)
                except smtplib.SMTPDataError:
                    _forget(svc, event_id, effect)  # recorded, then refused at the last step: retry
                    raise
                sent += 1
    with svc.uow() as uow:
        if not already_done(uow, event_id, "done:notifications"):
            mark_done(uow, event_id, "notifications", svc.clock())
            uow.commit()
    return sent


def _forget(svc: Services, event_id: str, effect: str) -> None:
    with svc.uow() as uow:
        uow.session.execute(sa.delete(t.effects).where(t.effects.c.event_id == event_id,
                                                       t.effects.c.effect == effect))
        uow.commit()


def lock_effect(uow: UnitOfWork, event_id: str, effect: str) -> None:
    """Hold a lock on (event, effect) for this transaction, so two workers never both perform it.

    SQLite needs none: BEGIN IMMEDIATE already serialises writers.
    """
    if uow.dialect == "postgresql":
        uow.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                            {"key": f"{event_id}/{effect}"})
