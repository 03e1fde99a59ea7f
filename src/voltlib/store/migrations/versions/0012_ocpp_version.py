"""charge_points.ocpp_version, connectors.evse_connector_id: OCPP 2.0.1 beside 1.6 (issue 16)

The OCPP version of a charge point's last connection (a change is a security event), and, for a
2.0.1 charge point whose EVSE is the connector row, the plug of the EVSE a status is of.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('charge_points', sa.Column('ocpp_version', sa.String(length=8), nullable=True))
    op.add_column('connectors', sa.Column('evse_connector_id', sa.Integer(), nullable=True))
    op.add_column('connector_status_history', sa.Column('evse_connector_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in ('connector_status_history', 'connectors'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('evse_connector_id')
    with op.batch_alter_table('charge_points') as batch:
        batch.drop_column('ocpp_version')
