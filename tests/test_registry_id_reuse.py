"""Ids are never reused: removing the highest id and adding again gives a new id, also after an upgrade.

SQLite without AUTOINCREMENT hands out max(rowid) + 1; migration 0002 rebuilds the tables whose ids
users see (checkpoints, artifacts) with it, keeping every row and every child row.
"""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import RegistryUnavailable
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.registry import db as registry_db
from igpg_zoo.zoo import open_zoo

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MLP = "mlp-i64-h32-o10"
OLD_HEAD = "0001"  # the schema registries written before ids stopped being reused
CURRENT = registry_db.MIGRATIONS  # every migration of this version


def _add_checkpoint(zoo, n: int, parent: int | None = None) -> int:
    torch.manual_seed(n)
    meta = CheckpointMeta(arch=MLP, dataset=f"toy-{n}", metrics=(Metric("acc", n / 10, ""),), tags=(f"t{n}",),
                          parent_id=parent)
    return zoo.add_weights(get_adapter(MLP).build(MLP).state_dict(), meta).checkpoint.id


def _add_artifact(zoo, n: int, parent: int | None = None) -> int:
    return zoo.add_artifact("tokenizer", f"tok-{n}", {"w": torch.full((2,), float(n))}, {"n": n}, {},
                            parent_id=parent).id


def _remove_artifact(zoo, artifact_id: int) -> None:  # no API removes an artifact; a user's SQL can
    with zoo.store.db.engine.begin() as conn:
        conn.execute(sa.delete(registry_db.ArtifactRow).where(registry_db.ArtifactRow.id == artifact_id))


# table -> (add the n-th row and return its id, remove a row by id)
TABLES = {
    "checkpoints": (_add_checkpoint, lambda zoo, i: zoo.remove(i)),
    "artifacts": (_add_artifact, _remove_artifact),
}


def _remove_highest_then_add(zoo, table: str) -> tuple[list[int], int]:
    add, remove = TABLES[table]
    ids = [add(zoo, n) for n in range(1, 4)]
    remove(zoo, max(ids))
    return ids, add(zoo, 4)


def _old_schema(tmp_path, monkeypatch):
    """Make open_zoo create and open registries at OLD_HEAD (the migrations as they were)."""
    old = tmp_path / "old-migrations"
    shutil.copytree(CURRENT, old, ignore=shutil.ignore_patterns("__pycache__", "000[2-9]_*"))  # at 0001
    monkeypatch.setattr(registry_db, "MIGRATIONS", old)
    return old


def _schema(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())


def _version(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()


def _contents(zoo) -> dict:
    """Everything an upgrade must keep: records (metrics, tags, parents), artifacts, vectors."""
    records = zoo.list()
    return {"records": records, "artifacts": zoo.list_artifacts(),
            "vectors": [zoo.text_embedding(r.id).tolist() for r in records]}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_highest_id_is_not_reused_after_a_remove(registry_url, table):
    with open_zoo() as zoo:
        ids, new_id = _remove_highest_then_add(zoo, table)
    assert ids == [1, 2, 3] and new_id == 4


@pytest.mark.parametrize("table", sorted(TABLES))
def test_new_schemas_from_migrations_and_models_agree(tmp_path, table):
    with open_zoo() as zoo:
        migrated = _schema(zoo.store.db.engine)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    registry_db.Base.metadata.create_all(engine)
    from_models = _schema(engine)
    engine.dispose()
    assert "AUTOINCREMENT" in migrated[table] and "AUTOINCREMENT" in from_models[table]
    assert "AUTOINCREMENT" in migrated["answers"] and "AUTOINCREMENT" in from_models["answers"]  # recorded answers too
    others = set(from_models) - set(TABLES) - {"sqlite_sequence", "answers"}
    assert others and not any("AUTOINCREMENT" in from_models[t] + migrated[t] for t in others)


def test_an_old_registry_keeps_every_row_and_then_never_reuses_ids(tmp_path, monkeypatch):
    _old_schema(tmp_path, monkeypatch)
    with open_zoo() as zoo:
        first = _add_checkpoint(zoo, 1)
        for n in (2, 3):
            _add_checkpoint(zoo, n, parent=first)  # lineage rows pointing at #1
        tok = _add_artifact(zoo, 1)
        for n in (2, 3):
            _add_artifact(zoo, n, parent=tok)
        before = _contents(zoo)
        assert _version(zoo.store.db.engine) == OLD_HEAD
        assert "AUTOINCREMENT" not in _schema(zoo.store.db.engine)["checkpoints"]
    monkeypatch.setattr(registry_db, "MIGRATIONS", CURRENT)
    with open_zoo() as zoo:
        engine = zoo.store.db.engine
        assert _version(engine) != OLD_HEAD and _contents(zoo) == before and zoo.verify() == []
        assert [r.parent_id for r in sorted(before["records"], key=lambda r: r.id)] == [None, 1, 1]
        assert all(len(r.metrics) == 1 and len(r.tags) == 1 for r in before["records"])
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
        zoo.remove(3)
        _remove_artifact(zoo, 3)
        assert (_add_checkpoint(zoo, 4), _add_artifact(zoo, 4)) == (4, 4)


HEAD = sorted(p.name[:4] for p in (CURRENT / "versions").glob("0*.py"))[-1]  # the newest revision
FAILING_REVISION = f'''"""A migration after {HEAD} that fails (test only)."""
revision = "9999"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    raise RuntimeError("migration failed half way")


def downgrade() -> None:
    pass
'''


def _later_revision_fails(migrations, zoo) -> type[BaseException]:
    shutil.copytree(CURRENT, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_fails.py").write_text(FAILING_REVISION)
    return RuntimeError


def _a_reference_is_broken(migrations, zoo) -> type[BaseException]:
    raw = zoo.store.db.engine.raw_connection()  # a file edited by hand with foreign keys off
    try:
        raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
        raw.driver_connection.execute("INSERT INTO tags (checkpoint_id, tag) VALUES (99, 'orphan')")
    finally:
        raw.driver_connection.execute("PRAGMA foreign_keys=ON")
        raw.close()
    shutil.copytree(CURRENT, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    return RegistryUnavailable


@pytest.mark.parametrize("failure", [_later_revision_fails, _a_reference_is_broken])
def test_a_failed_upgrade_changes_nothing(tmp_path, monkeypatch, failure):
    old = _old_schema(tmp_path, monkeypatch)
    with open_zoo() as zoo:
        for n in (1, 2):
            _add_checkpoint(zoo, n, parent=1 if n == 2 else None)
        before, schema = _contents(zoo), _schema(zoo.store.db.engine)
        error = failure(tmp_path / "new-migrations", zoo)
    monkeypatch.setattr(registry_db, "MIGRATIONS", tmp_path / "new-migrations")
    with pytest.raises(error):
        open_zoo()
    monkeypatch.setattr(registry_db, "MIGRATIONS", old)
    with open_zoo() as zoo:
        assert _version(zoo.store.db.engine) == OLD_HEAD and _schema(zoo.store.db.engine) == schema
        assert _contents(zoo) == before
