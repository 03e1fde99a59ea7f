"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 17:56:23.161714
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('api_tokens',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('certificate_requests',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('csr', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_requests'))
    )
    op.create_table('charge_points',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('registration', sa.String(length=16), nullable=False),
    sa.Column('security_profile', sa.Integer(), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('certificate_fingerprint', sa.String(length=64), nullable=True),
    sa.Column('vendor', sa.String(length=20), nullable=True),
    sa.Column('model', sa.String(length=20), nullable=True),
    sa.Column('serial_number', sa.String(length=25), nullable=True),
    sa.Column('charge_box_serial_number', sa.String(length=25), nullable=True),
    sa.Column('firmware_version', sa.String(length=50), nullable=True),
    sa.Column('iccid', sa.String(length=20), nullable=True),
    sa.Column('imsi', sa.String(length=20), nullable=True),
    sa.Column('meter_type', sa.String(length=25), nullable=True),
    sa.Column('meter_serial_number', sa.String(length=25), nullable=True),
    sa.Column('firmware_status', sa.String(length=40), nullable=True),
    sa.Column('diagnostics_status', sa.String(length=40), nullable=True),
    sa.Column('log_status', sa.String(length=40), nullable=True),
    sa.Column('last_boot_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_address', sa.String(length=64), nullable=True),
    sa.Column('created_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_points'))
    )
    op.create_table('commands',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=True),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('response', sa.JSON(), nullable=True),
    sa.Column('error_code', sa.String(length=40), nullable=True),
    sa.Column('error_description', sa.String(length=255), nullable=True),
    sa.Column('requested_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commands'))
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index('ix_commands_cp', ['charge_point_id', 'created_at'], unique=False)

    op.create_table('connector_status_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=32), nullable=False),
    sa.Column('info', sa.String(length=50), nullable=True),
    sa.Column('vendor_id', sa.String(length=255), nullable=True),
    sa.Column('vendor_error_code', sa.String(length=50), nullable=True),
    sa.Column('status_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('received_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('expected', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connector_status_history'))
    )
    with op.batch_alter_table('connector_status_history', schema=None) as batch_op:
        batch_op.create_index('ix_status_history_cp', ['charge_point_id', 'connector_id', 'status_at'], unique=False)

    op.create_table('id_tags',
    sa.Column('id_tag', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expiry_date', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('parent_id_tag', sa.String(length=20), nullable=True),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('created_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_tag', name=op.f('pk_id_tags'))
    )
    op.create_table('meter_values',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.BigInteger(), nullable=False),
    sa.Column('sampled_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('samples', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_values')),
    sa.UniqueConstraint('charge_point_id', 'connector_id', 'sampled_at', 'transaction_id', name='uq_meter_values_natural')
    )
    with op.batch_alter_table('meter_values', schema=None) as batch_op:
        batch_op.create_index('ix_meter_values_received', ['received_at'], unique=False)
        batch_op.create_index('ix_meter_values_tx', ['transaction_id'], unique=False)

    op.create_table('ocpp_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('initiator', sa.String(length=16), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ocpp_messages'))
    )
    with op.batch_alter_table('ocpp_messages', schema=None) as batch_op:
        batch_op.create_index('ix_ocpp_messages_at', ['at'], unique=False)
        batch_op.create_index('ix_ocpp_messages_cp_at', ['charge_point_id', 'at'], unique=False)

    op.create_table('security_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=True),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_security_events'))
    )
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.create_index('ix_security_events_at', ['at'], unique=False)

    op.create_table('transactions',
    sa.Column('id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('id_tag', sa.String(length=20), nullable=False),
    sa.Column('id_tag_status', sa.String(length=16), nullable=False),
    sa.Column('reservation_id', sa.Integer(), nullable=True),
    sa.Column('meter_start', sa.BigInteger(), nullable=False),
    sa.Column('started_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.Column('meter_stop', sa.BigInteger(), nullable=True),
    sa.Column('stopped_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
    sa.Column('stop_reason', sa.String(length=20), nullable=True),
    sa.Column('stop_id_tag', sa.String(length=20), nullable=True),
    sa.Column('received_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactions')),
    sa.UniqueConstraint('charge_point_id', 'connector_id', 'started_at', 'id_tag', name='uq_transactions_natural')
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_cp_started', ['charge_point_id', 'started_at'], unique=False)
        batch_op.create_index('ix_transactions_open_tag', ['id_tag', 'stopped_at'], unique=False)

    op.create_table('connectors',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=32), nullable=False),
    sa.Column('info', sa.String(length=50), nullable=True),
    sa.Column('vendor_id', sa.String(length=255), nullable=True),
    sa.Column('vendor_error_code', sa.String(length=50), nullable=True),
    sa.Column('status_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'], name=op.f('fk_connectors_charge_point_id_charge_points'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('charge_point_id', 'connector_id', name=op.f('pk_connectors'))
    )



def downgrade() -> None:

    op.drop_table('connectors')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_open_tag')
        batch_op.drop_index('ix_transactions_cp_started')

    op.drop_table('transactions')
    with op.batch_alter_table('security_events', schema=None) as batch_op:
        batch_op.drop_index('ix_security_events_at')

    op.drop_table('security_events')
    with op.batch_alter_table('ocpp_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_ocpp_messages_cp_at')
        batch_op.drop_index('ix_ocpp_messages_at')

    op.drop_table('ocpp_messages')
    with op.batch_alter_table('meter_values', schema=None) as batch_op:
        batch_op.drop_index('ix_meter_values_tx')
        batch_op.drop_index('ix_meter_values_received')

    op.drop_table('meter_values')
    op.drop_table('id_tags')
    with op.batch_alter_table('connector_status_history', schema=None) as batch_op:
        batch_op.drop_index('ix_status_history_cp')

    op.drop_table('connector_status_history')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_cp')

    op.drop_table('commands')
    op.drop_table('charge_points')
    op.drop_table('certificate_requests')
    op.drop_table('api_tokens')

