"""device_model: the OCPP 2.0.1 device model of each charge point (issue 16)

What NotifyReport, GetVariables and SetVariables told voltlib: one row per component / EVSE /
variable / attribute type, with its value, mutability and the variable's characteristics.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('device_model',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('component', sa.String(length=50), nullable=False),
    sa.Column('component_instance', sa.String(length=50), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('variable', sa.String(length=50), nullable=False),
    sa.Column('variable_instance', sa.String(length=50), nullable=False),
    sa.Column('attribute_type', sa.String(length=8), nullable=False),
    sa.Column('value', sa.String(length=2500), nullable=True),
    sa.Column('mutability', sa.String(length=10), nullable=True),
    sa.Column('constant', sa.Boolean(), nullable=True),
    sa.Column('persistent', sa.Boolean(), nullable=True),
    sa.Column('data_type', sa.String(length=16), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=True),
    sa.Column('min_limit', sa.Float(), nullable=True),
    sa.Column('max_limit', sa.Float(), nullable=True),
    sa.Column('values_list', sa.String(length=1000), nullable=True),
    sa.Column('supports_monitoring', sa.Boolean(), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_model')),
    sa.UniqueConstraint('charge_point_id', 'component', 'component_instance', 'evse_id', 'connector_id', 'variable',
                        'variable_instance', 'attribute_type', name=op.f('uq_device_model_charge_point_id'))
    )


def downgrade() -> None:
    op.drop_table('device_model')
