"""The seed: reference data and demo history, idempotent, driven through the real workflow."""

from __future__ import annotations

from collections import defaultdict

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.reference import ascn
from scn_workflow.services import audit, users, utcnow
from scn_workflow.services.seed import DEMO_PASSWORD, seed
from tests.conftest import make_services

FULL_HISTORY = ["nomination.created", "nomination.submitted", "checks.completed", "nomination.reviewed",
                "nomination.accepted", "nomination.handed_over", "handover.acknowledged"]


@pytest.fixture
def real_svc(db_url, tmp_path):
    """Services on the real clock: the seed opens a demo cycle for the current year."""
    services = make_services(db_url, utcnow, tmp_path)
    yield services
    services.engine.dispose()


SEEDED_TABLES = (t.member_states, t.cycles, t.limit_overrides, t.users, t.nominations, t.events, t.outbox,
                 t.checks, t.effects, t.deliveries)


def _table_counts(svc) -> dict:
    with svc.engine.connect() as c:
        return {table.name: c.scalar(sa.select(sa.func.count()).select_from(table)) for table in SEEDED_TABLES}


def _histories(svc) -> dict:
    """(cycle, city) -> (member state, state, [(event name, from, to), ...])."""
    with svc.engine.connect() as c:
        noms = c.execute(sa.select(t.nominations.c.id, t.nominations.c.cycle, t.nominations.c.city_name,
                                   t.nominations.c.member_state, t.nominations.c.state)).all()
        events = defaultdict(list)
        for e in c.execute(sa.select(t.events.c.nomination_id, t.events.c.name, t.events.c.from_state,
                                     t.events.c.to_state).order_by(t.events.c.nomination_id, t.events.c.seq)):
            events[e.nomination_id].append((e.name, e.from_state, e.to_state))
    return {(n.cycle, n.city_name): (n.member_state, n.state, events[n.id]) for n in noms}


def test_seed_loads_the_reference_once(real_svc):
    ref = ascn()
    cities = {(cycle["code"], ms, city) for cycle in ref["cycles"]
              for ms, names in cycle["cities"].items() for city in names}

    first = seed(real_svc)
    assert first == {"member_states": len(ref["member_states"]), "cycles": len(ref["cycles"]) + 1,
                     "users": 5 + len(ref["member_states"]), "nominations": len(cities)}
    counts = _table_counts(real_svc)

    second = seed(real_svc)
    assert second == {"member_states": 0, "cycles": 0, "users": 0, "nominations": 0}
    assert _table_counts(real_svc) == counts

    with real_svc.engine.connect() as c:
        states = c.execute(sa.select(t.member_states.c.code, t.member_states.c.name)).all()
        seeded = {tuple(row) for row in c.execute(sa.select(
            t.nominations.c.cycle, t.nominations.c.member_state, t.nominations.c.city_name))}
        cycle_codes = set(c.scalars(sa.select(t.cycles.c.code)))
        demo_cycle = c.execute(sa.select(t.cycles).where(t.cycles.c.code == f"ASCN-{utcnow().year}")).one()
    assert sorted(states) == sorted((m["code"], m["name"]) for m in ref["member_states"])
    assert seeded == cities
    assert cycle_codes == {c["code"] for c in ref["cycles"]} | {f"ASCN-{utcnow().year}"}
    assert demo_cycle.opens_at <= utcnow() < demo_cycle.closes_at
    # A seeded demo user can log in, as what the seed says it is.
    actor = users.authenticate(real_svc, "submitter-my", DEMO_PASSWORD)
    assert (actor.role.value, actor.member_state) == ("submitter", "MY")


def test_malaysia_2018_cohort_has_its_recorded_override(real_svc):
    seed(real_svc)
    with real_svc.engine.connect() as c:
        override = c.execute(sa.select(t.limit_overrides)).all()
        malaysia = c.execute(sa.select(t.nominations.c.city_name, t.nominations.c.state).where(
            t.nominations.c.cycle == "ASCN-2018", t.nominations.c.member_state == "MY")).all()
    assert len(override) == 1  # the only member state over the three-city rule
    assert (override[0].cycle_code, override[0].member_state, override[0].limit) == ("ASCN-2018", "MY", 4)
    assert override[0].reason.strip() and override[0].set_by
    assert sorted(city for city, _ in malaysia) == ["Johor Bahru", "Kota Kinabalu", "Kuala Lumpur", "Kuching"]
    # All four are live (they count against the limit): the override is what let the 4th through.
    assert {state for _, state in malaysia} <= {"accepted", "handed_over"}


def test_seeded_nominations_carry_the_events_that_brought_them_there(real_svc):
    seed(real_svc)
    histories = _histories(real_svc)
    lead_agencies = {m["code"] for m in ascn()["member_states"] if m.get("lead_agency")}

    for (cycle, city), (ms, state, events) in histories.items():
        assert events[0] == ("nomination.created", None, "drafted"), city
        for (_, _, before), (name, after_from, _) in zip(events, events[1:]):
            assert after_from == before, f"{city}: {name} does not start where the last event ended"
        assert events[-1][2] == state, f"{city} is {state} but its trail ends in {events[-1][2]}"
        if cycle == "ASCN-2018":
            # Only a member state with a lead agency can have its cities handed over.
            expected = FULL_HISTORY if ms in lead_agencies else FULL_HISTORY[:5]
            assert [e[0] for e in events] == expected, city

    names = {city: [e[0] for e in events] for (_, city), (_, _, events) in histories.items()}
    assert histories[("ASCN-2018", "Banyuwangi")][1] == "handed_over"
    assert names["Sumedang"] == FULL_HISTORY
    assert names["Chiang Mai"] == FULL_HISTORY[:5]
    assert names["Khon Kaen"] == FULL_HISTORY[:4]
    assert names["Rayong"] == FULL_HISTORY[:3]
    assert names["Sihanoukville"] == FULL_HISTORY[:1]

    assert audit.verify(real_svc) == (len(histories), [])
    with real_svc.engine.connect() as c:
        pending = c.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(
            sa.or_(t.outbox.c.published_at.is_(None), t.outbox.c.completed_at.is_(None))))
        outbox = c.scalar(sa.select(sa.func.count()).select_from(t.outbox))
        events = c.scalar(sa.select(sa.func.count()).select_from(t.events))
    assert outbox == events  # one outbox row per event, none of them news to the workers
    assert pending == 0
