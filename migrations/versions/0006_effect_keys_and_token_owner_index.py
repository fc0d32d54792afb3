"""effect keys long enough for every address; api_tokens found by their owner

An effect names its address ("mail:" or "digest:" and an address of up to 254 characters), which
did not fit in 200. Deactivation and a password change revoke a person's tokens by user_id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.alter_column('effect', existing_type=sa.String(length=200), type_=sa.String(length=300),
                              existing_nullable=False)
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_api_tokens_user', ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_api_tokens_user')
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.alter_column('effect', existing_type=sa.String(length=300), type_=sa.String(length=200),
                              existing_nullable=False)
