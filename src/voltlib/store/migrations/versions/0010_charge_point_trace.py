"""charge_points.trace_until: every frame of one charge point logged in full until then

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('charge_points', sa.Column('trace_until', voltlib.store.tables.UtcDateTime(timezone=True),
                                             nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('charge_points') as batch:
        batch.drop_column('trace_until')
