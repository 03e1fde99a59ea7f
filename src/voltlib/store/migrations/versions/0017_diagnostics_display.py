"""station_events, variable_monitors, customer_information, display_messages (issue 17, N and O)

What 2.0.1 stations report beyond the core: every NotifyEvent eventData once, the monitors of
NotifyMonitoringReport by monitor id, NotifyCustomerInformation parts by request, and the display
messages a screen holds (set by voltlib, or reported by NotifyDisplayMessages).

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, voltlib.store.tables.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table('station_events',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    _ts('at'), _ts('received_at'),
    sa.Column('seq_no', sa.Integer(), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('notification_type', sa.String(length=24), nullable=False),
    sa.Column('component', sa.String(length=50), nullable=False),
    sa.Column('component_instance', sa.String(length=50), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('variable', sa.String(length=50), nullable=False),
    sa.Column('variable_instance', sa.String(length=50), nullable=False),
    sa.Column('actual_value', sa.String(length=2500), nullable=False),
    sa.Column('cause', sa.Integer(), nullable=True),
    sa.Column('tech_code', sa.String(length=50), nullable=True),
    sa.Column('tech_info', sa.String(length=500), nullable=True),
    sa.Column('cleared', sa.Boolean(), nullable=False),
    sa.Column('transaction_id', sa.String(length=36), nullable=True),
    sa.Column('variable_monitoring_id', sa.Integer(), nullable=True),
    sa.Column('security', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_station_events')),
    sa.UniqueConstraint('charge_point_id', 'event_id', 'at', name=op.f('uq_station_events_charge_point_id'))
    )
    op.create_index('ix_station_events_cp_id', 'station_events', ['charge_point_id', 'id'], unique=False)
    op.create_table('variable_monitors',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('monitor_id', sa.Integer(), nullable=False),
    sa.Column('component', sa.String(length=50), nullable=False),
    sa.Column('component_instance', sa.String(length=50), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('variable', sa.String(length=50), nullable=False),
    sa.Column('variable_instance', sa.String(length=50), nullable=False),
    sa.Column('type', sa.String(length=24), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('transaction', sa.Boolean(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    _ts('updated_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_variable_monitors')),
    sa.UniqueConstraint('charge_point_id', 'monitor_id', name=op.f('uq_variable_monitors_charge_point_id'))
    )
    op.create_table('customer_information',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('seq_no', sa.Integer(), nullable=False),
    sa.Column('data', sa.String(length=512), nullable=False),
    sa.Column('tbc', sa.Boolean(), nullable=False),
    _ts('generated_at'), _ts('received_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_information')),
    sa.UniqueConstraint('charge_point_id', 'request_id', 'seq_no', name=op.f('uq_customer_information_charge_point_id'))
    )
    op.create_table('display_messages',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=True),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('content', sa.String(length=512), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=True),
    _ts('start_at', True), _ts('end_at', True),
    sa.Column('transaction_id', sa.String(length=36), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    _ts('updated_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_display_messages')),
    sa.UniqueConstraint('charge_point_id', 'message_id', name=op.f('uq_display_messages_charge_point_id'))
    )


def downgrade() -> None:
    op.drop_table('display_messages')
    op.drop_table('customer_information')
    op.drop_table('variable_monitors')
    op.drop_index('ix_station_events_cp_id', table_name='station_events')
    op.drop_table('station_events')
