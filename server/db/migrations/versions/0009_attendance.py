"""attendance events and headcounts

Revision ID: 0009
Revises: 0005
Create Date: 2026-11-23 13:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.models

revision: str = '0009'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'attendance_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('at', server.db.models.UTCDateTime(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('participant', sa.String(length=40), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('classroom_id', sa.Integer(), nullable=True),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['classroom_id'], ['classrooms.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('attendance_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attendance_events_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attendance_events_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_attendance_events_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attendance_events_classroom_id'), ['classroom_id'], unique=False)
    op.create_table(
        'headcounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('meeting_id', sa.Integer(), nullable=False),
        sa.Column('classroom_id', sa.Integer(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.Column('names', sa.JSON(), nullable=False),
        sa.Column('updated_at', server.db.models.UTCDateTime(), nullable=False),
        sa.Column('updated_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['classroom_id'], ['classrooms.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['updated_by'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('meeting_id', 'classroom_id', name='uq_headcounts_meeting_classroom'),
    )
    with op.batch_alter_table('headcounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_headcounts_meeting_id'), ['meeting_id'], unique=False)


def downgrade() -> None:
    op.drop_table('headcounts')
    op.drop_table('attendance_events')
