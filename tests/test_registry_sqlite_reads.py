"""The CLI's sqlite3 reads (``SqliteReads``) return what the SQLAlchemy store returns, on one real
SQLite registry: every filter kind and sort key, unknown ids, and the schema check that sends an
older or foreign file to the full database."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from igpg_zoo.adapters import get_adapter
from igpg_zoo.config import resolve_config
from igpg_zoo.errors import NotFound
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.registry.filters import make_filters
from igpg_zoo.registry.sqlite_reads import SqliteReads
from igpg_zoo.zoo import Zoo, open_zoo

ARCHS = ("mlp-i8-h4-o3", "mlp-i8-h6-o3", "mlp-i4-h4-o2")
N = 30


def _meta(i: int) -> CheckpointMeta:
    metrics = [Metric("acc", round((i * 37 % 101) / 100, 2), f"set{i % 3}")]
    if i % 4 == 0:
        metrics.append(Metric("acc", 0.5, "other"))  # one metric on two datasets
    if i % 5 == 0:
        metrics.append(Metric("loss", i / 10, ""))
    return CheckpointMeta(arch=ARCHS[i % 3], task=f"task {i % 4} with 100%_odd\\chars" if i % 7 == 0 else f"task {i % 4}",
                          dataset=f"set{i % 3}", tags=tuple(t for j, t in enumerate(("red", "blue", "a_b")) if i % (j + 2) == 0),
                          name=f"r{i}", metrics=tuple(metrics), kind="trained" if i % 2 else "imported",
                          extra={"i": i} if i % 3 else {})


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reads")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        with open_zoo(str(folder / "registry.db"), embedder="hash") as zoo:
            for i in range(N):
                arch = ARCHS[i % 3]
                weights = get_adapter(arch).build(arch).state_dict()
                zoo.add_weights(weights, _meta(i))
    return folder / "registry.db"


@pytest.fixture(scope="module")
def both(registry):
    full = open_zoo(str(registry), embedder="hash")
    light = Zoo(resolve_config(str(registry)), embedder="hash", light_reads=True)
    assert isinstance(light.reads, SqliteReads) and not isinstance(full.reads, SqliteReads)
    yield full, light
    full.close()
    light.close()


FILTERS = [
    {}, {"arch": ["mlp-i8-h4-o3"]}, {"arch": ["mlp-i8-*"]}, {"arch": ["mlp-i?-h4-o?", "mlp-i4-h4-o2"]},
    {"arch": ["MLP-*"]}, {"task": ["*100%_odd\\*"]}, {"task": ["task_1"]}, {"task": ["task ?"]},
    {"dataset": ["set1", "set2"]}, {"kind": ["trained"]}, {"tags": ["red"]}, {"tags": ["a_b", "blue"]},
    {"tags": ["a?b"]}, {"where": ["acc>=0.5"]}, {"where": ["acc@other=0.5"]}, {"where": ["acc>0.3", "loss<2"]},
    {"where": ["acc!=0.5"]}, {"arch": ["mlp-i8-*"], "tags": ["red"], "where": ["acc<=0.9"]},
    {"dataset": ["nowhere"]},
]
SORTS = [(None, True), (None, False), ("acc", True), ("acc", False), ("acc@other", True), ("loss", False),
         ("name", True), ("n_params", False), ("created_at", True)]


@pytest.mark.parametrize("kw", FILTERS, ids=[str(f) for f in FILTERS])
@pytest.mark.parametrize("sort,descending", SORTS)
def test_list_equals_the_sqlalchemy_store(both, kw, sort, descending):
    full, light = both
    filters = make_filters(**kw)
    for limit in (None, 3):
        want = full.store.list(filters, sort=sort, descending=descending, limit=limit)
        assert light.reads.list(filters, sort=sort, descending=descending, limit=limit) == want


@pytest.mark.parametrize("ids", [[1], [5, 2, 9], list(range(1, N + 1))])
def test_get_and_get_many_equal_the_store(both, ids):
    full, light = both
    assert light.get_many(ids) == full.get_many(ids)
    assert light.get(ids[0]) == full.get(ids[0])


@pytest.mark.parametrize("bad", [0, N + 1, 2**63, -3])
def test_unknown_ids_are_not_found(both, bad):
    _, light = both
    with pytest.raises(NotFound, match="no checkpoint"):
        light.get(bad)
    with pytest.raises(NotFound, match="no checkpoint"):
        light.get_many([1, bad])


@pytest.mark.parametrize("method,args", [("count", ()), ("dim", ()), ("embedders", ()), ("sort_is_known", ("acc",)),
                                         ("sort_is_known", ("nope",)), ("sort_is_known", ("id",))])
def test_small_reads_equal_the_store(both, method, args):
    full, light = both
    assert getattr(light.reads, method)(*args) == getattr(full.store, method)(*args)


def test_vectors_equal_the_store(both):
    full, light = both
    for got, want in zip(light.reads.vectors(), full.store.vectors(), strict=True):
        assert (got == want).all()
    assert (light.reads.embedded_ids() == full.store.embedded_ids()).all()


@pytest.mark.parametrize("version", ["0001", "9999", None])
def test_a_file_not_at_this_schema_goes_to_the_full_database(tmp_path, registry, version):
    copy = tmp_path / "copy.db"
    with sqlite3.connect(registry) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with sqlite3.connect(copy) as db:
        if version is None:
            db.execute("DROP TABLE alembic_version")
        else:
            db.execute("UPDATE alembic_version SET version_num = ?", [version])
    assert SqliteReads.open(copy, lambda: None) is None


def test_a_file_that_is_no_database_goes_to_the_full_database(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert SqliteReads.open(junk, lambda: None) is None


def test_writes_through_a_light_zoo_are_seen_by_its_reads(registry, tmp_path):
    copy = tmp_path / "registry.db"
    with sqlite3.connect(registry) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    with Zoo(resolve_config(str(copy)), embedder="hash", light_reads=True) as zoo:
        before = zoo.reads.count()
        arch = ARCHS[100 % 3]
        meta = replace(_meta(100), task="a brand new kind of record")
        added = zoo.add_weights(get_adapter(arch).build(arch).state_dict(), meta).checkpoint
        assert zoo.get(added.id) == added and zoo.reads.count() == before + 1
        assert [h.checkpoint.id for h in zoo.query(meta.task, k=1, dataset=[meta.dataset])] == [added.id]


def test_a_database_that_refuses_a_read_is_a_one_line_error(registry, tmp_path):
    from igpg_zoo.errors import RegistryUnavailable

    copy = tmp_path / "copy.db"
    with sqlite3.connect(registry) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    reads = SqliteReads.open(copy, lambda: None)
    with sqlite3.connect(copy) as db:
        db.execute("DROP TABLE tags")  # what a damaged file looks like to the next read
    with pytest.raises(RegistryUnavailable, match="cannot use registry") as err:
        reads.list()
    assert "\n" not in str(err.value)
    reads.close()
