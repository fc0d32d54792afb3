"""Concurrent changes on PostgreSQL: one writer wins, the others are refused cleanly."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from scn_workflow.db import tables as t
from scn_workflow.domain.errors import RuleViolation, StaleVersion
from scn_workflow.services import nominations
from tests.conftest import build_world, complete_draft, make_services

THREADS = 20


def _race(url, clock, tmp_path, count, action):
    """Run `action(svc, i)` in `count` threads, each with its own Services, started together.

    Returns one ("ok", value) or ("refused", exception) per thread; any other exception is
    returned as ("crashed", exception) so the test can name it.
    """
    services = [make_services(url, clock, tmp_path) for _ in range(count)]
    for s in services:  # open the connections first, so the race is about the change, not the pool
        with s.engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i):
        barrier.wait(timeout=30)
        try:
            results[i] = ("ok", action(services[i], i))
        except (StaleVersion, RuleViolation) as exc:
            results[i] = ("refused", exc)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[i] = ("crashed", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    for s in services:
        s.engine.dispose()
    assert not any(th.is_alive() for th in threads), "a thread hung"
    crashed = [r[1] for r in results if r[0] == "crashed"]
    assert not crashed, f"unexpected exceptions: {crashed!r}"
    return results


def _counts(svc, nomination_id, event_name):
    with svc.engine.connect() as c:
        events = c.scalar(sa.select(sa.func.count()).select_from(t.events).where(
            t.events.c.nomination_id == nomination_id, t.events.c.name == event_name))
        outbox = c.scalar(sa.select(sa.func.count()).select_from(t.outbox).where(
            t.outbox.c.nomination_id == nomination_id, t.outbox.c.event_name == event_name))
    return events, outbox


@pytest.fixture
def pg_svc(pg_url, clock, tmp_path):
    services = make_services(pg_url, clock, tmp_path)
    yield services
    services.engine.dispose()


@pytest.mark.parametrize("trigger, event_name", [("submit", "nomination.submitted"),
                                                 ("withdraw", "nomination.withdrawn")])
def test_same_trigger_on_the_same_version_succeeds_once(pg_url, pg_svc, clock, tmp_path, trigger, event_name):
    world = build_world(pg_svc)
    n = nominations.create(pg_svc, world.submitter_id, complete_draft())
    based_on = n.version

    results = _race(pg_url, clock, tmp_path, THREADS,
                    lambda s, i: nominations.fire(s, world.submitter_id, n.id, trigger, based_on))

    won = [r[1] for r in results if r[0] == "ok"]
    refused = [r[1] for r in results if r[0] == "refused"]
    assert len(won) == 1
    assert len(refused) == THREADS - 1
    assert all(type(exc) is StaleVersion for exc in refused), refused
    after = nominations.get(pg_svc, world.submitter_id, n.id)
    assert after.version == based_on + 1
    assert after.state == won[0].state == {"submit": "submitted", "withdraw": "withdrawn"}[trigger]
    assert _counts(pg_svc, n.id, event_name) == (1, 1)
    # The chain is intact: created + the one winning event, nothing half-written.
    assert [e["seq"] for e in nominations.events(pg_svc, world.submitter_id, n.id)] == [1, 2]


def test_concurrent_submissions_of_one_member_state_respect_its_limit(pg_url, pg_svc, clock, tmp_path):
    world = build_world(pg_svc)
    cities = ["Banyuwangi", "DKI Jakarta", "Makassar", "City D (placeholder)", "City E (placeholder)"]
    drafts = [nominations.create(pg_svc, world.submitter_id, complete_draft(city)) for city in cities]

    results = _race(pg_url, clock, tmp_path, len(drafts),
                    lambda s, i: nominations.fire(s, world.submitter_id, drafts[i].id, "submit", drafts[i].version))

    won = [r[1] for r in results if r[0] == "ok"]
    refused = [r[1] for r in results if r[0] == "refused"]
    assert len(won) == 3  # the limit of the cycle, and nothing blocks the first three
    assert len(refused) == 2
    for exc in refused:
        assert type(exc) is RuleViolation
        assert [v.rule for v in exc.violations] == ["within_state_limit"]
        assert "its limit is 3" in exc.detail
    with pg_svc.engine.connect() as c:
        states = c.execute(sa.select(t.nominations.c.state, sa.func.count())
                           .group_by(t.nominations.c.state)).all()
        submitted_events = c.scalar(sa.select(sa.func.count()).select_from(t.events)
                                    .where(t.events.c.name == "nomination.submitted"))
    assert dict(states) == {"submitted": 3, "drafted": 2}
    assert submitted_events == 3
