"""Alembic environment: the URL comes from the caller (scn-workflow db upgrade) or SCN_DATABASE_URL."""

import os

from alembic import context

from scn_workflow.db.engine import make_engine
from scn_workflow.db.tables import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or os.environ.get("SCN_DATABASE_URL")
if not url:
    raise SystemExit("No database URL: set SCN_DATABASE_URL or run 'scn-workflow db upgrade'.")


def run_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
