"""Fine-tuning end to end on a tiny real zoo: lineage recorded, heads fitted to other class counts,
early stopping, the same schedule for every compared start, and a generated start."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARCH5 = "mlp-i64-h16-o5"
TASKS = ("digits[classes=0-4][n=200]", "digits[classes=5-9][n=200]")
USER_TASK = "digits[classes=1,2,6][rot=270][n=240]"  # in no zoo here: 3 classes, a transform


@pytest.fixture(scope="module")
def built(tmp_path_factory, add_trained):
    """A registry of 3 trained MLPs with dataset embeddings, and the user's 3-class .npz."""
    root = tmp_path_factory.mktemp("ft")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        from igpg_zoo.data import load_dataset
        from igpg_zoo.zoo import open_zoo

        (root / "zoo").mkdir()
        with open_zoo(str(root / "zoo" / "registry.db"), embedder="hash") as zoo:
            for task, seed in ((TASKS[0], 0), (TASKS[0], 1), (TASKS[1], 0)):
                add_trained(zoo, ARCH5, task, seed, epochs=3, embed=True, task_text=load_dataset(task).info.description)
        user = load_dataset(USER_TASK)
        np.savez(root / "user.npz", x=np.asarray(user.x_train)[:, 0], y=np.asarray(user.y_train))
    return root


@pytest.fixture
def zoo_dir(built, tmp_path, monkeypatch):
    """A private copy of the built registry (tests register into it) and the user's data beside it."""
    shutil.copytree(built / "zoo", tmp_path / "zoo")
    shutil.copy(built / "user.npz", tmp_path / "user.npz")
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", str(tmp_path / "zoo" / "registry.db"))
    return tmp_path


def _request(path, **kw):
    from igpg_zoo.finetune import FinetuneConfig, FinetuneRequest

    cfg = FinetuneConfig(**{"epochs": 2, **kw.pop("cfg", {})})
    return FinetuneRequest(path / "user.npz", config=cfg, **kw)


def test_finetuned_record_carries_parent_lineage_and_metrics(zoo_dir):
    from igpg_zoo.finetune import finetune
    from igpg_zoo.finetune.data import fingerprint, load
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        result = finetune(zoo, _request(zoo_dir, record_id=1))
        rec = zoo.get(result.record.id)
        weights = zoo.load_weights(rec.id)
    lineage = rec.extra["finetune"]
    assert (rec.kind, rec.parent_id, rec.arch) == ("finetuned", 1, "mlp-i64-h16-o3")
    assert lineage["data"]["fingerprint"] == fingerprint(load(zoo_dir / "user.npz"))
    assert lineage["hyper_parameters"]["epochs"] == 2 and lineage["start"]["record"] == 1
    assert lineage["curve"]["steps"][0] == 0 and len(lineage["curve"]["steps"]) == len(lineage["curve"]["val_acc"])
    assert rec.metric("acc") == pytest.approx(result.primary.test_acc)
    assert rec.metric("val_acc") == pytest.approx(max(lineage["curve"]["val_acc"]))
    assert all(torch.equal(weights[k], v) for k, v in result.weights.items())


@pytest.mark.parametrize("policy,head", [("fit", "fitted"), ("replace", "replaced"), ("auto", "fitted")])
def test_head_is_fitted_or_replaced_when_the_class_count_differs_and_the_body_is_kept(zoo_dir, policy, head):
    from igpg_zoo.finetune.data import load, split
    from igpg_zoo.finetune.head import adapt, seeded_module
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        parent = zoo.load_weights(1)
    sp = split(load(zoo_dir / "user.npz"), 0.2, 0)
    adapted = adapt(ARCH5, parent, sp.x_train, sp.y_train, 3, policy, seed=7)
    assert (adapted.arch, adapted.head) == ("mlp-i64-h16-o3", head)
    body = [k for k in parent if not k.startswith(adapted_head_prefix(adapted.arch))]
    assert body and all(torch.equal(adapted.weights[k], parent[k]) for k in body)
    fresh = seeded_module(adapted.arch, 7).state_dict()
    head_w = [k for k in adapted.weights if k not in body]
    assert all(adapted.weights[k].shape[0] == 3 for k in head_w)
    assert all(torch.equal(adapted.weights[k], fresh[k]) for k in head_w) == (policy == "replace")


def adapted_head_prefix(arch: str) -> str:
    from igpg_zoo.adapters import get_adapter

    return get_adapter(arch).head_names(arch)[0].rsplit(".", 1)[0] + "."


def test_keeping_a_head_of_another_class_count_is_refused(zoo_dir):
    from igpg_zoo.errors import ConfigError
    from igpg_zoo.finetune import finetune
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo, pytest.raises(ConfigError, match="--head keep"):
        finetune(zoo, _request(zoo_dir, record_id=1, cfg={"head": "keep"}))
    with open_zoo() as zoo:
        assert len(zoo.list()) == 3  # nothing registered


@pytest.mark.parametrize("lr,patience,stops", [(1e-9, 1, True), (1e-9, 0, False), (3e-3, 50, False)])
def test_early_stopping_on_the_held_out_part(zoo_dir, lr, patience, stops):
    from igpg_zoo.finetune import finetune
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        result = finetune(zoo, _request(zoo_dir, record_id=1, register=False,
                                        cfg={"lr": lr, "patience": patience, "epochs": 4}))
    t = result.primary.trained
    total = 4 * -(-result.data["n_train"] // 64)
    assert t.stopped_early is stops and (t.steps_run < total) is stops
    assert t.curve.val_acc[t.curve.steps.index(t.best_step)] == t.best_val == max(t.curve.val_acc)


def test_compare_runs_every_start_on_the_same_schedule(zoo_dir):
    from igpg_zoo.finetune import finetune
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        result = finetune(zoo, _request(zoo_dir, record_id=3, compare=("random", "retrieved"),
                                        cfg={"patience": 1, "budgets": (0, 5)}))
    cmp = result.comparison
    assert [r.label for r in result.runs] == ["record", "random", "retrieved"]
    assert len({tuple(r.trained.curve.steps) for r in result.runs}) == 1  # no early stop under compare
    assert cmp["reference"] == "random" and set(cmp["starts"]) == {"record", "random", "retrieved"}
    random_final = result.runs[1].trained.curve.val_acc[-1]
    assert cmp["target"] == pytest.approx(0.95 * random_final)
    for r in result.runs:
        row = cmp["starts"][r.label]
        assert set(row["at"]) == {"0", "5"} and row["at"]["0"] == r.trained.curve.val_acc[0]
        reached = [s for s, a in zip(r.trained.curve.steps, r.trained.curve.val_acc) if a >= cmp["target"]]
        assert row["steps_to_target"] == (reached[0] if reached else None)
    assert result.runs[2].start.parent_id in (1, 2, 3) and result.runs[1].head == "fresh"


def test_query_start_takes_the_best_hit_that_fits_the_data(zoo_dir):
    from igpg_zoo.finetune import finetune
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        result = finetune(zoo, _request(zoo_dir, query="handwritten digits 5 to 9", register=False))
    assert result.primary.start.kind == "query" and result.primary.start.parent_id in (1, 2, 3)


def test_without_a_named_start_the_run_starts_from_the_answer_for_the_data(zoo_dir):
    from igpg_zoo.finetune import finetune
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        result = finetune(zoo, _request(zoo_dir, register=False, compare=("random",)))
        start = result.primary.start
        assert start.kind == "answer" and start.facts["choice"] == "retrieved"  # no generator is trained here
        assert start.parent_id in (1, 2, 3) and start.facts["record"] == start.parent_id
        assert start.facts["reason"] and zoo.answers.list() == []  # asked, not recorded
    assert [r.label for r in result.runs] == ["answer", "random"]


def test_generated_start_uses_the_trained_generator(zoo_dir):
    from igpg_zoo.finetune import finetune
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
    from igpg_zoo.igpg.recipe import Recipe
    from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        items = [(zoo.load_weights(r.id), r.arch) for r in zoo.list()]
        tok, _ = fit_tokenizer(items, TokenizerConfig(chunk_size=64, tokens_per_chunk=2, codebook_size=16, hidden=(16,),
                                                      code_dim=8, steps=20, refine_steps=0, batch_size=8),
                               seed=0, progress=False)
        tensors, config = tok.state()
        zoo.add_artifact("tokenizer", "tiny", tensors, config, {"snapshot": zoo.snapshot()})
        train_prior(zoo, Recipe(prior={"n_layer": 1, "n_embd": 16, "n_head": 2, "block_size": 8, "window_context": 3},
                                train=PriorTrainConfig(steps=5, batch_size=4, warmup=1)))
        result = finetune(zoo, _request(zoo_dir, generated=True, compare=("generated", "random"),
                                        cfg={"draws": 2, "max_steps": 6}))
        rec = zoo.get(result.record.id)
    assert [r.label for r in result.runs] == ["generated", "random"]  # the named start is not run twice
    assert rec.parent_id is None and rec.extra["finetune"]["start"]["kind"] == "generated"
    assert rec.extra["finetune"]["start"]["prior_artifact_id"] is not None and rec.arch == "mlp-i64-h16-o3"


def test_too_little_memory_is_refused_before_training(zoo_dir, monkeypatch):
    from igpg_zoo.errors import DatasetError
    from igpg_zoo.finetune import data, finetune
    from igpg_zoo.zoo import open_zoo

    monkeypatch.setattr(data, "available_bytes", lambda: 1024)
    with open_zoo() as zoo, pytest.raises(DatasetError, match="GiB are free"):
        finetune(zoo, _request(zoo_dir, record_id=1))
    with open_zoo() as zoo:
        assert len(zoo.list()) == 3
