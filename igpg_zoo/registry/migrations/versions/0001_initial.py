"""Initial schema: checkpoints, metrics, tags, embeddings, artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('artifacts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['artifacts.id'], name=op.f('fk_artifacts_parent_id_artifacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifacts'))
    )
    op.create_index('ix_artifacts_kind', 'artifacts', ['kind'])
    op.create_index('ix_artifacts_sha256', 'artifacts', ['sha256'])

    op.create_table('checkpoints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('arch', sa.String(length=1024), nullable=False),
    sa.Column('task', sa.String(length=512), nullable=False),
    sa.Column('dataset', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('n_params', sa.BigInteger(), nullable=False),
    sa.Column('license', sa.String(length=256), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('created_at', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('identity', sa.String(length=64), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('extra', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['checkpoints.id'], name=op.f('fk_checkpoints_parent_id_checkpoints'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkpoints')),
    sa.UniqueConstraint('identity', name=op.f('uq_checkpoints_identity'))
    )
    op.create_index('ix_checkpoints_arch', 'checkpoints', ['arch'])
    op.create_index('ix_checkpoints_dataset', 'checkpoints', ['dataset'])
    op.create_index('ix_checkpoints_kind', 'checkpoints', ['kind'])
    op.create_index('ix_checkpoints_parent_id', 'checkpoints', ['parent_id'])
    op.create_index('ix_checkpoints_sha256', 'checkpoints', ['sha256'])
    op.create_index('ix_checkpoints_task', 'checkpoints', ['task'])

    op.create_table('embeddings',
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('embedder', sa.String(length=256), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('text_sha', sa.String(length=64), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('text_vector', sa.LargeBinary(), nullable=False),
    sa.Column('dataset_vector', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_embeddings_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('checkpoint_id', name=op.f('pk_embeddings'))
    )
    op.create_index('ix_embeddings_text_sha', 'embeddings', ['text_sha'])

    op.create_table('metrics',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('dataset', sa.String(length=512), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_metrics_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics')),
    sa.UniqueConstraint('checkpoint_id', 'name', 'dataset', name=op.f('uq_metrics_checkpoint_id'))
    )
    op.create_index('ix_metrics_checkpoint_id', 'metrics', ['checkpoint_id'])
    op.create_index('ix_metrics_name_value', 'metrics', ['name', 'value'])

    op.create_table('tags',
    sa.Column('checkpoint_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['checkpoint_id'], ['checkpoints.id'], name=op.f('fk_tags_checkpoint_id_checkpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('checkpoint_id', 'tag', name=op.f('pk_tags'))
    )
    op.create_index('ix_tags_tag', 'tags', ['tag'])


def downgrade() -> None:
    op.drop_table('tags')
    op.drop_table('metrics')
    op.drop_table('embeddings')
    op.drop_table('checkpoints')
    op.drop_table('artifacts')
