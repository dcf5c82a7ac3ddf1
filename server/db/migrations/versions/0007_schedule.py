"""schedule: publication override, notifications, calendar feeds, regional-meeting documents

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-23 13:33:26.676440
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.models

revision: str = '0007'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_feeds',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('created_at', server.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id'),
    sa.UniqueConstraint('token')
    )
    op.create_table('meeting_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meeting_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=120), nullable=False),
    sa.Column('uploaded_at', server.db.models.UTCDateTime(), nullable=False),
    sa.Column('uploaded_by', sa.Integer(), nullable=True),
    sa.Column('classroom_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['classroom_id'], ['classrooms.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by'], ['users.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('meeting_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_meeting_documents_meeting_id'), ['meeting_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('classroom_id', sa.Integer(), nullable=True),
    sa.Column('meeting_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', server.db.models.UTCDateTime(), nullable=False),
    sa.Column('read_at', server.db.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['classroom_id'], ['classrooms.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['meeting_id'], ['meetings.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_classroom_id'), ['classroom_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notifications_user_id'), ['user_id'], unique=False)

    # Plain ADD COLUMN (no batch): rebuilding `meetings` on SQLite would fire the ON DELETE CASCADE of the
    # tables that refer to it. SQLite accepts an inline REFERENCES on a column added with a NULL default.
    op.add_column('meetings', sa.Column('publish_override_reason', sa.Text(), server_default='', nullable=False))
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE meetings ADD COLUMN publish_override_by INTEGER '
                   'REFERENCES users (id) ON DELETE SET NULL')
    else:
        op.add_column('meetings', sa.Column('publish_override_by', sa.Integer(),
                                            sa.ForeignKey('users.id', ondelete='SET NULL'), nullable=True))
    op.add_column('meetings', sa.Column('publish_override_at', server.db.models.UTCDateTime(), nullable=True))
    op.add_column('meetings', sa.Column('first_published_at', server.db.models.UTCDateTime(), nullable=True))
    op.add_column('meetings', sa.Column('sequence', sa.Integer(), server_default='0', nullable=False))
    op.add_column('meetings', sa.Column('updated_at', server.db.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('meetings', schema=None) as batch_op:
        for name in ('updated_at', 'sequence', 'first_published_at', 'publish_override_at', 'publish_override_by',
                     'publish_override_reason'):
            batch_op.drop_column(name)

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_user_id'))
        batch_op.drop_index(batch_op.f('ix_notifications_meeting_id'))
        batch_op.drop_index(batch_op.f('ix_notifications_classroom_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('meeting_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_meeting_documents_meeting_id'))

    op.drop_table('meeting_documents')
    op.drop_table('calendar_feeds')
