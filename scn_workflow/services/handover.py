"""Handover: build the package of an accepted nomination, deliver it, then fire `hand_over`."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import formatdate

import sqlalchemy as sa

from scn_workflow import labels
from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, DomainError, Text
from scn_workflow.domain.model import SYSTEM, MemberState, Nomination
from scn_workflow.services import Services, acknowledgements, mailer, nominations
from scn_workflow.services.effects import Outcome, begin, record_effects, recorded, release
from scn_workflow.services.outbox import mark_done
from scn_workflow.services.webhooks import DeliveryFailed, destinations_of, post, to_json


def package(uow, nomination: Nomination) -> dict:
    """The nomination, its assessment, its checks and its audit trail with hashes."""
    events = uow.session.execute(sa.select(t.events).where(t.events.c.nomination_id == nomination.id)
                                 .order_by(t.events.c.seq)).mappings().all()
    checks = uow.session.execute(sa.select(t.checks).where(t.checks.c.nomination_id == nomination.id)
                                 .order_by(t.checks.c.id)).mappings().all()
    data = nomination.snapshot()
    data.update(id=nomination.id, reference=nomination.reference, member_state=nomination.member_state,
                cycle=nomination.cycle, state=nomination.state, version=nomination.version)
    return {"format": "scn-workflow/handover-package/1", "nomination": data,
            "assessment": nomination.assessment, "reviewed_by": nomination.reviewed_by,
            "checks": [{k: row[k] for k in ("name", "outcome", "blocking", "message", "ran_at")} for row in checks],
            "audit_trail": [{k: row[k] for k in ("seq", "event_id", "name", "actor", "occurred_at", "from_state",
                                                  "to_state", "comment", "payload", "prev_hash", "hash")}
                            for row in events]}


def _record_delivery(svc, nomination_id, event_id, channel, target, status, detail) -> None:
    """Record one delivery attempt (and, when accepted, its effect) in a transaction of its own."""
    with svc.uow() as uow:
        attempts = uow.session.scalar(sa.select(sa.func.count()).select_from(t.deliveries).where(
            t.deliveries.c.event_id == event_id, t.deliveries.c.channel == channel)) + 1
        uow.session.execute(sa.insert(t.deliveries).values(
            nomination_id=nomination_id, event_id=event_id, channel=channel, target=target, status=status,
            attempts=attempts, detail=detail[:2000], created_at=svc.clock()))
        if status == "accepted":
            record_effects(uow, [(event_id, f"handover:{channel}", target)], svc.clock())
            if channel == "webhook":  # its 2xx is the lead agency's acknowledgement of receipt, recorded with it
                acknowledgements.record(uow, nomination_id, event_id, acknowledgements.VIA_WEBHOOK, svc.clock())
        uow.commit()


def deliver(svc: Services, event_id: str) -> Outcome:
    """Deliver the package for the acceptance `event_id` to the lead agency, then fire hand_over.
    Each channel is called, then recorded; raises DeliveryFailed for Celery to retry."""
    with svc.uow() as uow:
        busy, done = begin(uow, event_id, "handover", svc.clock(), svc.settings.redeliver_after_s)
        if busy:
            return busy
        nomination_id = uow.session.scalar(sa.select(t.events.c.nomination_id).where(t.events.c.event_id == event_id))
        nomination = uow.session.get(Nomination, nomination_id)
        agency = uow.session.get(MemberState, nomination.member_state)
        links = acknowledgements.package_links(svc, uow, nomination.id, event_id)
        body = to_json({**package(uow, nomination), "links": links}).encode("utf-8")
        uow.commit()
    try:
        if nomination.state == "accepted":
            _deliver(svc, event_id, nomination, agency, body, done)
    except Exception:
        with svc.uow() as uow:
            release(uow, event_id, "handover")
            uow.commit()
        raise
    with svc.uow() as uow:
        mark_done(uow, event_id, "handover", svc.clock())
        uow.commit()
    return Outcome.DONE


def _deliver(svc: Services, event_id: str, nomination: Nomination, agency: MemberState, body: bytes,
             done: set[str]) -> None:
    if agency is None or not agency.has_lead_agency:
        # The same rule as hand_over's: without a name and a channel nothing is sent, since the
        # nomination could not be handed over after it anyway.
        raise DeliveryFailed(Text(N_("No lead agency is set for member state {code}: the package goes only to a "
                                     "lead agency with a name and an email or a webhook."),
                                  code=nomination.member_state))
    channels = []
    if agency.lead_agency_webhook_url:
        channels.append(("webhook", agency.lead_agency_webhook_url))
    if agency.lead_agency_email:
        channels.append(("email", agency.lead_agency_email))
    for channel, target in channels:
        if f"handover:{channel}" in done:
            continue  # delivered by an earlier attempt
        try:
            if channel == "webhook":
                status = post(target, agency.lead_agency_webhook_secret or "", "nomination.accepted", event_id, body,
                              to=destinations_of(svc))
                detail = f"answered {status}"
            else:
                detail = mailer.send(svc.settings, _package_mail(svc, nomination, agency, event_id, body))
        except (DeliveryFailed, OSError, ValueError) as exc:
            _record_delivery(svc, nomination.id, event_id, channel, target, "failed", str(exc))
            raise DeliveryFailed(str(exc)) from None
        _record_delivery(svc, nomination.id, event_id, channel, target, "accepted", detail)
    current = nominations.get(svc, SYSTEM, nomination.id)
    if current.state == "accepted":
        try:
            nominations.fire(svc, SYSTEM, nomination.id, "hand_over", current.version)
        except DomainError as exc:
            raise DeliveryFailed(Text(N_("hand_over was refused: {reason}"), reason=exc.detail)) from None


# Each header on one line, as in the notifications, up to RFC 5322's limit of 998 characters: the
# default folding at 78 puts a subject that starts with "[" on a line of its own, read with a leading space.
_ONE_LINE_HEADERS = email.policy.SMTP.clone(max_line_length=998)


def _package_mail(svc, nomination, agency, event_id, body: bytes) -> EmailMessage:
    message = EmailMessage(policy=_ONE_LINE_HEADERS)
    # Names are typed by people and may hold a line break (stored before input refused them):
    # a header carries them on one line, or the mail could never be sent.
    language = agency.lead_agency_language or "en"
    words = labels.catalogue(language)
    message["Subject"] = mailer.one_line(f"[{nomination.reference}] " + words.gettext(
        N_("Handover package: {city}")).format(city=nomination.city_name))
    message["From"] = svc.settings.mail_from
    message["To"] = agency.lead_agency_email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{event_id}.handover@scn-workflow>"
    message["X-SCN-Event"] = "nomination.accepted"
    message["Idempotency-Key"] = event_id
    plan = acknowledgements.action_plan(svc, nomination.id)
    acknowledge = acknowledgements.links(svc, nomination.id, event_id)["acknowledge"]
    attached = (N_("The dossier (the nomination, its assessment and scores, its checks, and its audit trail with "
                   "hashes and how to verify them), the city's action plan and the same as machine-readable JSON "
                   "are attached.") if plan else
                N_("The dossier (the nomination, its assessment and scores, its checks, and its audit trail with "
                   "hashes and how to verify them) and the same as machine-readable JSON are attached."))
    values = {"agency": agency.lead_agency_name, "city": nomination.city_name, "reference": nomination.reference,
              "days": svc.settings.handover_link_days, "link": acknowledge}
    message.set_content("\n\n".join(words.gettext(text).format(**values) for text in (
        N_("Dear {agency},"),
        N_("The ASEAN Smart Cities Network accepted {city} ({reference}) and hands it over to you."),
        attached,
        N_("Please acknowledge receipt here (no account is needed; the link works for {days} days):\n{link}"),
    )) + "\n")
    # Imported here: fpdf2 (with Pillow and fontTools) adds about 35 MB to a process, and only a handover
    # or a dossier link needs it.
    from scn_workflow.services import dossier
    message.add_attachment(dossier.build(svc, nomination.id, agency.lead_agency_language or "en"),
                           maintype="application", subtype="pdf", filename=f"{nomination.reference}-dossier.pdf")
    if plan:
        message.add_attachment(plan[1], maintype="application", subtype="pdf",
                               filename=f"{nomination.reference}-action-plan.pdf")
    message.add_attachment(body, maintype="application", subtype="json",
                           filename=f"{nomination.reference}-handover.json")
    return message


# What a submitter reads in the audit trail; the receiver's answer stays with operators (the delivery
# record, the failure on /ops), since it can hold an internal address or a receiver's error page.
FAILED_COMMENT = "The package could not be delivered to the lead agency; operators have been told."


def record_failed(svc: Services, event_id: str, error: str) -> None:
    """Delivery failed for good: record `handover.failed` on the nomination (once per acceptance), with
    a sentence for everyone who reads the nomination; `error` is kept for operators."""
    with svc.uow() as uow:
        if "handover.failed" in recorded(uow, event_id):
            return
        nomination_id = uow.session.scalar(sa.select(t.events.c.nomination_id).where(t.events.c.event_id == event_id))
        nomination = uow.session.get(Nomination, nomination_id)
        now = svc.clock()
        nomination.note_handover_failed(FAILED_COMMENT, event_id, now)
        record_effects(uow, [(event_id, "handover.failed", error[:1000])], now)
        uow.commit()
