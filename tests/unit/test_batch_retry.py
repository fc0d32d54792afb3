"""A relay batch whose work fails (workers/tasks.py `_react_many`): the whole batch is retried as one
message while retries remain (the database was away, say), then each event goes on alone with the
usual retries; an event that fails inside a batch that otherwise worked goes on alone at once. Checks
that fail together are first run one at a time, so one bad submission holds back no other.
The services are replaced by fakes here; tests/integration/test_batches.py runs real ones."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from scn_workflow.workers import tasks

SETTINGS = SimpleNamespace(max_retries=3, retry_base_s=0.5, retry_cap_s=60.0)
EVENTS = ["e-1", "e-2", "e-3"]


class Retry(Exception):
    pass


class FakeTask:
    def __init__(self, retries: int):
        self.request = SimpleNamespace(retries=retries)
        self.retried, self.sent_alone = [], []

    def retry(self, exc, countdown, max_retries):
        self.retried.append((exc, countdown, max_retries))
        return Retry()

    def apply_async(self, args, queue, task_id, retries, countdown, headers):
        self.sent_alone.append((args, queue, task_id, retries))


def database_away(svc, event_ids):
    raise OperationalError("SELECT 1", {}, ConnectionError("database away"))


def test_a_batch_that_fails_as_a_whole_is_retried_as_one_while_retries_remain(monkeypatch):
    monkeypatch.setattr(tasks.notifications, "notify_many", database_away)
    task = FakeTask(retries=1)
    with pytest.raises(Retry):
        tasks._react_many(task, SimpleNamespace(settings=SETTINGS), "notifications", EVENTS)
    (exc, countdown, max_retries), = task.retried
    assert isinstance(exc, OperationalError) and max_retries == SETTINGS.max_retries
    assert 0 < countdown <= SETTINGS.retry_base_s * 2  # the backoff of the second attempt
    assert task.sent_alone == []  # the batch goes again as one message, nothing split off yet


def test_checks_that_fail_together_are_run_one_at_a_time_and_the_failures_go_on_alone(monkeypatch):
    ran_alone = []

    def one(svc, event_id):
        ran_alone.append(event_id)
        if event_id == "e-2":
            database_away(svc, [event_id])
        return "passed"

    monkeypatch.setattr(tasks.checks, "run_checks_many", database_away)
    monkeypatch.setitem(tasks.HANDLERS, "checks", one)
    task = FakeTask(retries=0)
    finished = tasks._react_many(task, SimpleNamespace(settings=SETTINGS), "checks", EVENTS)
    assert ran_alone == EVENTS and finished == 2 and task.retried == []
    assert task.sent_alone == [(["e-2"], "checks", "e-2:checks", 1)]


def test_when_the_batch_retries_are_spent_each_event_goes_on_alone(monkeypatch):
    monkeypatch.setattr(tasks.notifications, "notify_many", database_away)
    task = FakeTask(retries=SETTINGS.max_retries)
    finished = tasks._react_many(task, SimpleNamespace(settings=SETTINGS), "notifications", EVENTS)
    assert finished == 0 and task.retried == []
    assert task.sent_alone == [([e], "notifications", f"{e}:notifications", 1) for e in EVENTS]


def test_an_event_that_fails_inside_a_batch_goes_on_alone_and_the_rest_is_done(monkeypatch):
    refused = ConnectionRefusedError("the mail server refused e-2")
    monkeypatch.setattr(tasks.notifications, "notify_many", lambda svc, ids: (4, {"e-2": refused}))
    task = FakeTask(retries=0)
    finished = tasks._react_many(task, SimpleNamespace(settings=SETTINGS), "notifications", EVENTS)
    assert finished == 2 and task.retried == []
    assert task.sent_alone == [(["e-2"], "notifications", "e-2:notifications", 1)]
