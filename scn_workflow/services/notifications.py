"""Notifications by email: who hears of each event, and the mail rendered from templates."""

from __future__ import annotations

import binascii
import functools
import email.header
import smtplib
from types import SimpleNamespace
from email.utils import formatdate

import jinja2
import markupsafe
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.services import Services, mailer
from scn_workflow.services.effects import record_effects
from scn_workflow.services.relay import mark_done_many

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


@functools.cache
def _active_users_statement() -> sa.Select:
    u = t.users.c
    return sa.select(u.username, u.email, u.role, u.member_state).where(u.active.is_(True)).order_by(u.username)


def _active_users(uow: UnitOfWork) -> list:
    return list(uow.session.execute(_active_users_statement()))


def _agency(uow: UnitOfWork, member_state: str):
    return uow.session.execute(sa.select(t.member_states.c.lead_agency_name, t.member_states.c.lead_agency_email)
                               .where(t.member_states.c.code == member_state)).one_or_none()


def recipients(uow: UnitOfWork, event, nomination) -> list[tuple[str, str]]:
    """(name, address) of everyone to tell about `event`, each address once."""
    agency = _agency(uow, nomination.member_state) if event.name == "nomination.handed_over" else None
    return choose_recipients(event, nomination.member_state, _active_users(uow), agency)


def choose_recipients(event, member_state: str, users, agency=None) -> list[tuple[str, str]]:
    """Who hears of `event`, from the active users (username, email, role, member_state rows)
    and the member state's lead agency (name, email) for a handover; each address once."""

    def submitters():
        return [(u.username, u.email) for u in users if u.role == "submitter" and u.member_state == member_state]

    def reviewers():
        return [(u.username, u.email) for u in users
                if u.role == "reviewer" and (u.member_state is None or u.member_state != member_state)]

    name = event.name
    out = []
    if name == "checks.completed":
        out = reviewers()
    elif name == "nomination.withdrawn":
        out = submitters() + (reviewers() if event.from_state != "drafted" else [])
    elif name == "handover.failed":
        out = [(u.username, u.email) for u in users if u.role in ("operator", "admin")]
    elif name in WHAT_HAPPENED:
        out = submitters()
    if name == "nomination.handed_over" and agency is not None and agency.lead_agency_email:
        out = out + [(agency.lead_agency_name or "Lead agency", agency.lead_agency_email)]
    seen, unique = set(), []
    for who, address in out:
        if address and address.lower() not in seen:
            seen.add(address.lower())
            unique.append((who, address))
    return unique


def _header(value: str) -> str:
    value = " ".join(value.split())  # no line breaks can reach a header
    return value if value.isascii() else email.header.Header(value, "utf-8").encode()


def _qp(text: str) -> bytes:
    return binascii.b2a_qp(text.encode("utf-8"), istext=True)


NAME_SLOT = "\x00scn-recipient-name\x00"  # where render() leaves the recipient's name for compose()


def render(event, nomination) -> tuple[str, str]:
    """The text and HTML of the mail about `event`, with NAME_SLOT for the recipient's name: rendered
    once per event, whatever the number of recipients."""
    context = {"nomination": nomination, "event": event, "what": WHAT_HAPPENED[event.name], "name": NAME_SLOT}
    return (_templates.get_template("event.txt").render(context),
            _templates.get_template("event.html").render(context))


def compose(settings, event, nomination, to_name: str, to_address: str, date: str,
            rendered: tuple[str, str] | None = None) -> bytes:
    """The mail about `event` for one recipient: multipart text and HTML, as the bytes to send
    (`rendered`: what render() made of the event, else it is rendered here).

    Built directly rather than through EmailMessage, whose header registry and folding cost more
    than everything else of a notification; every header but the subject is ours and ASCII.
    """
    text, html = rendered or render(event, nomination)
    text, html = text.replace(NAME_SLOT, to_name), html.replace(NAME_SLOT, str(markupsafe.escape(to_name)))
    subject = f"[{nomination.reference}] {nomination.city_name} {WHAT_HAPPENED[event.name]}"
    boundary = f"==scn-{event.event_id}=="
    # Deterministic: the same event and recipient always make the same Message-ID.
    message_id = f"<{event.event_id}.{to_address.replace('@', '.at.')}@scn-workflow>"
    head = (f"Subject: {_header(subject)}\nFrom: {settings.mail_from}\nTo: {_header(to_address)}\n"
            f"Date: {date}\nMessage-ID: {message_id}\nX-SCN-Event: {event.name}\n"
            f"X-SCN-Event-Id: {event.event_id}\nMIME-Version: 1.0\n"
            f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n')
    part = (f"--{boundary}\nContent-Type: text/{{}}; charset=\"utf-8\"\n"
            "Content-Transfer-Encoding: quoted-printable\n\n")
    body = b"".join((
        head.encode("ascii"),
        part.format("plain").encode("ascii"), _qp(text), b"\n",
        part.format("html").encode("ascii"), _qp(html), b"\n",
        f"--{boundary}--\n".encode("ascii")))
    return body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


EFFECTS_SEPARATOR = "\n"  # no effect name holds one


@functools.cache
def _events_to_mail() -> sa.Select:
    """Each event with what the mail says of its nomination and the effects already recorded for it
    (the mails sent, the done mark), for any number of events: one statement, built once."""
    n, e, f = t.nominations.c, t.events.c, t.effects.c
    effects = sa.select(sa.func.aggregate_strings(f.effect, EFFECTS_SEPARATOR)).where(
        f.event_id == e.event_id).scalar_subquery()
    return sa.select(t.events, n.reference, n.city_name, n.member_state, n.state.label("nomination_state"),
                     n.cycle.label("nomination_cycle"), effects.label("effects")) \
        .join(t.nominations, n.id == e.nomination_id).where(e.event_id.in_(sa.bindparam("event_ids", expanding=True)))


def notify(svc: Services, event_id: str) -> int:
    """Send the mails of one event, each recipient once however often this runs. Returns mails sent."""
    sent, failed = notify_many(svc, [event_id])
    if event_id in failed:
        raise failed[event_id]
    return sent


def notify_many(svc: Services, event_ids: list[str]) -> tuple[int, dict[str, Exception]]:
    """Send the mails of several events, each recipient once however often this runs.

    Mails go out STAGED_AT_ONCE at a time over connections kept open (mailer.send_recorded): each
    group is recorded in one transaction just before the server is told to accept its mails; that
    transaction also marks done the events whose mails the earlier groups delivered, and one more
    transaction at the end marks the last ones (so the done mark follows delivery). Returns the number
    of mails sent and, for each event that could not be finished, the exception (its retry sends
    only what is still missing).
    """
    event_ids = list(dict.fromkeys(event_ids))
    with svc.uow(read_only=True) as uow:
        done: dict[str, set[str]] = {}
        events, nominations = {}, {}
        for row in uow.session.execute(_events_to_mail(), {"event_ids": event_ids}):
            done[row.event_id] = set(row.effects.split(EFFECTS_SEPARATOR)) if row.effects else set()
            if "done:notifications" in done[row.event_id]:
                continue
            events[row.event_id] = row
            nominations[row.nomination_id] = SimpleNamespace(
                id=row.nomination_id, reference=row.reference, city_name=row.city_name,
                member_state=row.member_state, state=row.nomination_state, cycle=row.nomination_cycle)
        todo = [e for e in event_ids if "done:notifications" not in done.get(e, ())]
        if not todo:
            return 0, {}
        users = _active_users(uow)
        agencies = {code: _agency(uow, code) for code in {nominations[e.nomination_id].member_state
                                                          for e in events.values()
                                                          if e.name == "nomination.handed_over"}}
    failed: dict[str, Exception] = {e: LookupError(f"no event {e}") for e in todo if e not in events}
    date = formatdate(localtime=False)
    mails: list[mailer.Mail] = []
    last_mail: dict[str, int] = {}  # event id -> index of its last mail in `mails`
    finished_now: list[str] = []  # events with nothing (left) to send
    for event_id in todo:
        if event_id not in events:
            continue
        event = events[event_id]
        nomination = nominations[event.nomination_id]
        pending = [(who, address) for who, address in choose_recipients(
            event, nomination.member_state, users, agencies.get(nomination.member_state))
            if f"mail:{address.lower()}" not in done.get(event_id, ())]
        rendered = render(event, nomination) if pending else None
        for who, address in pending:
            mails.append(mailer.Mail((event_id, f"mail:{address.lower()}"), svc.settings.mail_from, address,
                                     compose(svc.settings, event, nomination, who, address, date, rendered)))
            last_mail[event_id] = len(mails) - 1
        if not pending:
            finished_now.append(event_id)
    closable = list(finished_now)  # events whose every mail the server accepted, not yet marked done
    with mailer.kept(svc.settings) as connections:
        sent = _send(svc, connections, mails, last_mail, closable, failed)
    if closable:
        # Marked done only once the server accepted every mail: an event complete in the outbox has
        # had its mails delivered.
        with svc.uow() as uow:
            mark_done_many(uow, closable, "notifications", svc.clock())
            uow.commit()
    return sent, failed


def _send(svc: Services, connections, mails: list, last_mail: dict, closable: list, failed: dict) -> int:
    sent = 0
    for start in range(0, len(mails), mailer.STAGED_AT_ONCE):
        group = mails[start:start + mailer.STAGED_AT_ONCE]

        def record(staged: dict) -> list:
            with svc.uow() as uow:
                if uow.dialect == "postgresql":
                    # The server holds the staged mails until their final dots, which follow this commit:
                    # a worker killed while it waits for the commit's reply loses them. Not waiting for
                    # the WAL flush makes that wait a local round trip. The price: should PostgreSQL
                    # itself crash within about a second of this commit, the record is lost and the
                    # retry sends those mails again (a duplicate, never a loss).
                    uow.session.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
                recorded = record_effects(uow, [(key[0], key[1], where) for key, where in staged.items()],
                                          svc.clock())
                mark_done_many(uow, closable, "notifications", svc.clock())  # the earlier groups' events
                uow.commit()
            closable.clear()
            return recorded

        results = mailer.send_recorded(svc.settings, connections, group, record)
        for mail in group:  # a mail refused, or whose connection failed: its event is not done
            outcome = results.get(mail.key)
            if isinstance(outcome, Exception):
                failed.setdefault(mail.key[0], outcome)
                if isinstance(outcome, smtplib.SMTPDataError):
                    _forget(svc, *mail.key)  # recorded, then refused at the last step: retry it
            elif outcome is not None:
                sent += 1
        end = start + len(group)
        closable.extend(e for e, last in last_mail.items() if start <= last < end and e not in failed)
    return sent


def _forget(svc: Services, event_id: str, effect: str) -> None:
    """A mail recorded but refused at the final ".": unrecord it, so the retry sends it.
    (Its event is not marked done yet: that waits for every mail to be accepted.)"""
    with svc.uow() as uow:
        uow.session.execute(sa.delete(t.effects).where(t.effects.c.event_id == event_id,
                                                       t.effects.c.effect == effect))
        uow.commit()
