"""Use cases: plain functions that own their transaction. Views, tasks and commands call them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from sqlalchemy.orm import sessionmaker

from scn_workflow.config import Settings
from scn_workflow.db.engine import make_engine, make_session_factory
from scn_workflow.db.uow import UnitOfWork
from scn_workflow.services.destinations import system_resolver


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _no_broker(queue: str, event_id: str) -> None:
    raise RuntimeError("no publisher is set: the app factory sets one (Celery, or the embedded worker)")


class Services:
    """What every use case needs: settings, a way to open a unit of work, a clock, and the hooks the
    app factory sets: `publish(queue, event_id)` sends a message to a worker; `after_commit` gets
    the events each commit wrote."""

    def __init__(self, settings: Settings, session_factory: sessionmaker | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.session_factory = session_factory or make_session_factory(make_engine(settings.database_url))
        self.clock = clock
        # host, port -> addresses: how webhook hosts are resolved (a test gives a stub that never asks DNS)
        self.resolve: Callable[[str, int], list[str]] = system_resolver
        self.publish: Callable[[str, str], None] = _no_broker
        # Called with the (event id, queues) of each commit; when it publishes them (a broker),
        # `publishes_after_commit` is set and the commit writes its outbox rows as published.
        self.after_commit: Callable[[list[tuple[str, list[str]]]], None] | None = None
        self.publishes_after_commit = False

    @property
    def engine(self):
        return self.session_factory.kw["bind"]

    def uow(self, read_only: bool = False) -> UnitOfWork:
        """A unit of work; `read_only` ones never write (on SQLite they take no write lock)."""
        return UnitOfWork(self.session_factory, on_commit=self.after_commit, read_only=read_only,
                          publishes=self.publishes_after_commit)
