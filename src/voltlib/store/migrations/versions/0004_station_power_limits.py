"""station grid limits and bay ratings (smart charging)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stations') as batch:
        batch.add_column(sa.Column('grid_limit_w', sa.Float(), nullable=True))
        batch.add_column(sa.Column('phase_limit_w', sa.Float(), nullable=True))
    with op.batch_alter_table('bays') as batch:
        batch.add_column(sa.Column('rated_power_w', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('bays') as batch:
        batch.drop_column('rated_power_w')
    with op.batch_alter_table('stations') as batch:
        batch.drop_column('phase_limit_w')
        batch.drop_column('grid_limit_w')
