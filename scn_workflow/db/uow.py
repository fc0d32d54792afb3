"""The unit of work: one transaction that rolls back unless told to commit.

On commit it stores the events each touched nomination recorded: an append-only,
hash-chained event row and an outbox row each, in the same transaction as the change. The
outbox row names the queues that react to its event; when the process publishes right after
the commit (`publishes=True`), it is written as published, and a send that fails marks it
unpublished again (services/outbox.py).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from scn_workflow.db import tables as t
from scn_workflow.domain.audit import GENESIS, event_hash
from scn_workflow.domain.errors import StaleVersion
from scn_workflow.domain.model import Nomination
from scn_workflow.domain.workflow import queues_for
from scn_workflow.logs import correlation_id


def subscribed_events(session: Session) -> set[str]:
    """The event names some active webhook subscription wants."""
    wanted = set()
    for events in session.scalars(sa.select(t.webhooks.c.events).where(t.webhooks.c.active.is_(True))):
        wanted.update(events or [])
    return wanted


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker, on_commit=None, read_only: bool = False,
                 publishes: bool = False):
        self._factory = session_factory
        self._read_only = read_only
        # Called with (event id, queues) of each commit's events (Services.after_commit).
        self._on_commit = on_commit
        self._publishes = publishes
        self.session: Session | None = None
        self.committed: list[tuple[str, list[str]]] = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self._factory()
        self.committed = []
        if self._read_only:
            options = {"scn_read_only": True}  # on SQLite, a plain BEGIN: readers do not queue behind writers
            if self.dialect == "postgresql":
                # No transaction at all: under READ COMMITTED each statement takes its own snapshot
                # anyway, so this reads the same, without the BEGIN and ROLLBACK round trips.
                options["isolation_level"] = "AUTOCOMMIT"
            self.session.connection(execution_options=options)
        return self

    def __exit__(self, *exc) -> None:
        # close() rolls back what was not committed and detaches the objects without
        # expiring them, so callers can still read what a use case returns.
        self.session.close()

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def commit(self) -> None:
        try:
            pending, seen = [], set()
            for obj in (*self.session.new, *self.session.identity_map.values(),
                        *self.session.info.get("scn_nominations", ())):
                if isinstance(obj, Nomination) and obj.events and id(obj) not in seen:
                    seen.add(id(obj))
                    pending.append(obj)
            if any(n.id is None for n in pending):
                self.session.flush()  # new nominations need their id for the chain
            event_rows, outbox_rows = [], []
            with self.session.no_autoflush:  # the chain's columns go in the same UPDATE as the change
                subscribed = subscribed_events(self.session) if pending else set()
            for nomination in pending:
                self._chain_events(nomination, event_rows, outbox_rows, subscribed)
            # One UPDATE per nomination, first: its version check takes the row lock before the events
            # are inserted. (A second UPDATE of a row this transaction changed would make PostgreSQL
            # check its foreign keys again, locking the member state's row: a deadlock with a submission
            # that holds that lock and waits for this row.)
            self.session.flush()
            if event_rows:
                self.session.execute(sa.insert(t.events), event_rows)
                self.session.execute(sa.insert(t.outbox), outbox_rows)
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            self.committed = []
            raise StaleVersion("The nomination was changed by someone else meanwhile; "
                               "reload it and try again.") from None
        except IntegrityError as exc:
            self.session.rollback()
            self.committed = []
            if "uq_events_nomination_seq" in str(exc.orig) or "events.nomination_id, events.seq" in str(exc.orig):
                raise StaleVersion("The nomination was changed by someone else meanwhile; "
                                   "reload it and try again.") from None
            raise
        committed, self.committed = self.committed, []
        if committed and self._on_commit:
            self._on_commit(committed)

    def _chain_events(self, nomination: Nomination, event_rows: list, outbox_rows: list, subscribed: set) -> None:
        cid = correlation_id.get()
        prev = nomination.last_event_hash or GENESIS
        seq = nomination.event_count
        for ev in nomination.events:
            seq += 1
            event_id = str(uuid.uuid4())
            digest = event_hash(prev, nomination_id=nomination.id, seq=seq, event_id=event_id,
                                name=ev.name, actor=ev.actor, occurred_at=ev.occurred_at,
                                from_state=ev.from_state, to_state=ev.to_state,
                                comment=ev.comment, payload=ev.payload)
            event_rows.append({"event_id": event_id, "nomination_id": nomination.id, "seq": seq,
                               "name": ev.name, "actor": ev.actor, "occurred_at": ev.occurred_at,
                               "from_state": ev.from_state, "to_state": ev.to_state,
                               "comment": ev.comment, "payload": ev.payload,
                               "prev_hash": prev, "hash": digest, "correlation_id": cid})
            queues = queues_for(ev.name, ev.name in subscribed)
            handed_over = self._publishes and bool(queues)
            outbox_rows.append({"id": event_id, "event_name": ev.name, "nomination_id": nomination.id,
                                "created_at": ev.occurred_at, "queues": queues, "correlation_id": cid,
                                "published_at": ev.occurred_at if handed_over or not queues else None,
                                "publish_count": 1 if handed_over else 0,
                                "completed_at": None if queues else ev.occurred_at})  # nothing reacts: complete
            if queues:
                self.committed.append((event_id, queues))
            prev = digest
        nomination.last_event_hash = prev
        nomination.event_count = seq
        nomination.events.clear()
