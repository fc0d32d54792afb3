"""The lead agency's side of a handover: signed, expiring links to the package's PDFs and to the
acknowledgement page, and the acknowledgement itself (`handover.acknowledged`, recorded once).

A link's token names the nomination and its acceptance event, and when it stops working. It is
signed with the app's secret (itsdangerous); the expiry is inside the signed part and is compared
with the Services clock, so a link's lifetime is fixed when it is made (SCN_HANDOVER_LINK_DAYS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer

from scn_workflow.db import tables as t
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.domain.model import SYSTEM, MemberState, Nomination
from scn_workflow.services import Services, attachments
from scn_workflow.services.effects import record_effects

SALT = "scn-workflow/handover-link"
EFFECT = "handover.acknowledged"  # the effect on the acceptance event that makes the acknowledgement once-only
VIA_WEBHOOK, VIA_LINK = "webhook", "link"


class LinkRefused(Exception):
    """A link whose signature does not match (changed or made elsewhere): 403."""


class LinkExpired(Exception):
    """A genuine link past its expiry: 410."""


@dataclass(frozen=True)
class Handover:
    """What a valid link names."""
    nomination_id: int
    event_id: str  # the acceptance event the package was built for
    expires_at: datetime


def _serializer(svc: Services) -> URLSafeSerializer:
    return URLSafeSerializer(svc.settings.secret_key, salt=SALT)


def make_token(svc: Services, nomination_id: int, event_id: str) -> str:
    """A token for the handover of `nomination_id` accepted by `event_id`, valid SCN_HANDOVER_LINK_DAYS days."""
    expires = svc.clock() + timedelta(days=svc.settings.handover_link_days)
    return _serializer(svc).dumps({"n": nomination_id, "e": event_id, "x": int(expires.timestamp())})


def read_token(svc: Services, token: str) -> Handover:
    """The handover a token names; LinkRefused when its signature does not match, LinkExpired when it is old."""
    try:
        data = _serializer(svc).loads(token)
        handover = Handover(int(data["n"]), str(data["e"]), datetime.fromtimestamp(int(data["x"]), timezone.utc))
    except (BadSignature, KeyError, TypeError, ValueError, OverflowError):
        raise LinkRefused("This link is not valid: it was changed or not made by this service.") from None
    if svc.clock() >= handover.expires_at:
        raise LinkExpired(f"This link expired on {handover.expires_at:%Y-%m-%d}.")
    return handover


def links(svc: Services, nomination_id: int, event_id: str) -> dict[str, str]:
    """The signed links of one handover, under SCN_BASE_URL."""
    base = f"{svc.settings.base_url}/handover/{make_token(svc, nomination_id, event_id)}"
    return {"dossier": f"{base}/dossier.pdf", "action_plan": f"{base}/action-plan.pdf",
            "acknowledge": f"{base}/acknowledge"}


def package_links(svc: Services, uow: UnitOfWork, nomination_id: int, event_id: str) -> dict:
    """What the JSON package carries: links to both PDFs (the action plan's is None when none is
    attached), and when they stop working. The webhook's 2xx is the acknowledgement, so no link for it."""
    made = links(svc, nomination_id, event_id)
    has_plan = uow.session.scalar(sa.select(sa.exists().where(
        t.attachments.c.nomination_id == nomination_id, t.attachments.c.kind == "action_plan")))
    expires = svc.clock() + timedelta(days=svc.settings.handover_link_days)
    return {"dossier": made["dossier"], "action_plan": made["action_plan"] if has_plan else None,
            "expires_at": expires.isoformat(timespec="seconds")}


def action_plan(svc: Services, nomination_id: int) -> tuple[str, bytes] | None:
    """The file name and content of the nomination's latest action plan, if one is attached."""
    plans = [a for a in attachments.listing(svc, [nomination_id])[nomination_id] if a["kind"] == "action_plan"]
    if not plans:
        return None
    path, record = attachments.open_file(svc, SYSTEM, nomination_id, plans[-1]["id"])
    with open(path, "rb") as stored:
        return record["filename"], stored.read()


@dataclass(frozen=True)
class Acknowledgement:
    agency: str
    via: str
    at: datetime


def acknowledgement(svc: Services, nomination_id: int) -> Acknowledgement | None:
    """The nomination's acknowledgement, if the lead agency gave it."""
    e = t.events.c
    with svc.uow(read_only=True) as uow:
        row = uow.session.execute(sa.select(e.occurred_at, e.payload).where(
            e.nomination_id == nomination_id, e.name == "handover.acknowledged").order_by(e.seq).limit(1)).first()
    if row is None:
        return None
    payload = row.payload or {}
    return Acknowledgement(payload.get("agency", ""), payload.get("via", ""), row.occurred_at)


def record(uow: UnitOfWork, nomination_id: int, event_id: str, via: str, now: datetime) -> bool:
    """Record `handover.acknowledged` on the nomination, by its lead agency, through `via`, in the
    caller's transaction; once per acceptance. False (recording nothing) when it was acknowledged before."""
    nomination = uow.session.get(Nomination, nomination_id)
    accepted = uow.session.scalar(sa.select(t.events.c.nomination_id).where(
        t.events.c.event_id == event_id, t.events.c.name == "nomination.accepted"))
    if nomination is None or accepted != nomination_id:
        raise LookupError(f"Nomination {nomination_id} has no acceptance {event_id}.")
    agency = uow.session.get(MemberState, nomination.member_state)
    name = (agency.lead_agency_name if agency else None) or "lead agency"
    # The effect's row is the once-only rule: a concurrent second acknowledgement waits for this
    # transaction on the row's key and then finds it there.
    if not record_effects(uow, [(event_id, EFFECT, f"{via}: {name}"[:1000])], now):
        return False
    nomination.note_handover_acknowledged(name, via, event_id, now)
    return True


def acknowledge(svc: Services, nomination_id: int, event_id: str, via: str) -> bool:
    """Record the lead agency's acknowledgement of the handover accepted by `event_id`, once; returns
    False (recording nothing) when it was acknowledged before."""
    with svc.uow() as uow:
        recorded = record(uow, nomination_id, event_id, via, svc.clock())
        if recorded:
            uow.commit()
    return recorded


def unacknowledged(svc: Services, limit: int = 200) -> list[dict]:
    """Nominations handed over more than SCN_ACK_AFTER_DAYS days ago that the lead agency has not
    acknowledged, oldest first."""
    now = svc.clock()
    e, n = t.events.c, t.nominations.c
    acknowledged = sa.exists().where(e.nomination_id == n.id, e.name == "handover.acknowledged")
    handed = sa.select(sa.func.max(e.occurred_at)).where(
        e.nomination_id == n.id, e.name == "nomination.handed_over").scalar_subquery()
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(
            sa.select(n.id, n.reference, n.city_name, n.member_state, handed.label("handed_over_at"))
            .where(n.state == "handed_over", ~acknowledged,
                   handed < now - timedelta(days=svc.settings.ack_after_days))
            .order_by(handed).limit(limit)).all()
    out = []
    for row in rows:
        at = row.handed_over_at if row.handed_over_at.tzinfo else row.handed_over_at.replace(tzinfo=timezone.utc)
        out.append({"id": row.id, "reference": row.reference, "city_name": row.city_name,
                    "member_state": row.member_state, "handed_over_at": at,
                    "waiting_days": int((now - at).total_seconds() // 86400)})
    return out


@dataclass(frozen=True)
class Summary:
    """What the lead agency's pages show of a handover."""
    reference: str
    city_name: str
    member_state: str
    agency: str | None
    language: str
    acknowledged: Acknowledgement | None


def summary(svc: Services, handover: Handover) -> Summary:
    """The handover a valid link names; LookupError when its nomination is gone."""
    with svc.uow(read_only=True) as uow:
        nomination = uow.session.get(Nomination, handover.nomination_id)
        if nomination is None:
            raise LookupError(f"No nomination {handover.nomination_id}.")
        state = uow.session.get(MemberState, nomination.member_state)
        facts = (nomination.reference, nomination.city_name, state.name if state else nomination.member_state,
                 state.lead_agency_name if state else None, (state.lead_agency_language if state else None) or "en")
    return Summary(*facts, acknowledgement(svc, handover.nomination_id))
