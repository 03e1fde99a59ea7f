"""work_orders.badge of 36 characters: a technician's 2.0.1 id token

0018 widened the tables an operator stores tokens in to 2.0.1's 36 characters; a work order's
badge stayed at 1.6's 20, so a technician carrying a longer 2.0.1 token (often a UUID) could get no
work order, and badging in at a 2.0.1 station raised a badge-outside-work-order alert.

Down: narrowing fails on PostgreSQL while a longer badge is stored; cancel and delete those first.

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def _resize(width_from: int, width_to: int) -> None:
    with op.batch_alter_table('work_orders') as batch:  # SQLite: the table is rebuilt
        batch.alter_column('badge', existing_type=sa.String(length=width_from), type_=sa.String(length=width_to),
                           existing_nullable=False)


def upgrade() -> None:
    _resize(20, 36)


def downgrade() -> None:
    _resize(36, 20)
