"""schedule history: every 10-day override reason of a meeting, and the deadline reminders sent

Revision ID: 0013
Revises: 0007
Create Date: 2026-12-05 13:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.models

revision: str = '0013'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('override_reasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('by', sa.Integer(), nullable=True),
    sa.Column('at', server.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['by'], ['users.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('override_reasons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_override_reasons_meeting_id'), ['meeting_id'], unique=False)
    op.create_table('deadline_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('days_before', sa.Integer(), nullable=False),
    sa.Column('due', sa.Date(), nullable=False),
    sa.Column('sent_at', server.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('meeting_id', 'kind', 'days_before', name='uq_deadline_reminders_once')
    )
    with op.batch_alter_table('deadline_reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deadline_reminders_meeting_id'), ['meeting_id'], unique=False)
    # The reason a meeting already carries becomes the first entry of its history.
    op.execute("INSERT INTO override_reasons (meeting_id, action, reason, by, at) "
               "SELECT id, 'publish', publish_override_reason, publish_override_by, "
               "COALESCE(publish_override_at, created_at) FROM meetings WHERE publish_override_reason <> ''")


def downgrade() -> None:
    with op.batch_alter_table('deadline_reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deadline_reminders_meeting_id'))
    op.drop_table('deadline_reminders')
    with op.batch_alter_table('override_reasons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_override_reasons_meeting_id'))
    op.drop_table('override_reasons')
