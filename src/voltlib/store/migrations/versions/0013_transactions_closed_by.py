"""transactions.closed_by, and an index on (started_at, id): operator closes and paged listings

An operator may close an abandoned open transaction (POST /api/v1/transactions/{id}/close): who did
is kept on the row, beside the stop reason the charge point sent (none, then). Listing every
transaction newest first, a page at a time, walks the new index instead of sorting the table.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('transactions', sa.Column('closed_by', sa.String(length=64), nullable=True))
    op.create_index('ix_transactions_started', 'transactions', ['started_at', 'id'])


def downgrade() -> None:
    op.drop_index('ix_transactions_started', table_name='transactions')
    with op.batch_alter_table('transactions') as batch:
        batch.drop_column('closed_by')
