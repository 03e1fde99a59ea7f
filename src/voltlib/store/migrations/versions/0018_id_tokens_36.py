"""2.0.1 tokens of 36 characters in id_tags, badges and vehicles (issue 17)

An OCPP 2.0.1 IdToken is up to 36 characters (IdTokenType.idToken; a Central token is often a
UUID), 1.6's idTag 20 (CiString20Type). ``transactions`` was widened by 0015; the tables an
operator stores tokens in (``id_tags`` and its parent group, ``badges``, ``vehicles``) were not,
so a 21-36 character token could be neither stored nor blocked. 1.6 messages keep their 20: the
1.6 schemas refuse a longer idTag on the wire, and the 1.6 adapter never sends one.

Down: narrowing fails on PostgreSQL (and truncates nothing on SQLite) while a longer token is
stored; remove those first.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_WIDENED = {'id_tags': [('id_tag', False), ('parent_id_tag', True)], 'badges': [('id_tag', False)],
            'vehicles': [('id_tag', False)]}


def _resize(width_from: int, width_to: int) -> None:
    for table, columns in _WIDENED.items():
        with op.batch_alter_table(table) as batch:  # SQLite: the table is rebuilt
            for column, nullable in columns:
                batch.alter_column(column, existing_type=sa.String(length=width_from),
                                   type_=sa.String(length=width_to), existing_nullable=nullable)


def upgrade() -> None:
    _resize(20, 36)


def downgrade() -> None:
    _resize(36, 20)
