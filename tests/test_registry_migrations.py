"""Schema migrations: alembic creates the schema the models describe, and registries upgrade forward."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
import torch

from igpg_zoo.errors import RegistryUnavailable
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.registry import db as registry_db
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i64-h32-o10"

NEXT_REVISION = '''"""A later version's migration (test only)."""
from alembic import op
import sqlalchemy as sa

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.drop_column("note")
'''


def _add_one(zoo):
    from igpg_zoo.adapters import get_adapter

    torch.manual_seed(0)
    meta = CheckpointMeta(arch=MLP, dataset="toy", metrics=(Metric("acc", 0.5, ""),), tags=("t",))
    return zoo.add_weights(get_adapter(MLP).build(MLP).state_dict(), meta).checkpoint


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(registry_db.MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def _version(url_or_engine) -> str:
    with url_or_engine.connect() as conn:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def test_alembic_schema_equals_the_models(registry_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with open_zoo() as zoo:
        _add_one(zoo)
        engine = zoo.store.db.engine
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), registry_db.Base.metadata)
        assert diff == [] and _version(engine) == _head()


def test_a_registry_created_now_opens_with_the_next_version(registry_url, tmp_path, monkeypatch):
    with open_zoo() as zoo:
        record = _add_one(zoo)
    later = tmp_path / "later-migrations"
    shutil.copytree(registry_db.MIGRATIONS, later, ignore=shutil.ignore_patterns("__pycache__"))
    (later / "versions" / "9999_note.py").write_text(NEXT_REVISION.format(head=_head()))
    monkeypatch.setattr(registry_db, "MIGRATIONS", later)
    with open_zoo() as zoo:
        assert zoo.get(record.id) == record and zoo.verify() == []
        engine = zoo.store.db.engine
        assert _version(engine) == "9999"
        assert "note" in {c["name"] for c in sa.inspect(engine).get_columns("checkpoints")}


def test_a_registry_from_a_newer_version_is_refused_in_one_line(registry_url):
    with open_zoo() as zoo:
        _add_one(zoo)
        with zoo.store.db.engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
    with pytest.raises(RegistryUnavailable, match="newer than this igpg-zoo") as err:
        open_zoo()
    assert "\n" not in str(err.value)


def test_sqlite_pragmas_on_every_connection(tmp_path):
    with open_zoo() as zoo:
        _add_one(zoo)
        with zoo.store.db.engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() >= 1000
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def test_processes_creating_one_registry_at_once_take_turns(registry_url):
    """Several processes opening a brand-new registry together: each migration runs alone, none fails."""
    import os
    import subprocess
    import sys

    url = registry_url if "://" in registry_url else f"sqlite:///{registry_url}"
    code = "import sys\nfrom igpg_zoo.registry.db import Database\nDatabase(sys.argv[1]).dispose()\nprint('ok')\n"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    engine = sa.create_engine(url)
    try:
        assert _version(engine) == _head()
    finally:
        engine.dispose()
