"""reservations: every reservation voltlib asked for, the API's and car sharing's (issue 20)

Car sharing kept its holds only inside each rental's ``data`` (``car_hold``, ``bay_hold``). The holds
rentals carry now become rows here (origin ``car-sharing``): ``Requested`` (their answer was never
recorded) or ``Expired`` when past their expiry. Downgrading drops the table; the rentals keep
their holds, so nothing car sharing needs is lost either way.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, voltlib.store.tables.UtcDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table('reservations',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('id_tag', sa.String(length=36), nullable=False),
    _ts('expires_at'),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('rental_id', sa.String(length=32), nullable=True),
    sa.Column('requested_by', sa.String(length=64), nullable=True),
    sa.Column('transaction_id', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    _ts('created_at'), _ts('updated_at'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations'))
    )
    op.create_index('ix_reservations_created', 'reservations', ['created_at', 'id'], unique=False)
    op.create_index('ix_reservations_cp', 'reservations', ['charge_point_id', 'created_at'], unique=False)
    op.create_index('ix_reservations_tag', 'reservations', ['id_tag', 'created_at'], unique=False)
    op.create_index('ix_reservations_rental', 'reservations', ['rental_id'], unique=False)
    _carry_over_holds()


def _carry_over_holds() -> None:
    """Each hold a rental carries becomes its reservation row (a reservation id seen twice: the first kept)."""
    conn = op.get_bind()
    rentals = sa.table('rentals', sa.column('id', sa.String()), sa.column('data', sa.JSON()),
                       sa.column('created_at', voltlib.store.tables.UtcDateTime(timezone=True)))
    now = datetime.now(UTC)
    rows: dict[int, dict[str, Any]] = {}
    for rental_id, data, created_at in conn.execute(sa.select(rentals.c.id, rentals.c.data, rentals.c.created_at)):
        data = json.loads(data) if isinstance(data, str) else data
        for key, tag in (('car_hold', 'member_id_tag'), ('bay_hold', 'car_id_tag')):
            hold = data.get(key)
            if not hold:
                continue
            expires_at = datetime.fromisoformat(hold['expires_at'])
            lapsed = expires_at <= now
            rows.setdefault(int(hold['reservation_id']), {
                'id': int(hold['reservation_id']), 'charge_point_id': str(hold['dock'][0]),
                'connector_id': int(hold['dock'][1]), 'id_tag': str(data.get(tag) or ''), 'expires_at': expires_at,
                'status': 'Expired' if lapsed else 'Requested', 'origin': 'car-sharing', 'rental_id': rental_id,
                'requested_by': 'car-sharing', 'transaction_id': None,
                'detail': 'carried over from its rental (the answer was not recorded)',
                'created_at': created_at, 'updated_at': now})
    if rows:
        ts = voltlib.store.tables.UtcDateTime(timezone=True)
        table = sa.table('reservations', *(sa.column(name, ts) if name.endswith('_at') else sa.column(name)
                                           for name in next(iter(rows.values()))))
        op.bulk_insert(table, list(rows.values()))


def downgrade() -> None:
    op.drop_index('ix_reservations_rental', table_name='reservations')
    op.drop_index('ix_reservations_tag', table_name='reservations')
    op.drop_index('ix_reservations_cp', table_name='reservations')
    op.drop_index('ix_reservations_created', table_name='reservations')
    op.drop_table('reservations')
