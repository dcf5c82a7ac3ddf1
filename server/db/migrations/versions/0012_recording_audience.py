"""recording audience: which learners see a published recording (enrolled, the meeting's units, all)

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-05 13:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('audience', sa.Enum('enrolled', 'units', 'all', name='recordingaudience',
                                                          native_enum=False, length=20),
                                      nullable=False, server_default='enrolled'))


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_column('audience')
