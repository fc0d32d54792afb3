"""Alerts: one mail (and one alert-webhook call) per incident when it opens, one when it clears;
and reminders to reviewers about nominations waiting too long, once per waiting period."""

from __future__ import annotations

import json
import logging
import re
from email.message import EmailMessage
from email.utils import formatdate

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from scn_workflow.db import tables as t
from scn_workflow.domain.workflow import Audience
from scn_workflow.services import Services, mailer, notifications, ops
from scn_workflow.services.webhooks import DeliveryFailed, destinations_of, post

log = logging.getLogger(__name__)


def incident_key(problem: str) -> str:
    """A stable key for a problem whose wording carries changing numbers (or, for the broker, a
    changing error). Two problems of one queue (no worker; an old message) are two incidents."""
    if problem.startswith("broker unreachable"):
        return "broker unreachable"
    return re.sub(r"\d+(\.\d+)?", "#", problem)[:200]


def _operators(svc: Services) -> list[str]:
    with svc.uow(read_only=True) as uow:
        return list(uow.session.scalars(sa.select(t.users.c.email).where(
            t.users.c.role.in_(("operator", "admin")), t.users.c.active.is_(True)).order_by(t.users.c.email)))


def _tell(svc: Services, subject: str, body: str, kind: str, key: str, incident_id: int) -> None:
    for address in _operators(svc):
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = svc.settings.mail_from
        message["To"] = address
        message["Date"] = formatdate(localtime=False)
        message["X-SCN-Alert"] = kind
        message.set_content(body)
        try:
            mailer.send(svc.settings, message)
        except OSError:
            log.warning("alert mail to %s failed", address, exc_info=True)
    if svc.settings.alert_webhook_url:
        payload = json.dumps({"alert": kind, "key": key, "summary": subject, "detail": body}).encode()
        # One Idempotency-Key per change: the opening and the clearing of an incident, and a later
        # incident with the same key, are each news to a receiver that drops repeated keys.
        try:
            post(svc.settings.alert_webhook_url, svc.settings.secret_key, f"alert.{kind}",
                 f"incident-{incident_id}-{kind}", payload, timeout=5, to=destinations_of(svc))
        except DeliveryFailed:
            log.warning("alert webhook failed", exc_info=True)


def watch(svc: Services, celery=None) -> dict:
    """Compare what is wrong now with the open incidents: open the new ones, close the cleared ones."""
    current = {incident_key(p): p for p in ops.status(svc, celery).problems}
    now = svc.clock()
    with svc.uow() as uow:
        open_rows = {r.key: r for r in uow.session.execute(sa.select(t.incidents).where(t.incidents.c.closed_at.is_(None)))}
        opened = [k for k in current if k not in open_rows]
        cleared = [k for k in open_rows if k not in current]
        opened_ids = {key: uow.session.execute(sa.insert(t.incidents).values(
            key=key, detail=current[key], opened_at=now).returning(t.incidents.c.id)).scalar_one() for key in opened}
        for key in cleared:
            uow.session.execute(sa.update(t.incidents).where(t.incidents.c.id == open_rows[key].id).values(closed_at=now))
        uow.commit()
    for key in opened:
        _tell(svc, f"[scn-workflow] ALERT: {current[key]}", f"Since {now:%Y-%m-%d %H:%M:%S} UTC: {current[key]}\n"
              "Run `scn-workflow ops status` or open the operator dashboard.", "opened", key, opened_ids[key])
    for key in cleared:
        _tell(svc, f"[scn-workflow] CLEARED: {open_rows[key].detail}",
              f"Cleared at {now:%Y-%m-%d %H:%M:%S} UTC (opened {open_rows[key].opened_at:%Y-%m-%d %H:%M:%S}).",
              "cleared", key, open_rows[key].id)
    return {"opened": opened, "cleared": cleared}


def remind(svc: Services) -> int:
    """Mail the reviewers concerned about each nomination waiting too long, once per waiting period (a
    reviewer who chose the daily digest reads of it there instead)."""
    sent = 0
    for item in ops.waiting(svc):
        period = int(item["waiting_h"] // svc.settings.stuck_after_h)
        with svc.uow() as uow:
            try:
                # Reminders of an earlier wait (before the nomination was returned and submitted
                # again) do not count for this one.
                since = sa.select(t.nominations.c.updated_at).where(t.nominations.c.id == item["id"]).scalar_subquery()
                uow.session.execute(sa.delete(t.reminders).where(t.reminders.c.nomination_id == item["id"],
                                                                 t.reminders.c.sent_at < since))
                uow.session.execute(sa.insert(t.reminders).values(nomination_id=item["id"], state=item["state"],
                                                                  period=period, sent_at=svc.clock()))
                uow.commit()
            except IntegrityError:
                continue  # already reminded in this period
            u = t.users.c
            reviewers = uow.session.execute(sa.select(t.users).where(
                u.role == "reviewer", u.active.is_(True),
                sa.or_(u.member_state.is_(None), u.member_state != item["member_state"])).order_by(u.email)).all()
        for reviewer in reviewers:
            if reviewer.mail_digest:
                continue  # their daily digest lists the nominations waiting too long (services/digest.py)
            mailer.send(svc.settings, notifications.compose_reminder(
                svc.settings, item, period, notifications.recipient(reviewer, Audience.REVIEWERS)))
            sent += 1
    return sent
