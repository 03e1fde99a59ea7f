"""Certificates over 2.0.1 (issue 17): a CSR's certificate type, and the certificates voltlib had
installed on each station, whose expiry the renewal follows

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('certificate_requests', sa.Column('certificate_type', sa.String(length=32), nullable=True))
    op.create_table(
        'station_certificates',
        sa.Column('charge_point_id', sa.String(length=48), nullable=False),
        sa.Column('certificate_type', sa.String(length=32), nullable=False),
        sa.Column('serial_number', sa.String(length=40), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('not_after', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column('installed_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column('renewal_requested_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.Column('lapsed_alerted_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('charge_point_id', 'certificate_type'),
    )


def downgrade() -> None:
    op.drop_table('station_certificates')
    with op.batch_alter_table('certificate_requests') as batch:
        batch.drop_column('certificate_type')
