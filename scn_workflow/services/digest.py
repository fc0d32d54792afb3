"""The daily digest: a person who chose it (users.mail_digest) gets no mail per event, but one mail a
day listing each nomination with what happened to it, its next step and its link, and the nominations
waiting too long for reviewers (instead of separate reminders).

No table holds the waiting mails: the digest of a day reads the events of that day a person would have
been mailed about (notifications.choose_recipients) and not already mailed (a person who switched to the
digest during the day). The notification reaction records each event it held back for a person
(`digest:<address>` in the idempotency record), so a person who switches back to a mail per event before
the digest goes out still gets the events held for them that day. Each digest is an effect keyed by
(day, person) in the idempotency record (services/effects.py): claimed, sent with no transaction held,
then recorded, so beat running twice or a worker dying sends it once, and a repeat after a crash is the
same message (its Message-ID follows from the day and the person).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone

import sqlalchemy as sa
from babel.dates import format_date

from scn_workflow import labels
from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_
from scn_workflow.domain.workflow import EVENTS, WAITING_NEXT, Audience
from scn_workflow.services import Services, mailer, ops
from scn_workflow.services.effects import begin, record_effects, release
from scn_workflow.services.notifications import (WAITING_SENTENCES, Recipient, actor_name, build_message,
                                                 choose_recipients, next_step, nomination_link, recipient, templates)

log = logging.getLogger(__name__)

SEND_EVERY_S = 3600.0
"""How often beat (and the embedded worker) looks for digests due: hourly, so yesterday's go out soon after
midnight UTC, and one whose mail failed is tried again within the hour."""

NOTIFIED = tuple(name for name, spec in EVENTS.items() if spec.notify)
EVENT_LINE = N_("{time}: {event}, by {actor}.")


def key(day: date, user_id: int) -> str:
    """The digest's key in the idempotency record (it stands where an event id stands)."""
    return f"digest:{day.isoformat()}:{user_id}"


def send_digests(svc: Services, day: date | None = None) -> int:
    """Send each digest of `day` (UTC; default yesterday) not sent yet; returns how many went out."""
    now = svc.clock()
    day = day or (now - timedelta(days=1)).date()
    start = datetime.combine(day, time.min, tzinfo=timezone.utc)
    e, n, u, f = t.events.c, t.nominations.c, t.users.c, t.effects.c
    with svc.uow(read_only=True) as uow:
        window = sa.and_(e.occurred_at >= start, e.occurred_at < start + timedelta(days=1), e.name.in_(NOTIFIED))
        # (event id, "mail:<address>" or "digest:<address>"): mailed already, or held for the digest
        told = set(uow.session.execute(sa.select(f.event_id, f.effect).where(
            sa.or_(f.effect.like("mail:%"), f.effect.like("digest:%")),
            f.event_id.in_(sa.select(e.event_id).where(window)))).all())
        held_for = {effect.removeprefix("digest:") for _event_id, effect in told if effect.startswith("digest:")}
        # Those on the digest now, and those who were when an event of the day was held for them.
        people = uow.session.execute(sa.select(t.users).where(
            u.active.is_(True), sa.or_(u.mail_digest.is_(True), sa.func.lower(u.email).in_(held_for)))
            .order_by(u.id)).all()
        if not people:
            return 0
        events = uow.session.execute(
            sa.select(e.event_id, e.nomination_id, e.name, e.actor, e.occurred_at, e.from_state, e.to_state,
                      e.comment, n.reference, n.city_name, n.member_state, n.cycle, n.state)
            .join(t.nominations, n.id == e.nomination_id).where(window).order_by(e.occurred_at, e.id)).all()
        names = {row.username: row.name for row in uow.session.execute(sa.select(u.username, u.name)) if row.name}
    waiting = ops.waiting(svc) if any(p.role == "reviewer" and p.mail_digest for p in people) else []
    sent = 0
    for person in people:
        to, address = recipient(person, Audience.SUBMITTERS), person.email.lower()
        # (event, the audience by which this person hears of it): what comes next depends on it. An event
        # not yet held for them (its notification has not run) counts while they are on the digest.
        mine = [(event, chosen[0].audience) for event in events
                if (event.event_id, f"mail:{address}") not in told
                and (person.mail_digest or (event.event_id, f"digest:{address}") in told)
                and (chosen := choose_recipients(event, event.member_state, [person]))]
        theirs = [item for item in waiting if person.role == "reviewer" and person.mail_digest
                  and item["member_state"] != person.member_state]
        if (mine or theirs) and _send_one(svc, day, person.id, to, mine, theirs, names):
            sent += 1
    return sent


def _send_one(svc: Services, day: date, user_id: int, to: Recipient, events, waiting, names) -> bool:
    """Claim, send and record one person's digest; False when it was sent before or is being sent."""
    digest_key = key(day, user_id)
    with svc.uow() as uow:
        busy, _done = begin(uow, digest_key, "digest", svc.clock(), svc.settings.redeliver_after_s)
        uow.commit()
    if busy:
        return False
    try:
        where = mailer.send(svc.settings, compose_digest(svc.settings, day, user_id, to, events, waiting, names))
    except Exception:  # noqa: BLE001 - the next round (within SEND_EVERY_S) tries again
        log.warning("digest %s to %s failed", digest_key, to.address, exc_info=True)
        with svc.uow() as uow:
            release(uow, digest_key, "digest")
            uow.commit()
        return False
    with svc.uow() as uow:
        record_effects(uow, [(digest_key, f"mail:{to.address.lower()}", where), (digest_key, "done:digest", None)],
                       svc.clock())
        uow.commit()
    return True


def compose_digest(settings, day: date, user_id: int, to: Recipient, events, waiting, names: dict[str, str]):
    """One person's digest of `day`: each nomination with its events ((event, audience) pairs), what comes
    next and its link; then the nominations waiting too long for reviewers."""
    _env, translations = templates(to.language)
    items: dict[int, dict] = {}
    for event, audience in events:
        item = items.setdefault(event.nomination_id, {
            "title": f"{event.reference}: {event.city_name}, "
                     f"{labels.member_state_name(event.member_state, translations)}",
            "link": nomination_link(settings, event.nomination_id), "lines": []})
        item["lines"].append({"comment": event.comment, "text": translations.gettext(EVENT_LINE).format(
            time=f"{event.occurred_at:%H:%M} UTC", event=translations.gettext(labels.EVENTS[event.name]),
            actor=actor_name(translations, event.actor, names))})
        item["next_step"] = next_step(translations, event.name, audience, event)  # the latest event's
    reminders = []
    for w in waiting:
        values = {"reference": w["reference"], "city": w["city_name"], "hours": f"{w['waiting_h']:.0f}",
                  "member_state": labels.member_state_name(w["member_state"], translations)}
        reminders.append({"sentence": translations.gettext(WAITING_SENTENCES[w["state"]]).format(**values),
                          "next_step": translations.gettext(WAITING_NEXT[w["state"]]),
                          "link": nomination_link(settings, w["id"])})
    when = format_date(day, "long", locale=to.language)
    subject = translations.gettext(N_("Your daily summary of {day}")).format(day=when)
    return build_message(settings, to, f"[scn-workflow] {subject}",
                         f"<digest.{day.isoformat()}.{user_id}@scn-workflow>", "digest",
                         {"day": when, "items": list(items.values()), "waiting": reminders},
                         {"X-SCN-Digest": f"{day.isoformat()}/{user_id}"})

