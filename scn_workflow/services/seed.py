"""Reference and demo data: member states, lead agencies, cycles, demo users and nominations.

Only facts from reference/ascn.json are used. Where the reference is silent (cycle dates,
contacts, a city's vision or projects), the seed says so in the data itself: the values are
placeholders on the reserved `.example` domain or marked "placeholder". Seeded nominations
are driven through the real workflow, so they carry the events that brought them to their
state; their outbox rows are marked done, since they are history, not news.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.model import SYSTEM, Actor, Cycle, LimitOverride, MemberState, Role, User
from scn_workflow.domain.reference import ascn, focus_areas
from scn_workflow.services import Services, acknowledgements, checks, nominations, users

DEMO_PASSWORD = "demo-password"
REVIEWERS = (("reviewer-sg", "SG"), ("reviewer-ph", "PH"), ("reviewer", None))

# Where each city of the 2024 expansion stands in the demo: one in every live state.
DEMO_2024_STATES = {"Sumedang": "handed_over", "Chiang Mai": "accepted", "Khon Kaen": "reviewed",
                    "Rayong": "submitted", "Sihanoukville": "drafted"}


def _utc(year: int, month: int = 1, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=timezone.utc)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def seed(svc: Services, *, demo_users: bool = True) -> dict:
    """Load what is missing; running it again changes nothing. Returns counts of what was added."""
    added = {"member_states": 0, "cycles": 0, "users": 0, "nominations": 0}
    ref = ascn()
    with svc.uow() as uow:
        s = uow.session
        for entry in ref["member_states"]:
            if s.get(MemberState, entry["code"]) is None:
                agency = entry.get("lead_agency")
                s.add(MemberState(code=entry["code"], name=entry["name"], lead_agency_name=agency,
                                  # placeholder contact: the reference names the agency, not its address
                                  lead_agency_email=f"lead-agency@{entry['code'].lower()}.example" if agency else None))
                added["member_states"] += 1
        now = svc.clock()
        wanted = [(c["code"], c["name"] + " (dates are placeholders)", _utc(int(c["code"][-4:])),
                   _utc(int(c["code"][-4:]) + 1)) for c in ref["cycles"]]
        wanted.append((f"ASCN-{now.year}", f"{now.year} call (demo cycle, open all year)",
                       _utc(now.year), _utc(now.year + 1)))
        for code, name, opens, closes in wanted:
            if s.get(Cycle, code) is None:
                s.add(Cycle(code=code, name=name, opens_at=opens, closes_at=closes, limit_per_state=3))
                added["cycles"] += 1
        uow.commit()
    if demo_users:
        added["users"] = _demo_users(svc)
        added["nominations"] = _demo_nominations(svc)
    return added


def _demo_users(svc: Services) -> int:
    wanted = [("admin", Role.ADMIN, None), ("operator", Role.OPERATOR, None)]
    wanted += [(name, Role.REVIEWER, ms) for name, ms in REVIEWERS]
    wanted += [(f"submitter-{m['code'].lower()}", Role.SUBMITTER, m["code"]) for m in ascn()["member_states"]]
    with svc.uow(read_only=True) as uow:
        existing = set(uow.session.scalars(sa.select(User.username)))
    state_names = {m["code"]: m["name"] for m in ascn()["member_states"]}
    count = 0
    for username, role, ms in wanted:
        if username not in existing:
            # Demo accounts, named for what they are (no real person's name); each reads the language
            # its browser asks for (mails in English) until it chooses one on its account page.
            name = f"Demo {role.value} ({state_names[ms]})" if ms else f"Demo {role.value}"
            users.create_user(svc, username=username, password=DEMO_PASSWORD, email=f"{username}@scn-demo.example",
                              role=role.value, member_state=ms, name=name)
            count += 1
    return count


def _demo_nominations(svc: Services) -> int:
    with svc.uow(read_only=True) as uow:
        rows = uow.session.execute(sa.select(t.nominations.c.cycle, t.nominations.c.city_name))
        seeded = {tuple(row) for row in rows}  # Result.tuples() is deprecated in SQLAlchemy 2.1
    count = 0
    for cycle in ascn()["cycles"]:
        year = int(cycle["code"][-4:])
        for ms, cities in cycle["cities"].items():
            if len(cities) > 3:
                _override(svc, cycle["code"], ms, len(cities), _utc(year))
            for city in cities:
                if (cycle["code"], city) in seeded:
                    continue
                target = DEMO_2024_STATES.get(city, "handed_over")
                _walk(svc, cycle["code"], ms, city, target, _utc(year, 2, 1))
                count += 1
    return count


def _override(svc: Services, cycle: str, ms: str, limit: int, when: datetime) -> None:
    with svc.uow() as uow:
        if uow.session.get(LimitOverride, (cycle, ms)) is None:
            uow.session.add(LimitOverride(cycle_code=cycle, member_state=ms, limit=limit, set_by="admin", set_at=when,
                                          reason=f"The {cycle} cohort had {limit} cities from this member state "
                                                 "(reference: the 2018 pilot broke the three-city rule)."))
            uow.commit()


def _walk(svc: Services, cycle: str, ms: str, city: str, target: str, start: datetime) -> None:
    """Drive one demo nomination through the real workflow up to `target`."""
    ticks = itertools.count()
    timed = Services(svc.settings, svc.session_factory, clock=lambda: start + timedelta(hours=next(ticks)))
    areas = list(focus_areas())
    first = sum(map(ord, city)) % len(areas)
    claimed = [areas[first], areas[(first + 1) % len(areas)]]
    submitter = Actor(f"submitter-{ms.lower()}", Role.SUBMITTER, ms)
    n = nominations.create(timed, submitter, {
        "cycle": cycle, "city_name": city, "csco_name": f"Chief Smart City Officer of {city} (placeholder)",
        "csco_email": f"csco@{_slug(city)}.example",
        "vision": f"Placeholder vision statement for {city}: the reference data gives none.",
        "focus_areas": claimed,
        "projects": [{"title": f"{focus_areas()[a]} project (placeholder)", "focus_area": a,
                      "description": "Placeholder: the reference data does not list this city's projects.",
                      "priority": i == 0} for i, a in enumerate(claimed)]})
    order = ["drafted", "submitted", "reviewed", "accepted", "handed_over"]
    if order.index(target) >= 1:
        n = nominations.fire(timed, submitter, n.id, "submit", n.version)
        submitted = _last_event_id(svc, n.id, "nomination.submitted")
        checks.run_checks(timed, submitted)
    reviewer, second = [Actor(u, Role.REVIEWER, m) for u, m in REVIEWERS if m != ms][:2]
    if order.index(target) >= 2:
        n = nominations.get(timed, reviewer, n.id)
        n = nominations.fire(timed, reviewer, n.id, "review", n.version, comment="Demo review.", assessment={
            "scores": {a: 4 for a in n.focus_areas}, "recommendation": "accept",
            "summary": "Demo assessment (placeholder)."})
    if order.index(target) >= 3:
        n = nominations.fire(timed, second, n.id, "accept", n.version)
    if order.index(target) >= 4:
        accepted = _last_event_id(svc, n.id, "nomination.accepted")
        with svc.uow() as uow:
            agency = uow.session.get(MemberState, ms)
            has_agency = agency.has_lead_agency
            if has_agency:
                uow.session.execute(sa.insert(t.deliveries).values(
                    nomination_id=n.id, event_id=accepted, channel="email",
                    target=agency.lead_agency_email, status="accepted", attempts=1, created_at=timed.clock(),
                    detail="seed: demo history, no mail was sent"))
                uow.commit()
        if has_agency:
            nominations.fire(timed, SYSTEM, n.id, "hand_over", None)
            # The lead agency confirmed receipt, as it does through the link in the handover mail.
            acknowledgements.acknowledge(timed, n.id, accepted, acknowledgements.VIA_LINK)
    with svc.uow() as uow:
        stamp = svc.clock()
        uow.session.execute(sa.update(t.outbox).where(t.outbox.c.nomination_id == n.id, t.outbox.c.published_at.is_(None))
                            .values(published_at=stamp, completed_at=stamp, last_error="seed: history, no reactions"))
        uow.commit()


def _last_event_id(svc: Services, nomination_id: int, name: str) -> str:
    with svc.uow(read_only=True) as uow:
        return uow.session.scalar(sa.select(t.events.c.event_id).where(
            t.events.c.nomination_id == nomination_id, t.events.c.name == name).order_by(t.events.c.seq.desc()).limit(1))
