"""index id_tags.list_version: a booting charge point's owed local-list entries are a range read

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_id_tags_list_version', 'id_tags', ['list_version'])


def downgrade() -> None:
    op.drop_index('ix_id_tags_list_version', table_name='id_tags')
