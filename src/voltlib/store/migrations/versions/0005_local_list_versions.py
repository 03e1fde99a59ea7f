"""local authorisation list versions (blocked badges reach charge points that were offline)

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('id_tags') as batch:
        batch.add_column(sa.Column('list_version', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('charge_points') as batch:
        batch.add_column(sa.Column('local_list_version', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('charge_points') as batch:
        batch.drop_column('local_list_version')
    with op.batch_alter_table('id_tags') as batch:
        batch.drop_column('list_version')
