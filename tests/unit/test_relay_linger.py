"""The relay waits longer for more commits while the workers are behind (workers/background.py): while
messages wait in the broker (Redis), else by the events in flight in the outbox (RabbitMQ)."""

from __future__ import annotations

import time

import pytest

from scn_workflow.services import relay
from scn_workflow.workers import background
from scn_workflow.workers.background import BackgroundRelay


@pytest.mark.parametrize(("in_flight", "linger"), [
    (0, background.OUTBOX_LINGER_S), (50, background.OUTBOX_LINGER_S), (100, 2 * background.OUTBOX_LINGER_S),
    (400, 8 * background.OUTBOX_LINGER_S), (100_000, background.MAX_LINGER_S)])
def test_the_wait_grows_with_the_events_the_workers_have_still_to_finish(monkeypatch, in_flight, linger):
    monkeypatch.setattr(relay, "in_flight", lambda svc: in_flight)
    assert BackgroundRelay(svc=None, publisher=None)._linger() == pytest.approx(linger)


def test_without_the_database_the_wait_is_the_usual_one(monkeypatch):
    def unreachable(svc):
        raise ConnectionError("database away")
    monkeypatch.setattr(relay, "in_flight", unreachable)
    assert BackgroundRelay(svc=None, publisher=None)._linger() == background.OUTBOX_LINGER_S


def test_the_count_is_read_at_most_once_a_second(monkeypatch):
    reads, clock = [], [100.0]
    monkeypatch.setattr(relay, "in_flight", lambda svc: reads.append(clock[0]) or 400)
    monkeypatch.setattr(background.time, "monotonic", lambda: clock[0])
    waiting = BackgroundRelay(svc=None, publisher=None)
    assert waiting._linger() == pytest.approx(8 * background.OUTBOX_LINGER_S)
    clock[0] += background.IN_FLIGHT_READ_EVERY_S / 2
    assert waiting._linger() == pytest.approx(8 * background.OUTBOX_LINGER_S)  # the count read before
    assert reads == [100.0]
    clock[0] += background.IN_FLIGHT_READ_EVERY_S
    waiting._linger()
    assert len(reads) == 2


class Publisher:
    """A publisher whose broker reports `depth` messages waiting (or fails to answer)."""

    def __init__(self, depth):
        self.depth = depth

    def __call__(self, *args, **kwargs):
        raise AssertionError("relay.publish is replaced in these tests")

    def waiting(self, queues):
        assert tuple(queues) == background.HOLD_QUEUES == ("checks", "notifications")
        if isinstance(self.depth, Exception):
            raise self.depth
        return self.depth


@pytest.fixture
def published(monkeypatch):
    batches = []
    monkeypatch.setattr(relay, "publish", lambda svc, publisher, ids: batches.append((time.monotonic(), list(ids))))
    return batches


def test_a_batch_is_held_while_messages_wait_and_goes_out_once_they_are_taken(published):
    broker = Publisher(depth=3)
    waiting = BackgroundRelay(svc=None, publisher=broker)
    started = time.monotonic()
    waiting(["a"])
    time.sleep(0.05)
    waiting(["b"])  # well after LINGER_S: still gathered, because messages wait
    time.sleep(0.03)
    assert published == []
    broker.depth = 0
    assert waiting.flush(2)
    assert [ids for _, ids in published] == [["a", "b"]]
    assert published[0][0] - started >= 0.08


def test_the_hold_ends_after_max_linger_even_if_messages_still_wait(published):
    waiting = BackgroundRelay(svc=None, publisher=Publisher(depth=5))
    started = time.monotonic()
    waiting(["a"])
    assert waiting.flush(2)
    took = published[0][0] - started
    assert background.MAX_LINGER_S - background.HOLD_POLL_S <= took < background.MAX_LINGER_S + 0.2


@pytest.mark.parametrize("depth", [0, ConnectionError("broker away")])
def test_nothing_waiting_or_no_answer_means_no_hold(published, depth):
    waiting = BackgroundRelay(svc=None, publisher=Publisher(depth=depth))
    started = time.monotonic()
    waiting(["a"])
    assert waiting.flush(2)
    assert published[0][0] - started < background.LINGER_S + 0.1
    assert waiting._linger() == background.LINGER_S


def test_with_a_broker_that_can_say_the_outbox_is_not_read(monkeypatch):
    monkeypatch.setattr(relay, "in_flight", lambda svc: pytest.fail("no outbox query needed"))
    assert BackgroundRelay(svc=None, publisher=Publisher(depth=0))._linger() == background.LINGER_S
