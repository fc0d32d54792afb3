"""Engines and sessions, built from configuration when asked for (never at import time)."""

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from scn_workflow.db.mapping import start_mappers

CONNECT_TIMEOUT_S = 5


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # libpq waits forever for a server that accepts the connection but never answers; then so
    # would every request and /readyz. Fail instead, and say the database is not there.
    if "connect_timeout" not in make_url(url).query:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S, **kwargs.get("connect_args", {})}
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


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
