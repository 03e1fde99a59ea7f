"""rebalancing field tasks (a car to drive from one station to another)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('field_tasks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('car_id', sa.String(length=32), nullable=False),
    sa.Column('from_station', sa.String(length=64), nullable=False),
    sa.Column('to_station', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('active_car', sa.String(length=32), nullable=True),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_field_tasks')),
    sa.UniqueConstraint('active_car', name=op.f('uq_field_tasks_active_car'))
    )
    with op.batch_alter_table('field_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_field_tasks_city_state', ['city', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('field_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_field_tasks_city_state')
    op.drop_table('field_tasks')
