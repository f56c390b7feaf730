"""Answers of ``query`` and the estimate cache of ``select``.

``answers`` keeps each answer (inputs with the data's fingerprint, candidates, estimates, decision)
so it can be shown and reproduced; ``answer_scores`` caches a checkpoint's transferability
estimate per (checkpoint, data fingerprint, estimate), removed with its checkpoint.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())  # a re-run upgrade finds them made
    if 'answers' not in existing:
        _answers()
    if 'answer_scores' not in existing:
        _answer_scores()


def _answers() -> None:
    op.create_table('answers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('inputs', sa.JSON(), nullable=False),
    sa.Column('candidates', sa.JSON(), nullable=False),
    sa.Column('decision', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_answers')),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_answers_data_fingerprint', 'answers', ['data_fingerprint'])


def _answer_scores() -> None:
    op.create_table('answer_scores',
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('data_fingerprint', sa.String(length=64), nullable=False),
    sa.Column('estimate', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'],
                            name=op.f('fk_answer_scores_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('checkpoint_id', 'data_fingerprint', 'estimate', name=op.f('pk_answer_scores')),
    )


def downgrade() -> None:
    op.drop_table('answer_scores')
    op.drop_index('ix_answers_data_fingerprint', table_name='answers')
    op.drop_table('answers')
