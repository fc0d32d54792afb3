"""Engines and sessions, built from configuration when asked for (never at import time)."""

import time

from sqlalchemy import create_engine, event, exc, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from scn_workflow.db.mapping import start_mappers

CONNECT_TIMEOUT_S = 5
# A pooled connection idle for longer than this is pinged before use (see _ping_when_idle).
PING_AFTER_IDLE_S = 2.0


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # libpq waits forever for a server that accepts the connection but never answers; then so
    # would every request and /readyz. Fail instead, and say the database is not there.
    if "connect_timeout" not in make_url(url).query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
    kwargs.setdefault("pool_size", 10)
    engine = create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE_S)
    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Pessimistic disconnect handling without pool_pre_ping's round trip on every checkout.

    A connection that came back to the pool less than `idle_s` ago was just used successfully, so
    only connections idle for longer (where a database restart or an idle-connection reaper could
    have closed them) are pinged when checked out; a dead one is replaced, as pool_pre_ping does.
    Under load a request checks out several connections within milliseconds: none of them is pinged.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record) -> None:
        record.info["scn_checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy) -> None:
        last = record.info.get("scn_checked_in_at")  # none yet: a connection made just now
        if last is None or time.monotonic() - last <= idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure: the pool discards it and connects anew
            raise exc.DisconnectionError(f"stale pooled connection: {error}") from error


def _sqlite_connect(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the driver, open transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN: two writers queue instead of one failing
    # with "database is locked" when it upgrades a read transaction. Readers (WAL) need no lock.
    if connection.get_execution_options().get("scn_read_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker:
    start_mappers()
    return sessionmaker(bind=engine, expire_on_commit=False)
