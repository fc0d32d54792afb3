"""list and search indexes: newest change first, per member state, reviewers' view; trigrams for q

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# SQLite has no trigram index: there these two are empty (WHERE 0), which costs nothing and keeps
# one schema (scn_workflow.db.tables) for both databases.
TRIGRAM_INDEXES = {'ix_nominations_city_trgm': 'city_name', 'ix_nominations_region_trgm': 'region'}


def upgrade() -> None:
    if op.get_context().dialect.name == 'postgresql':
        # A trusted extension since PostgreSQL 13: CREATE on the database is enough, no superuser.
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    with op.batch_alter_table('nominations', schema=None) as batch_op:
        # Ascending, scanned backwards for newest first: one index serves both orders of a list.
        batch_op.create_index('ix_nominations_updated', ['updated_at', 'id'], unique=False)
        batch_op.create_index('ix_nominations_ms_updated', ['member_state', 'updated_at', 'id'], unique=False)
        batch_op.create_index('ix_nominations_submitted_updated', ['updated_at', 'id'], unique=False,
                              postgresql_where=sa.text('submitted_at IS NOT NULL'),
                              sqlite_where=sa.text('submitted_at IS NOT NULL'))
        for name, column in TRIGRAM_INDEXES.items():
            batch_op.create_index(name, [column], unique=False, postgresql_using='gin',
                                  postgresql_ops={column: 'gin_trgm_ops'}, postgresql_with={'fastupdate': 'off'},
                                  sqlite_where=sa.false())


def downgrade() -> None:
    # pg_trgm stays: it may have been there before, and other objects may use it.
    with op.batch_alter_table('nominations', schema=None) as batch_op:
        for name in reversed(TRIGRAM_INDEXES):
            batch_op.drop_index(name)
        batch_op.drop_index('ix_nominations_submitted_updated', postgresql_where=sa.text('submitted_at IS NOT NULL'),
                            sqlite_where=sa.text('submitted_at IS NOT NULL'))
        batch_op.drop_index('ix_nominations_ms_updated')
        batch_op.drop_index('ix_nominations_updated')
