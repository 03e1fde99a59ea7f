"""rentals.returned_at, indexed with the city: a day's returns, whatever the charge point's clock

The daily energy report picked a day's returns by ``updated_at`` (when voltlib saved the return,
give or take two minutes), but a return's time is the charge point's: one whose clock runs ahead
put a return into the next day while voltlib saved it the day before, and the report missed it.
The column (with its index) replaces 0008's index on ``updated_at``.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

import voltlib.store.tables

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None
BATCH = 5000


def upgrade() -> None:
    op.add_column('rentals', sa.Column('returned_at', voltlib.store.tables.UtcDateTime(timezone=True), nullable=True))
    rentals = sa.table('rentals', sa.column('id', sa.String), sa.column('data', sa.JSON),
                       sa.column('returned_at', voltlib.store.tables.UtcDateTime(timezone=True)))
    conn = op.get_bind()
    fill = rentals.update().where(rentals.c.id == sa.bindparam("rental_id")).values(returned_at=sa.bindparam("at"))
    last = ""
    while True:  # by pages of the primary key: a city's years of rentals need not fit in memory
        rows = conn.execute(sa.select(rentals.c.id, rentals.c.data).where(rentals.c.id > last)
                            .order_by(rentals.c.id).limit(BATCH)).all()
        if not rows:
            break
        returned = [{"rental_id": row.id, "at": datetime.fromisoformat(row.data["returned_at"])}
                    for row in rows if (row.data or {}).get("returned_at")]
        if returned:
            conn.execute(fill, returned)
        last = rows[-1].id
    op.create_index('ix_rentals_city_returned', 'rentals', ['city', 'returned_at'])
    op.drop_index('ix_rentals_city_updated', table_name='rentals')


def downgrade() -> None:
    op.create_index('ix_rentals_city_updated', 'rentals', ['city', 'updated_at'])
    op.drop_index('ix_rentals_city_returned', table_name='rentals')
    with op.batch_alter_table('rentals') as batch:
        batch.drop_column('returned_at')
