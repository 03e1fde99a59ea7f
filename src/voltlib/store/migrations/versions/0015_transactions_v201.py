"""OCPP 2.0.1 transactions on the 1.6 tables (issue 16)

``transactions`` gains the station's own transaction id (``station_tx_id``, unique per charge
point; voltlib still allocates the integer id the rest of the system uses) and the IdToken's type;
its id tags widen to 2.0.1's 36 characters. ``transaction_events`` keeps every 2.0.1
TransactionEvent once by (transaction, seqNo): a retransmission or replay is recognised by it, a
gap in seqNo is read from it, and its offline flag, trigger reason and phases are kept.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactions') as batch:  # SQLite: the table is rebuilt
        batch.alter_column('id_tag', existing_type=sa.String(length=20), type_=sa.String(length=36),
                           existing_nullable=False)
        batch.alter_column('stop_id_tag', existing_type=sa.String(length=20), type_=sa.String(length=36),
                           existing_nullable=True)
        batch.add_column(sa.Column('station_tx_id', sa.String(length=36), nullable=True))
        batch.add_column(sa.Column('id_token_type', sa.String(length=16), nullable=True))
    op.create_index('ix_transactions_station_tx', 'transactions', ['charge_point_id', 'station_tx_id'], unique=True)
    op.create_table(
        'transaction_events',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('charge_point_id', sa.String(length=48), nullable=False),
        sa.Column('transaction_id', sa.BigInteger(), nullable=False),
        sa.Column('seq_no', sa.Integer(), nullable=False),
        sa.Column('event_type', sa.String(length=8), nullable=False),
        sa.Column('trigger_reason', sa.String(length=32), nullable=False),
        sa.Column('offline', sa.Boolean(), nullable=False),
        sa.Column('number_of_phases_used', sa.Integer(), nullable=True),
        sa.Column('charging_state', sa.String(length=16), nullable=True),
        sa.Column('stopped_reason', sa.String(length=20), nullable=True),
        sa.Column('id_token_type', sa.String(length=16), nullable=True),
        sa.Column('stamped_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column('received_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_transaction_events')),
        sa.UniqueConstraint('transaction_id', 'seq_no', name='uq_transaction_events_seq'),
    )


def downgrade() -> None:
    op.drop_table('transaction_events')
    op.drop_index('ix_transactions_station_tx', table_name='transactions')
    with op.batch_alter_table('transactions') as batch:
        batch.drop_column('id_token_type')
        batch.drop_column('station_tx_id')
        batch.alter_column('stop_id_tag', existing_type=sa.String(length=36), type_=sa.String(length=20),
                           existing_nullable=True)
        batch.alter_column('id_tag', existing_type=sa.String(length=36), type_=sa.String(length=20),
                           existing_nullable=False)
