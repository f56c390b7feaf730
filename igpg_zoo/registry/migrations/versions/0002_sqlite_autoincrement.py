"""Ids are never reused on SQLite: checkpoints and artifacts get AUTOINCREMENT.

Without it SQLite hands out max(rowid) + 1, so removing the record with the highest id and adding
another gives the new one the removed record's id, and lineage, exports, provenance and users' notes
that name that id silently point at a different model. PostgreSQL sequences never go back, so this
revision changes nothing there.

SQLite cannot add AUTOINCREMENT to a table in place: each table is rebuilt (batch mode copies the
rows into a new table, drops the old one and renames the copy). ``registry.db._upgrade`` runs every
SQLite migration with foreign keys switched off, so dropping the old ``checkpoints`` does not
cascade into metrics, tags, embeddings or parent links, and checks the foreign keys before it
commits; the whole upgrade is one transaction.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLES = ('checkpoints', 'artifacts')  # the tables whose integer ids users see


def _rebuild(table: str, autoincrement: bool) -> None:
    with op.batch_alter_table(table, recreate='always',
                              table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass


def _seed_sequence(table: str) -> None:
    # The largest id ever handed out is not recorded anywhere before this revision: an id removed
    # earlier above today's largest one is unknowable, so the counter starts at max(id).
    op.execute(sa.text('DELETE FROM sqlite_sequence WHERE name = :t').bindparams(t=table))
    op.execute(sa.text(f'INSERT INTO sqlite_sequence (name, seq) SELECT :t, COALESCE(MAX(id), 0) FROM "{table}"')
               .bindparams(t=table))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        _rebuild(table, autoincrement=True)
        _seed_sequence(table)


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        _rebuild(table, autoincrement=False)
