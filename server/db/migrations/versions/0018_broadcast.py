"""broadcast: a recording's HLS renditions (live broadcast or made from the lecture file) and their progress

Revision ID: 0018_broadcast
Revises: 0015_recording_parts
Create Date: 2026-12-05 16:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018_broadcast'
down_revision: str | None = '0015_recording_parts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hls_state', sa.String(length=12), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('hls_progress', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_column('hls_progress')
        batch_op.drop_column('hls_state')
