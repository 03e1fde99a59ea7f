"""commands.node: the node that sends each command (issue 20 part 4)

A node killed while commands were under way left them ``queued`` for ever; at its start-up it now
marks its own as ``lost`` (docs/operations.md, "What recovers at start-up"), which on a cluster
needs to know whose they are. Rows from before have none (a single node takes them all).

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('commands') as batch:
        batch.add_column(sa.Column('node', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('commands') as batch:
        batch.drop_column('node')
