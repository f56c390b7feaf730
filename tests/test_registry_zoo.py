"""The Zoo facade on SQLite and PostgreSQL: add, idempotence, list, query, remove, verify, reindex."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import (
    CheckpointMismatch,
    InvalidMetadata,
    NotFound,
    RegistryUnavailable,
    UnknownArchitecture,
)
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i64-h32-o10"
CNN = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"


def weights(arch: str = MLP, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_adapter(arch).build(arch).state_dict()


def meta(arch: str = MLP, dataset: str = "toy-digits", acc: float = 0.9, **kw) -> CheckpointMeta:
    return CheckpointMeta(arch=arch, task=kw.pop("task", "image classification"), dataset=dataset,
                          metrics=(Metric("acc", acc, ""),), **kw)


@pytest.fixture
def zoo(registry_url):
    with open_zoo() as z:
        yield z


def test_add_returns_a_plain_record_and_stores_blob_and_vectors(zoo):
    w = weights()
    result = zoo.add_weights(w, meta(tags=("b", "a"), license="MIT", source="unit test"))
    rec = result.checkpoint
    assert result.created and rec.id >= 1 and rec.arch == MLP and rec.dataset == "toy-digits"
    assert rec.metrics == (Metric("acc", 0.9, "toy-digits"),)  # metric dataset defaults to the record's
    assert rec.tags == ("a", "b") and rec.license == "MIT" and rec.kind == "imported"
    assert rec.n_params == sum(t.numel() for t in w.values() if t.is_floating_point())
    assert zoo.blobs.verify(rec.sha256) and zoo.blobs.path(rec.sha256).stat().st_size == rec.size_bytes
    loaded = zoo.load_weights(rec.id)
    assert loaded.keys() == w.keys() and all(torch.equal(loaded[k], w[k]) for k in w)
    vec = zoo.text_embedding(rec.id)
    assert vec.shape == (384,) and abs(np.linalg.norm(vec) - 1) < 1e-5
    assert zoo.get(rec.id) == rec and zoo.get_many([rec.id]) == [rec]


def test_add_is_idempotent_and_shares_blobs(zoo):
    w = weights()
    first = zoo.add_weights(w, meta())
    again = zoo.add_weights({k: v.clone() for k, v in w.items()}, meta())
    assert not again.created and again.checkpoint == first.checkpoint
    other = zoo.add_weights(w, meta(dataset="fashion-mnist"))  # same weights, other metadata
    assert other.created and other.checkpoint.sha256 == first.checkpoint.sha256
    assert len(zoo.list()) == 2 and len(list(zoo.blobs)) == 1


def test_add_many_batches_and_reports_refusals(zoo):
    items = [(weights(seed=i), meta(acc=0.5 + i / 10)) for i in range(5)]
    items.insert(2, ({"nope": torch.zeros(1)}, meta()))
    refused = []
    results = zoo.add_many(items, batch=3, on_error=lambda pos, err: refused.append((pos, type(err))))
    assert [r.created for r in results] == [True] * 5
    assert refused == [(2, CheckpointMismatch)]
    assert zoo.verify() == []
    again = zoo.add_many(items[:2])
    assert [r.created for r in again] == [False, False]


def test_add_many_without_on_error_adds_the_items_before_the_bad_one(zoo):
    items = [(weights(seed=1), meta()), ({"nope": torch.zeros(1)}, meta()), (weights(seed=2), meta(acc=0.2))]
    with pytest.raises(CheckpointMismatch):
        zoo.add_many(items)
    assert [r.metric("acc") for r in zoo.list()] == [0.9]
    assert zoo.verify() == []


def test_list_filters_sort_and_limit(zoo):
    zoo.add_weights(weights(MLP, 1), meta(MLP, "toy-digits", 0.95, tags=("prod",)))
    zoo.add_weights(weights(MLP, 2), meta(MLP, "my-data", 0.70))
    zoo.add_weights(weights(CNN, 3), meta(CNN, "toy-digits", 0.85, kind="trained"))
    names = lambda recs: [(r.arch, r.dataset, r.metric("acc")) for r in recs]  # noqa: E731
    assert names(zoo.list(sort="acc")) == [(MLP, "toy-digits", 0.95), (CNN, "toy-digits", 0.85), (MLP, "my-data", 0.7)]
    assert names(zoo.list(sort="acc", descending=False, limit=1)) == [(MLP, "my-data", 0.7)]
    assert names(zoo.list(dataset="toy-digits", arch=[MLP, CNN], sort="acc")) == [(MLP, "toy-digits", 0.95),
                                                                              (CNN, "toy-digits", 0.85)]
    assert names(zoo.list(where=["acc>=0.8", "acc<0.9"])) == [(CNN, "toy-digits", 0.85)]
    best = [(MLP, "toy-digits", 0.95), (CNN, "toy-digits", 0.85)]
    assert names(zoo.list(where="acc@toy-digits>=0.8", sort="acc")) == best
    assert names(zoo.list(where="acc@my-data>=0.8")) == []
    assert names(zoo.list(tags="prod")) == [(MLP, "toy-digits", 0.95)]
    assert names(zoo.list(kind="trained")) == [(CNN, "toy-digits", 0.85)]
    assert names(zoo.list(task="nope")) == []
    assert [r.id for r in zoo.list(sort="n_params", descending=False)][0] == zoo.list(arch=CNN)[0].id


def test_filters_take_shell_patterns(zoo):
    zoo.add_weights(weights(MLP, 1), meta(MLP, "toy_digits", tags=("run_1",)))
    zoo.add_weights(weights(CNN, 2), meta(CNN, "toyXdigits", tags=("run-2",)))
    archs = lambda **kw: sorted(r.arch for r in zoo.list(**kw))  # noqa: E731
    assert archs(arch="cnn-*") == [CNN] and archs(arch=["mlp-*", "cnn-*"]) == sorted([MLP, CNN])
    assert archs(arch="CNN-*") == []  # case-sensitive on every backend
    assert archs(dataset="toy_digits") == [MLP]  # '_' is literal
    assert archs(dataset="toy?digits") == sorted([MLP, CNN]) and archs(dataset="toy%digits") == []
    assert archs(tags="run_*") == [MLP] and archs(tags="run?2") == [CNN]
    assert [h.checkpoint.arch for h in zoo.query("digits", arch="mlp-i64-*")] == [MLP]


def test_query_ranks_by_similarity_within_filters(zoo):
    a = zoo.add_weights(weights(MLP, 1), meta(MLP, "toy-digits", 0.9)).checkpoint
    b = zoo.add_weights(weights(CNN, 2), meta(CNN, "fashion-mnist", 0.8, task="clothing recognition")).checkpoint
    hits = zoo.query("clothing recognition fashion-mnist", k=2)
    assert [h.checkpoint.id for h in hits] == [b.id, a.id] and hits[0].score > hits[1].score
    assert [h.checkpoint.id for h in zoo.query("clothing", dataset="toy-digits")] == [a.id]
    assert [h.checkpoint.id for h in zoo.query("clothing", where="acc>0.85")] == [a.id]
    assert zoo.query("clothing", arch="mlp-i1-o1") == []
    assert len(zoo.query("anything", k=1)) == 1


def test_remove_keeps_a_blob_another_record_uses(zoo):
    w = weights()
    one = zoo.add_weights(w, meta()).checkpoint
    two = zoo.add_weights(w, meta(dataset="other")).checkpoint
    zoo.remove(one.id)
    assert zoo.blobs.has(two.sha256) and zoo.verify() == []
    with pytest.raises(NotFound):
        zoo.get(one.id)
    zoo.remove(two.id)
    assert not zoo.blobs.has(two.sha256) and zoo.list() == [] and zoo.verify() == []
    with pytest.raises(NotFound, match=f"#{two.id}"):
        zoo.remove(two.id)


def test_verify_finds_corruption_orphans_and_stale_index(zoo):
    rec = zoo.add_weights(weights(), meta()).checkpoint
    zoo.add_weights(weights(seed=5), meta(acc=0.1))
    assert zoo.verify() == []
    path = zoo.blobs.path(rec.sha256)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x55
    path.write_bytes(bytes(raw))
    (zoo.blobs.root / ("ab" * 32 + ".safetensors")).write_bytes(b"orphan")
    zoo.search.index(384).remove([rec.id])  # the cache loses a record behind the database's back
    zoo.search.index(384).save()
    problems = zoo.verify()
    assert any(rec.sha256 in p and "corrupted" in p for p in problems)
    assert any("orphan" in p for p in problems)
    assert any("out of step" in p and "reindex" in p for p in problems)
    assert zoo.reindex() == 2
    assert not any("out of step" in p for p in zoo.verify())
    assert zoo.add_weights(weights(), meta()).created is False  # adding the weights again repairs the blob
    zoo.blobs.delete("ab" * 32)
    assert zoo.verify() == []


def test_out_of_step_index_is_rebuilt_with_a_warning_on_query(registry_url):
    with open_zoo() as z:
        rec = z.add_weights(weights(), meta()).checkpoint
        z.add_weights(weights(seed=1), meta(dataset="x"))
        z.search.index(384).remove([rec.id])
        z.search.index(384).save()
    with open_zoo() as z, pytest.warns(UserWarning, match="out of step"):
        hits = z.query("toy-digits", k=5)
    assert rec.id in [h.checkpoint.id for h in hits]
    with open_zoo() as z, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert z.verify() == []


def test_failed_insert_after_blob_write_leaves_no_orphan(zoo, monkeypatch):
    def broken(*_a, **_k):
        raise RuntimeError("database went away")

    monkeypatch.setattr(zoo.store, "insert_many", broken)
    with pytest.raises(RuntimeError, match="went away"):
        zoo.add_weights(weights(), meta())
    assert list(zoo.blobs) == [] and zoo.blobs.temporaries() == []
    monkeypatch.undo()
    assert zoo.list() == [] and zoo.verify() == []


def test_failed_insert_keeps_a_blob_that_was_already_there(zoo, monkeypatch):
    w = weights()
    first = zoo.add_weights(w, meta()).checkpoint
    monkeypatch.setattr(zoo.store, "insert_many", lambda *_a, **_k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        zoo.add_weights(w, meta(dataset="other"))
    assert zoo.blobs.verify(first.sha256)


def test_failed_index_update_keeps_the_database_right(zoo, monkeypatch):
    monkeypatch.setattr("igpg_zoo.search.index.VectorIndex.save", lambda self: (_ for _ in ()).throw(OSError("ro")))
    with pytest.warns(UserWarning, match="reindex"):
        rec = zoo.add_weights(weights(), meta()).checkpoint
    monkeypatch.undo()
    assert zoo.get(rec.id) == rec
    assert any("reindex" in p for p in zoo.verify())
    zoo.reindex()
    assert zoo.verify() == []


@pytest.mark.parametrize("bad,error,match", [
    (dict(arch="no-such-arch"), UnknownArchitecture, "no adapter supports"),
    (dict(kind="stolen"), InvalidMetadata, "kind 'stolen'"),
    (dict(metrics=(Metric("acc", float("nan"), ""),)), InvalidMetadata, "finite number"),
    (dict(metrics=(Metric("acc", 1, "a"), Metric("acc", 2, "a"))), InvalidMetadata, "given twice"),
    (dict(extra={"f": object()}), InvalidMetadata, "JSON values"),
    (dict(parent_id=999), InvalidMetadata, "parent"),
    (dict(task=3), InvalidMetadata, "'task' must be text"),
    # text wider than its column: PostgreSQL refused it with a traceback, SQLite stored it
    (dict(name="n" * 513), InvalidMetadata, "name is 513 characters long"),
    (dict(dataset="d" * 600), InvalidMetadata, "dataset is 600 characters"),
    (dict(tags=("t" * 129,)), InvalidMetadata, "tag is 129 characters"),
    (dict(metrics=(Metric("m" * 129, 1.0, ""),)), InvalidMetadata, "metric is 129 characters"),
    (dict(license="l" * 257), InvalidMetadata, "license is 257"),
    (dict(source="from\x00here"), InvalidMetadata, "NUL character"),
])
def test_bad_metadata_writes_nothing(zoo, bad, error, match):
    fields = dict(arch=MLP, task="t", dataset="toy-digits")
    fields.update(bad)
    with pytest.raises(error, match=match):
        zoo.add_weights(weights(), CheckpointMeta(**fields))
    assert zoo.list() == [] and list(zoo.blobs) == []


def test_mismatched_weights_name_the_keys(zoo):
    w = weights()
    w.pop(next(iter(w)))
    w["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch, match="missing 1 key.*unexpected 1 key.*extra.weight"):
        zoo.add_weights(w, meta())
    assert zoo.list() == [] and list(zoo.blobs) == []


def test_lineage_extra_snapshot_and_embeddings(zoo):
    parent = zoo.add_weights(weights(), meta()).checkpoint
    child = zoo.add_weights(weights(seed=9), meta(parent_id=parent.id, kind="finetuned",
                                                  dataset_embedding=tuple([0.5] * 8))).checkpoint
    assert child.parent_id == parent.id and child.kind == "finetuned"
    np.testing.assert_allclose(zoo.dataset_embedding(child.id), [0.5] * 8)
    updated = zoo.update_extra(child.id, onnx_opset=17, parity={"max_abs": 1e-7})
    assert updated.extra == {"onnx_opset": 17, "parity": {"max_abs": 1e-7}} and zoo.get(child.id) == updated
    snap = zoo.snapshot()
    assert snap["ids"] == [parent.id, child.id] and len(snap["hash"]) == 64
    assert zoo.snapshot([child.id, parent.id]) == snap
    assert zoo.snapshot([parent.id])["hash"] != snap["hash"]
    zoo.remove(parent.id)
    assert zoo.get(child.id).parent_id is None  # the lineage link is cleared, the child stays


def test_known_dataset_gets_a_dataset_embedding(tmp_path):
    """A built-in dataset name gets igpg_zoo.data's dataset embedding (sklearn digits: seconds, once)."""
    with open_zoo() as z:
        rec = z.add_weights(weights(), meta(dataset="digits")).checkpoint
        vec = z.dataset_embedding(rec.id)
        assert vec is not None and vec.ndim == 1 and np.isfinite(vec).all()
        other = z.add_weights(weights(seed=1), meta(dataset="toy-digits")).checkpoint
        assert z.dataset_embedding(other.id) is None


def test_artifacts_are_versioned_blobs(zoo):
    tensors = {"codebook": torch.randn(4, 2)}
    with pytest.raises(NotFound, match="no tokenizer"):
        zoo.get_artifact(kind="tokenizer")
    first = zoo.add_artifact("tokenizer", "tok", tensors, {"dim": 2}, {"zoo": zoo.snapshot()})
    second = zoo.add_artifact("tokenizer", "tok", tensors, {"dim": 2}, {}, parent_id=first.id)
    prior = zoo.add_artifact("prior", "gpt", {"w": torch.ones(3)}, {}, {})
    assert zoo.get_artifact(kind="tokenizer") == second and second.parent_id == first.id
    assert zoo.get_artifact(first.id) == first and zoo.list_artifacts("prior") == [prior]
    assert torch.equal(zoo.load_artifact(second)["codebook"], tensors["codebook"])
    assert first.sha256 == second.sha256 and zoo.verify() == []


@pytest.mark.parametrize("between, second_tensors, second_parent, reused", [
    (False, "same", "same", True),   # a training re-run after an interruption: the newest, identical -> reused
    (False, "other", "same", False),  # other weights: a new version
    (False, "same", "none", False),  # same weights from another tokenizer: a new version
    (True, "same", "same", False),   # another prior registered in between: the re-run becomes the newest again
])
def test_reuse_newest_returns_the_identical_newest_artifact_instead_of_a_second_row(
        zoo, between, second_tensors, second_parent, reused):
    tok = zoo.add_artifact("tokenizer", "tok", {"c": torch.ones(2)}, {}, {})
    first = zoo.add_artifact("prior", "gpt", {"w": torch.ones(3)}, {}, {"run": 1}, parent_id=tok.id, reuse_newest=True)
    if between:
        zoo.add_artifact("prior", "gpt", {"w": torch.zeros(3)}, {}, {}, parent_id=tok.id)
    again = zoo.add_artifact("prior", "gpt", {"w": torch.ones(3) * (1 if second_tensors == "same" else 2)}, {},
                             {"run": 2}, parent_id=tok.id if second_parent == "same" else None, reuse_newest=True)
    assert (again == first) is reused and (again.provenance["run"] == 1) is reused
    assert len(zoo.list_artifacts("prior")) == 1 + between + (not reused)
    assert zoo.get_artifact(kind="prior") == again and zoo.verify() == []


def test_reads_of_a_missing_sqlite_registry_create_nothing(tmp_path):
    with open_zoo() as z:
        assert z.list() == [] and z.query("anything") == [] and z.verify() == []
        assert z.reindex() == 0 and z.reindex(reembed=True) == 0
        for refused in (z.get, z.remove):
            with pytest.raises(NotFound):
                refused(1)
    assert not (tmp_path / "registry.db").exists() and not (tmp_path / "blobs").exists()


@pytest.mark.parametrize("url,match", [
    ("foo://bar", "unknown database driver 'foo'"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open registry"),
    ("no/such/folder/registry.db", "does not exist"),
    (".", "is a folder, not a registry file"),  # was "unable to open database file; check that it is ..."
])
def test_unusable_registry_is_one_line_error_and_writes_nothing(tmp_path, url, match):
    with pytest.raises(RegistryUnavailable, match=match) as err:
        open_zoo(url)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_file_that_is_not_a_registry_is_one_line_error(tmp_path):
    (tmp_path / "notes.db").write_text("hello, not a database\n")
    with pytest.raises(RegistryUnavailable, match="file is not a database") as err:
        open_zoo("notes.db")
    assert "\n" not in str(err.value)
    assert (tmp_path / "notes.db").read_text() == "hello, not a database\n"


def test_changing_the_embedder_needs_reembed(registry_url):
    from igpg_zoo.errors import ConfigError

    with open_zoo(embedder="hash") as z:
        rec = z.add_weights(weights(), meta()).checkpoint
    with open_zoo(embedder="hash:64") as z:
        with pytest.raises(ConfigError, match="reindex --reembed"):
            z.query("toy digits")
        with pytest.raises(ConfigError, match="reindex --reembed"):
            z.add_weights(weights(seed=3), meta(dataset="other"))
        assert z.reindex(reembed=True) == 1
        assert z.text_embedding(rec.id).shape == (64,)
        assert [h.checkpoint.id for h in z.query("toy digits")] == [rec.id]
        assert z.verify() == []


@pytest.mark.parametrize("overfetch", [20, 1])
def test_filtered_query_equals_search_within_the_allowed_ids(zoo, monkeypatch, overfetch):
    """Filtered queries post-filter over-fetched candidates, falling back to the allowed ids; both give
    the exact top k of the records that pass."""
    monkeypatch.setattr("igpg_zoo.registry.search_cache.OVERFETCH", overfetch)
    monkeypatch.setattr("igpg_zoo.registry.search_cache.MIN_CANDIDATES", 50)
    base = weights()
    items = [({k: v + i for k, v in base.items()},
              meta(dataset=f"set{i % 50}", acc=(i % 10) / 10, task=f"task {i % 7}")) for i in range(300)]
    zoo.add_many(items, batch=100)
    from igpg_zoo.registry.filters import make_filters

    for kw in ({"dataset": "set3"}, {"dataset": ["set1", "set2"], "where": "acc>=0.5"}, {"where": "acc<0.3"},
               {"task": "task 2"}, {"dataset": "nope"}):
        got = [(h.checkpoint.id, round(h.score, 5)) for h in zoo.query("task 2 set3", k=5, **kw)]
        allowed = zoo.store.ids(make_filters(**kw))
        q = zoo.embedder.embed(["task 2 set3"])[0]
        want = zoo.search.index(384).search(q, 5, allowed) if len(allowed) else []
        assert got == [(i, round(s, 5)) for i, s in want], kw


def test_a_second_registry_cannot_use_a_blob_folder_another_owns(tmp_path):
    """Only the owner knows which blobs are still used: another registry beside it is refused."""
    from igpg_zoo.errors import ConfigError

    with open_zoo(str(tmp_path / "registry.db")) as main:
        rec = main.add_weights(weights(), meta()).checkpoint
    with open_zoo(str(tmp_path / "other.db")) as other:
        for action in (lambda: other.add_weights(weights(), meta()), lambda: other.remove(rec.id), other.verify):
            with pytest.raises(ConfigError, match="belongs to registry 'registry.db'"):
                action()
        assert other.list() == []
    with open_zoo(str(tmp_path / "other.db"), blobs=str(tmp_path / "other-blobs")) as other:
        assert other.add_weights(weights(), meta()).checkpoint.sha256 == rec.sha256 and other.verify() == []
    (tmp_path / "moved").mkdir()  # a registry and its folder move together
    for path in [*tmp_path.glob("registry.*"), tmp_path / "blobs"]:
        path.rename(tmp_path / "moved" / path.name)
    with open_zoo(str(tmp_path / "moved" / "registry.db")) as main:
        assert main.verify() == [] and main.load_weights(rec.id).keys() == weights().keys()
