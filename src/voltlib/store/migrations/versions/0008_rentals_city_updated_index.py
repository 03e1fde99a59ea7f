"""index rentals (city, updated_at): the daily energy report narrows a city's returns by updated_at

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_rentals_city_updated', 'rentals', ['city', 'updated_at'])


def downgrade() -> None:
    op.drop_index('ix_rentals_city_updated', table_name='rentals')
