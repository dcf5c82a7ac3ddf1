"""meeting end: when a meeting really ended and who ended it

Revision ID: 0014_meeting_end
Revises: 0013
Create Date: 2026-12-05 13:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.models

revision: str = '0014_meeting_end'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch), as in 0007: rebuilding `meetings` on SQLite would fire the ON DELETE CASCADE of
    # the tables that refer to it. SQLite accepts an inline REFERENCES on a column added with a NULL default.
    op.add_column('meetings', sa.Column('ended_at', server.db.models.UTCDateTime(), nullable=True))
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE meetings ADD COLUMN ended_by INTEGER REFERENCES users (id) ON DELETE SET NULL')
    else:
        op.add_column('meetings', sa.Column('ended_by', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'),
                                            nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        batch_op.drop_column('ended_by')
        batch_op.drop_column('ended_at')
