"""The unit of work: one transaction that rolls back unless told to commit.

On commit it stores the events each touched nomination recorded: an append-only,
hash-chained event row and an outbox row each, in the same transaction as the change.
"""

from __future__ import annotations

import functools
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from scn_workflow.db import tables as t
from scn_workflow.domain.audit import GENESIS, event_hash
from scn_workflow.domain.errors import StaleVersion
from scn_workflow.domain.model import Nomination
from scn_workflow.logs import correlation_id


EVENT_KEYS = ("event_id", "nomination_id", "seq", "name", "actor", "occurred_at", "from_state", "to_state",
              "comment", "payload", "prev_hash", "hash", "correlation_id")
OUTBOX_KEYS = ("id", "event_name", "nomination_id", "created_at", "publish_count", "correlation_id")
_EVENT_KEYSET = frozenset(EVENT_KEYS)  # a row with other keys takes the general path, never loses a value


def _values(table: sa.Table, keys: tuple[str, ...], prefix: str) -> dict:
    return {k: sa.bindparam(prefix + k, type_=table.c[k].type) for k in keys}


# One event and its outbox row in one statement: the event goes in through a data-modifying WITH,
# which PostgreSQL always runs to completion. Built once, with bound parameters: building a
# statement per commit costs more CPU than running its cached compiled form.
_NEW_EVENT = sa.insert(t.events).values(_values(t.events, EVENT_KEYS, "e_")).cte("new_event")
_NEW_OUTBOX = sa.insert(t.outbox).values(_values(t.outbox, OUTBOX_KEYS, "o_")).cte("new_outbox")
_ONE_EVENT = sa.insert(t.outbox).values(_values(t.outbox, OUTBOX_KEYS, "o_")).add_cte(_NEW_EVENT)


@functools.lru_cache(maxsize=64)
def _change_with_event(columns: tuple[str, ...]) -> sa.Select:
    """A nomination's changed columns, its event and its outbox row, in one statement (one per set
    of changed columns, built once). It counts the rows the UPDATE changed: 0 when the version is
    no longer the one loaded, which rolls the whole transaction back, inserts included."""
    n = t.nominations.c
    changed = (sa.update(t.nominations).where(n.id == sa.bindparam("n_id"), n.version == sa.bindparam("n_loaded_version"))
               .values(_values(t.nominations, columns, "n_")).returning(n.id).cte("changed"))
    return sa.select(sa.func.count()).select_from(changed).add_cte(_NEW_EVENT).add_cte(_NEW_OUTBOX)


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker, on_commit=None, read_only: bool = False):
        self._factory = session_factory
        self._read_only = read_only
        self._on_commit = on_commit  # called with the committed outbox ids (the relay)
        self.session: Session | None = None
        self.outbox_ids: list[str] = []

    def __enter__(self) -> "UnitOfWork":
        self.session = self._factory()
        self.outbox_ids = []
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
            for nomination in pending:
                self._chain_events(nomination, event_rows, outbox_rows)
            if event_rows:
                # Session.execute autoflushes first: the nomination's UPDATE (with its
                # version check) takes the row lock before the events are inserted.
                if len(event_rows) == 1 and self.dialect == "postgresql" and event_rows[0].keys() == _EVENT_KEYSET:
                    # The usual case, one event: one statement and one round trip.
                    params = {f"e_{k}": v for k, v in event_rows[0].items()}
                    params.update((f"o_{k}", v) for k, v in outbox_rows[0].items())
                    if not self._write_change_with_event(pending[0], params):
                        self.session.execute(_ONE_EVENT, params)
                else:
                    self.session.execute(sa.insert(t.events), event_rows)
                    self.session.execute(sa.insert(t.outbox), outbox_rows)
            self.session.flush()
            self.session.commit()
        except StaleDataError:
            self.session.rollback()
            self.outbox_ids = []
            raise StaleVersion("The nomination was changed by someone else meanwhile; "
                               "reload it and try again.") from None
        except IntegrityError as exc:
            self.session.rollback()
            self.outbox_ids = []
            if "uq_events_nomination_seq" in str(exc.orig) or "events.nomination_id, events.seq" in str(exc.orig):
                raise StaleVersion("The nomination was changed by someone else meanwhile; "
                                   "reload it and try again.") from None
            raise
        committed, self.outbox_ids = self.outbox_ids, []
        if committed and self._on_commit:
            self._on_commit(committed)

    def _write_change_with_event(self, nomination: Nomination, params: dict) -> bool:
        """Write a loaded nomination's change (with the ORM's version check) and its event and outbox
        row in one statement, instead of an ORM flush and a second statement. False when this does
        not apply (a new nomination, or a change the ORM must write), and nothing was written."""
        state = sa.inspect(nomination)
        changed = state.committed_state  # attribute -> value as loaded, for each attribute set since
        if state.key is None or state.pending or "version" not in changed \
                or any(other is not nomination for other in self.session.dirty):
            return False
        columns = tuple(sorted(changed))
        if not all(c in t.nominations.c for c in columns):
            return False
        params["n_id"], params["n_loaded_version"] = nomination.id, changed["version"]
        params.update((f"n_{c}", getattr(nomination, c)) for c in columns)
        with self.session.no_autoflush:
            if self.session.scalar(_change_with_event(columns), params) != 1:
                raise StaleDataError("the nomination's version changed since it was loaded")
        # Now written: mark the object clean, as the ORM does after its own flush (a private method;
        # pyproject pins SQLAlchemy to 2.1, and tests/integration/test_uow_commit.py checks it).
        # set_committed_value would leave it "modified", and every later flush would examine it.
        state._commit_all(state.dict, self.session.identity_map)
        return True

    def _chain_events(self, nomination: Nomination, event_rows: list, outbox_rows: list) -> None:
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
            outbox_rows.append({"id": event_id, "event_name": ev.name, "nomination_id": nomination.id,
                                "created_at": ev.occurred_at, "publish_count": 0, "correlation_id": cid})
            self.outbox_ids.append(event_id)
            prev = digest
        nomination.last_event_hash = prev
        nomination.event_count = seq
        nomination.events.clear()
