"""broadcast viewers: public watch links, viewers from heartbeats, the viewers' question queue (issue 19)

Revision ID: 0017_broadcast_viewers
Revises: 0015_recording_parts
Create Date: 2026-12-05 16:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.db.models import UTCDateTime

revision: str = '0017_broadcast_viewers'
down_revision: str | None = '0015_recording_parts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'broadcast_links',
        sa.Column('meeting_id', sa.Integer(), sa.ForeignKey('meetings.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('nonce', sa.String(32), nullable=False),
        sa.Column('created_by', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
    )
    op.create_table(
        'broadcast_views',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('meeting_id', sa.Integer(), sa.ForeignKey('meetings.id', ondelete='CASCADE'), nullable=False),
        sa.Column('viewer', sa.String(80), nullable=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('unit_id', sa.Integer(), sa.ForeignKey('units.id', ondelete='SET NULL'), nullable=True),
        sa.Column('role', sa.String(20), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('public', sa.Boolean(), nullable=False),
        sa.Column('first_at', UTCDateTime(), nullable=False),
        sa.Column('last_at', UTCDateTime(), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.UniqueConstraint('meeting_id', 'viewer', name='uq_broadcast_views_meeting_viewer'),
    )
    op.create_index('ix_broadcast_views_meeting_id', 'broadcast_views', ['meeting_id'])
    op.create_index('ix_broadcast_views_user_id', 'broadcast_views', ['user_id'])
    op.create_table(
        'broadcast_questions',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('meeting_id', sa.Integer(), sa.ForeignKey('meetings.id', ondelete='CASCADE'), nullable=False),
        sa.Column('viewer', sa.String(80), nullable=False),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('state', sa.Enum('pending', 'approved', 'answered', 'dismissed', name='questionstate',
                                   native_enum=False, length=20), nullable=False),
        sa.Column('answer', sa.Text(), nullable=False),
        sa.Column('asked_at', UTCDateTime(), nullable=False),
        sa.Column('decided_at', UTCDateTime(), nullable=True),
        sa.Column('decided_by', sa.Integer(), sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True),
        sa.Column('chat_message_id', sa.Integer(), nullable=True),
    )
    op.create_index('ix_broadcast_questions_meeting_id', 'broadcast_questions', ['meeting_id'])
    op.create_index('ix_broadcast_questions_viewer', 'broadcast_questions', ['viewer'])


def downgrade() -> None:
    op.drop_table('broadcast_questions')
    op.drop_table('broadcast_views')
    op.drop_table('broadcast_links')
