"""The web relay waits longer for more commits while the workers are behind (workers/background.py)."""

from __future__ import annotations

import pytest

from scn_workflow.services import relay
from scn_workflow.workers import background
from scn_workflow.workers.background import BackgroundRelay


@pytest.mark.parametrize(("in_flight", "linger"), [
    (0, background.LINGER_S), (50, background.LINGER_S), (100, 2 * background.LINGER_S),
    (400, 8 * background.LINGER_S), (100_000, background.MAX_LINGER_S)])
def test_the_wait_grows_with_the_events_the_workers_have_still_to_finish(monkeypatch, in_flight, linger):
    monkeypatch.setattr(relay, "in_flight", lambda svc: in_flight)
    assert BackgroundRelay(svc=None, publisher=None)._linger() == pytest.approx(linger)


def test_without_the_database_the_wait_is_the_usual_one(monkeypatch):
    def unreachable(svc):
        raise ConnectionError("database away")
    monkeypatch.setattr(relay, "in_flight", unreachable)
    assert BackgroundRelay(svc=None, publisher=None)._linger() == background.LINGER_S


def test_the_count_is_read_at_most_once_a_second(monkeypatch):
    reads, clock = [], [100.0]
    monkeypatch.setattr(relay, "in_flight", lambda svc: reads.append(clock[0]) or 400)
    monkeypatch.setattr(background.time, "monotonic", lambda: clock[0])
    waiting = BackgroundRelay(svc=None, publisher=None)
    assert waiting._linger() == pytest.approx(8 * background.LINGER_S)
    clock[0] += background.IN_FLIGHT_READ_EVERY_S / 2
    assert waiting._linger() == pytest.approx(8 * background.LINGER_S)  # the count read before
    assert reads == [100.0]
    clock[0] += background.IN_FLIGHT_READ_EVERY_S
    waiting._linger()
    assert len(reads) == 2
