"""ev_charging_needs, ev_charging_schedules (issue 17, K15-K17)

What ISO 15118 cars tell their OCPP 2.0.1 stations: the energy they need, when they leave and what
they can take (NotifyEVChargingNeeds), and the schedule they chose (NotifyEVChargingSchedule), each
with the time voltlib received it and the answer it got.

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, voltlib.store.tables.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table('ev_charging_needs',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.Column('energy_transfer', sa.String(length=16), nullable=False),
    sa.Column('energy_wh', sa.BigInteger(), nullable=True),
    _ts('departure_claimed', True), _ts('departure_at', True),
    sa.Column('max_current_a', sa.Integer(), nullable=True),
    sa.Column('min_current_a', sa.Integer(), nullable=True),
    sa.Column('max_voltage_v', sa.Integer(), nullable=True),
    sa.Column('max_power_w', sa.Float(), nullable=True),
    sa.Column('soc_percent', sa.Integer(), nullable=True),
    sa.Column('capacity_wh', sa.BigInteger(), nullable=True),
    sa.Column('full_soc', sa.Integer(), nullable=True),
    sa.Column('bulk_soc', sa.Integer(), nullable=True),
    sa.Column('soc_at_receipt', sa.Float(), nullable=True),
    sa.Column('max_schedule_tuples', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=True),
    _ts('received_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ev_charging_needs'))
    )
    op.create_index('ix_ev_charging_needs_tx', 'ev_charging_needs', ['transaction_id', 'id'], unique=False)
    op.create_index('ix_ev_charging_needs_cp', 'ev_charging_needs', ['charge_point_id', 'evse_id', 'id'],
                    unique=False)
    op.create_table('ev_charging_schedules',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    _ts('time_base'),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('max_w', sa.Float(), nullable=True),
    sa.Column('limit_w', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=True),
    _ts('received_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ev_charging_schedules'))
    )
    op.create_index('ix_ev_charging_schedules_cp', 'ev_charging_schedules', ['charge_point_id', 'evse_id', 'id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_ev_charging_schedules_cp', table_name='ev_charging_schedules')
    op.drop_table('ev_charging_schedules')
    op.drop_index('ix_ev_charging_needs_cp', table_name='ev_charging_needs')
    op.drop_index('ix_ev_charging_needs_tx', table_name='ev_charging_needs')
    op.drop_table('ev_charging_needs')
