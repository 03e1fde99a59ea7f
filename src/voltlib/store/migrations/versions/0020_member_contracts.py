"""Plug & Charge contracts of members: badges.kind (issue 17)

A member's ISO 15118 contract (its eMAID) is registered like a badge (a ``badges`` row beside its
``id_tags`` row, which holds its status, so blocking works alike) with ``kind`` = contract: car
sharing accepts it only from a 2.0.1 Authorize whose contract certificate voltlib checked
(docs/car-sharing.md, "Plug & Charge rentals"). Every existing row is a badge.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('badges') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=8), nullable=False, server_default='badge'))


def downgrade() -> None:
    with op.batch_alter_table('badges') as batch:
        batch.drop_column('kind')
