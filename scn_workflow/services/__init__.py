"""Use cases: plain functions that own their transaction. Views, tasks and commands call them."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from sqlalchemy.orm import sessionmaker

from scn_workflow.config import Settings
from scn_workflow.db.engine import make_engine, make_session_factory
from scn_workflow.db.uow import UnitOfWork


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Services:
    """What every use case needs: settings, a way to open a unit of work, a clock and the relay hook."""

    def __init__(self, settings: Settings, session_factory: sessionmaker | None = None,
                 clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.session_factory = session_factory or make_session_factory(make_engine(settings.database_url))
        self.clock = clock
        self.after_commit: Callable[[list[str]], None] | None = None  # set by the outbox relay

    @property
    def engine(self):
        return self.session_factory.kw["bind"]

    def uow(self, read_only: bool = False) -> UnitOfWork:
        """A unit of work; `read_only` ones never write (on SQLite they take no write lock)."""
        return UnitOfWork(self.session_factory, on_commit=self.after_commit, read_only=read_only)
