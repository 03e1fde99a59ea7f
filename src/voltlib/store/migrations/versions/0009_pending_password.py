"""charge_points.pending_password_hash/_until: a password rotation whose answer never came

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('charge_points', sa.Column('pending_password_hash', sa.String(200), nullable=True))
    op.add_column('charge_points', sa.Column('pending_password_until', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('charge_points') as batch:
        batch.drop_column('pending_password_until')
        batch.drop_column('pending_password_hash')
