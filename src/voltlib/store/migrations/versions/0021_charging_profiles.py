"""charging_profiles, installed_charging_profiles, composite_schedules, charging_limits,
charging_profile_reports (issue 17 K, issue 20 part 3)

Charging profiles as an operator resource, what each charge point holds (installed through voltlib
or reported by ReportChargingProfiles), the last composite schedule of each connector, the external
limits 2.0.1 stations notify (NotifyChargingLimit, until ClearedChargingLimit), and the
GetChargingProfiles requests whose reports come in parts.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, voltlib.store.tables.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table('charging_profiles',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('stack_level', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('recurrency', sa.String(length=8), nullable=True),
    _ts('start_at', True),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    _ts('valid_from', True), _ts('valid_to', True),
    sa.Column('periods', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    _ts('created_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charging_profiles')),
    sa.UniqueConstraint('name', name=op.f('uq_charging_profiles_name'))
    )
    op.create_table('installed_charging_profiles',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('charging_profile_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('stack_level', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('stored_profile_id', sa.BigInteger(), nullable=True),
    sa.Column('limit_source', sa.String(length=8), nullable=True),
    sa.Column('transaction_id', sa.String(length=36), nullable=True),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    _ts('updated_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_installed_charging_profiles')),
    sa.UniqueConstraint('charge_point_id', 'charging_profile_id',
                        name=op.f('uq_installed_charging_profiles_charge_point_id'))
    )
    op.create_table('composite_schedules',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    _ts('schedule_start', True),
    sa.Column('duration_s', sa.Integer(), nullable=True),
    sa.Column('periods', sa.JSON(), nullable=False),
    _ts('read_at'),
    sa.PrimaryKeyConstraint('charge_point_id', 'connector_id', name=op.f('pk_composite_schedules'))
    )
    op.create_table('charging_limits',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('limit_source', sa.String(length=8), nullable=False),
    sa.Column('grid_critical', sa.Boolean(), nullable=True),
    sa.Column('limit_w', sa.Float(), nullable=True),
    sa.Column('periods', sa.JSON(), nullable=True),
    _ts('schedule_start', True),
    _ts('received_at'),
    sa.PrimaryKeyConstraint('charge_point_id', 'evse_id', 'limit_source', name=op.f('pk_charging_limits'))
    )
    op.create_table('charging_profile_reports',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('parts', sa.Integer(), nullable=False),
    sa.Column('profiles', sa.Integer(), nullable=False),
    _ts('requested_at'), _ts('updated_at'),
    sa.PrimaryKeyConstraint('charge_point_id', 'request_id', name=op.f('pk_charging_profile_reports'))
    )


def downgrade() -> None:
    op.drop_table('charging_profile_reports')
    op.drop_table('charging_limits')
    op.drop_table('composite_schedules')
    op.drop_table('installed_charging_profiles')
    op.drop_table('charging_profiles')
