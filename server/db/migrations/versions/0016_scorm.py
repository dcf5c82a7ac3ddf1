"""scorm: SCORM packages (by content hash) and learners' attempts at their SCOs

Revision ID: 0016_scorm
Revises: 0008
Create Date: 2026-12-05 16:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.models

revision: str = '0016_scorm'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('scorm_packages',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=8), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('scos', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('files', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', server.db.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('scorm_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('material_id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=False),
    sa.Column('sco', sa.String(length=200), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('version', sa.String(length=8), nullable=False),
    sa.Column('sessions', sa.Integer(), nullable=False),
    sa.Column('last_session', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('completion', sa.String(length=20), nullable=False),
    sa.Column('success', sa.String(length=20), nullable=False),
    sa.Column('lesson_status', sa.String(length=20), nullable=False),
    sa.Column('score_raw', sa.Float(), nullable=True),
    sa.Column('score_min', sa.Float(), nullable=True),
    sa.Column('score_max', sa.Float(), nullable=True),
    sa.Column('score_scaled', sa.Float(), nullable=True),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('suspend_data', sa.Text(), nullable=False),
    sa.Column('exit', sa.String(length=20), nullable=False),
    sa.Column('session_seconds', sa.JSON(), nullable=False),
    sa.Column('total_seconds', sa.Float(), nullable=False),
    sa.Column('cmi', sa.JSON(), nullable=False),
    sa.Column('created_at', server.db.models.UTCDateTime(), nullable=False),
    sa.Column('updated_at', server.db.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['material_id'], ['materials.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['program_id'], ['programs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('user_id', 'material_id', 'sco', 'number', name='uq_scorm_attempts_user_sco')
    )
    with op.batch_alter_table('scorm_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scorm_attempts_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scorm_attempts_material_id'), ['material_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scorm_attempts_program_id'), ['program_id'], unique=False)


def downgrade() -> None:
    op.drop_table('scorm_attempts')
    op.drop_table('scorm_packages')
