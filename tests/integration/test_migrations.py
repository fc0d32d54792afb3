"""Alembic migrations: empty -> head -> empty on both databases, and head matches the code's schema."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from scn_workflow.db import migrate
from scn_workflow.db import tables as t
from tests.conftest import PG_ADMIN_URL, need


@pytest.fixture
def empty_sqlite(tmp_path):
    return f"sqlite:///{tmp_path / 'empty.sqlite3'}"


@pytest.fixture
def empty_postgres():
    """A database of this test's own (not the session's), dropped afterwards."""
    name = f"scn_migrate_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        need("PostgreSQL", f"{PG_ADMIN_URL}: {exc.orig}")
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request):
    return request.getfixturevalue("empty_sqlite" if request.param == "sqlite" else "empty_postgres")


def _head(url: str) -> str:
    return ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()


def _inspect(url: str):
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            insp = sa.inspect(c)
            tables = set(insp.get_table_names())
            indexes = {name: {i["name"] for i in insp.get_indexes(name)} for name in tables}
            diff = compare_metadata(MigrationContext.configure(c), t.metadata)
        return tables, indexes, diff
    finally:
        engine.dispose()


def test_upgrade_to_head_then_downgrade_to_empty(empty_url):
    assert migrate.current(empty_url) is None

    migrate.upgrade(empty_url)
    assert migrate.current(empty_url) == _head(empty_url)
    tables, indexes, diff = _inspect(empty_url)
    assert tables == set(t.metadata.tables) | {"alembic_version"}
    assert {"ix_outbox_unpublished", "ix_outbox_incomplete"} <= indexes["outbox"]
    assert diff == [], f"the migrated schema differs from scn_workflow.db.tables: {diff}"

    migrate.downgrade(empty_url)
    assert migrate.current(empty_url) is None
    tables, _, _ = _inspect(empty_url)
    assert tables <= {"alembic_version"}


def test_upgrade_is_repeatable(empty_sqlite):
    """Running `db upgrade` on a database already at head changes nothing."""
    migrate.upgrade(empty_sqlite)
    migrate.upgrade(empty_sqlite)
    assert migrate.current(empty_sqlite) == _head(empty_sqlite)
