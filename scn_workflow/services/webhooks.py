"""Signed outgoing webhooks: the lead agency's handover endpoint and admins' subscriptions."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime

import sqlalchemy as sa
import urllib3

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import N_, Forbidden, InvalidInput, NotFound, Text, Violation
from scn_workflow.domain.model import Actor, Role
from scn_workflow.domain.workflow import EVENTS
from scn_workflow.services import Services, destinations
from scn_workflow.services.destinations import Destinations, Refused
from scn_workflow.services.effects import Outcome, begin, record_effects, release
from scn_workflow.services.outbox import mark_done

EVENT_NAMES = tuple(EVENTS)


class DeliveryFailed(Exception):
    """The receiver did not accept the delivery (an error status or no answer), or the URL breaks the rule."""


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def destinations_of(svc: Services) -> Destinations:
    """The webhook URL rule with this deployment's allowed networks and resolver."""
    return Destinations(svc.settings.webhook_allowed_networks, svc.resolve)


def post(url: str, secret: str, event_name: str, event_id: str, body: bytes, timeout: float = 10.0, *,
         to: Destinations) -> int:
    """POST a signed body to a checked address of `url`; returns the status when 2xx, raises
    DeliveryFailed otherwise (a redirect included: it is not followed). An empty secret is refused:
    a signature with an empty key proves nothing."""
    if destinations.check_secret(url, secret):
        raise DeliveryFailed(Text(N_("{url} was not called: it has no secret of {count} characters or more to "
                                     "sign with."), url=url, count=destinations.MIN_SECRET))
    headers = {"Content-Type": "application/json", "X-SCN-Signature": signature(secret, body),
               "X-SCN-Event": event_name, "Idempotency-Key": event_id, "User-Agent": "scn-workflow"}
    try:
        status = destinations.post(to, url, body, headers, timeout)
    except Refused as exc:
        raise DeliveryFailed(Text(N_("{url} was not called: {reason}"), url=url, reason=exc.message)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise DeliveryFailed(Text(N_("{url} did not answer: {reason}"), url=url, reason=str(exc))) from None
    if 300 <= status < 400:
        raise DeliveryFailed(Text(N_("{url} answered {status}, a redirect, which is not followed."),
                                  url=url, status=str(status)))
    if not 200 <= status < 300:
        raise DeliveryFailed(Text(N_("{url} answered {status}"), url=url, status=str(status)))
    return status


def to_json(value) -> str:
    """JSON with sorted keys, times in ISO 8601: the bodies we sign."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False,
                      default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))


def event_body(event) -> bytes:
    return to_json({"event_id": event.event_id, "event": event.name, "nomination_id": event.nomination_id,
                  "occurred_at": event.occurred_at, "actor": event.actor, "from_state": event.from_state,
                  "to_state": event.to_state, "comment": event.comment, "payload": event.payload}).encode("utf-8")


def subscribe(svc: Services, actor: Actor, url: str, secret: str, events: list[str]) -> int:
    """Register a subscription (admins); returns its id."""
    if actor.role not in (Role.ADMIN, Role.SYSTEM):
        raise Forbidden(N_("Only an admin may subscribe webhooks."),
                        [Violation("admin", N_("Only an admin may do this."))])
    errors = {}
    try:
        destinations_of(svc).check(url)  # resolves the host: before any transaction opens
    except Refused as exc:
        errors["url"] = [exc.message]
    secret_error = destinations.check_secret(url, secret)
    if secret_error:
        errors["secret"] = [secret_error]
    unknown = [e for e in events if e not in EVENT_NAMES]
    if not events or unknown:
        errors["events"] = [Text(N_("Name one or more of: {events}."), events=", ".join(EVENT_NAMES))]
    if errors:
        raise InvalidInput(N_("The subscription is not valid."), errors)
    with svc.uow() as uow:
        new_id = uow.session.execute(sa.insert(t.webhooks).values(
            url=url, secret=secret, events=list(events), active=True, created_by=actor.username,
            created_at=svc.clock()).returning(t.webhooks.c.id)).scalar_one()
        uow.commit()
        return new_id


def unsubscribe(svc: Services, webhook_id: int) -> None:
    with svc.uow() as uow:
        if uow.session.execute(sa.update(t.webhooks).where(t.webhooks.c.id == webhook_id)
                               .values(active=False)).rowcount == 0:
            raise NotFound(Text(N_("No webhook subscription {id}."), id=str(webhook_id)))
        uow.commit()


def deliver_event(svc: Services, event_id: str) -> Outcome:
    """Call every subscription that wants this event, each once: call, then record. Raises
    DeliveryFailed (after recording the calls that succeeded) for Celery to retry the rest."""
    now = svc.clock()
    with svc.uow() as uow:
        busy, done = begin(uow, event_id, "webhooks", now, svc.settings.redeliver_after_s)
        if busy:
            return busy
        event = uow.session.execute(sa.select(t.events).where(t.events.c.event_id == event_id)).one()
        hooks = [h for h in uow.session.execute(sa.select(t.webhooks).where(t.webhooks.c.active.is_(True)))
                 if event.name in (h.events or []) and f"webhook:{h.id}" not in done]
        uow.commit()
    body, called, errors, to = event_body(event), [], [], destinations_of(svc)
    for hook in hooks:
        try:
            status = post(hook.url, hook.secret, event.name, event_id, body, to=to)
            called.append((event_id, f"webhook:{hook.id}", f"{hook.url} answered {status}"))
        except DeliveryFailed as exc:
            errors.append(str(exc))
    with svc.uow() as uow:
        record_effects(uow, called, svc.clock())
        if errors:
            release(uow, event_id, "webhooks")
        else:
            mark_done(uow, event_id, "webhooks", svc.clock())
        uow.commit()
    if errors:
        raise DeliveryFailed("; ".join(errors))
    return Outcome.DONE
