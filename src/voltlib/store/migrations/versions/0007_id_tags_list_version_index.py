"""index id_tags.list_version: a booting charge point's owed local-list entries are a range read

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_id_tags_list_version', 'id_tags', ['list_version'])


def downgrade() -> None:
    op.drop_index('ix_id_tags_list_version', table_name='id_tags')
