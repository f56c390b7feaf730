"""`igpg-zoo zoo build`: the tiny preset end to end, resumability, determinism, lineage, trainer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from igpg_zoo.zoobuild import build as build_mod
from igpg_zoo.zoobuild.build import build_zoo
from igpg_zoo.zoobuild.plan import plan_runs
from igpg_zoo.zoobuild.presets import PRESETS, get_preset


def _open(path):
    from igpg_zoo.zoo import open_zoo

    return open_zoo(str(path))


def test_tiny_through_the_cli_then_resume(cli, tmp_path):
    first = cli("zoo", "build", "--preset", "tiny", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout.strip().splitlines()[-1])
    runs = plan_runs(get_preset("tiny"))
    expected = sum(len(r.kept_epochs) for r in runs)
    assert report["added"] == report["checkpoints"] == expected and report["trained"] == len(runs)
    second = cli("zoo", "build", "--preset", "tiny", "--json")
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert again["added"] == 0 and again["trained"] == 0 and again["skipped"] == len(runs)
    with _open(tmp_path / "registry.db") as zoo:
        records = zoo.list()
        assert len(records) == expected
        for rec in records:
            acc = rec.metric("acc")
            assert 0.0 <= acc <= 1.0 and rec.metrics[0].dataset == f"{rec.dataset}:test"
            assert rec.task.startswith("classify 8x8 images of handwritten digits")
            assert zoo.dataset_embedding(rec.id).shape == (772,)
    listed = cli("list", "--json")
    assert listed.exit_code == 0


def test_lineage_kinds_and_tags(tmp_path):
    with _open(tmp_path / "r.db") as zoo:
        build_zoo(zoo, "tiny")
        records = zoo.list()
        by_id = {r.id: r for r in records}
        members = {t.split(":")[1] for r in records for t in r.tags if t.startswith("member:")}
        assert members == {"base", "finetuned", "independent"}
        for rec in records:
            if "member:finetuned" in rec.tags:
                parent = by_id[rec.parent_id]
                assert rec.kind == "finetuned" and parent.kind == "trained"
                assert "member:base" in parent.tags and "final" in parent.tags
            else:
                assert rec.kind == "trained" and rec.parent_id is None
            assert any(t.startswith("epoch:") for t in rec.tags) and "preset:tiny" in rec.tags


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    shas = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        (tmp_path / name).mkdir()
        with _open(tmp_path / name / "registry.db") as zoo:
            build_zoo(zoo, "tiny", seed=seed)
            shas.append(sorted(r.sha256 for r in zoo.list()))
    assert shas[0] == shas[1]
    assert not set(shas[0]) & set(shas[2])


def test_interrupted_build_leaves_complete_records_and_resumes(tmp_path, monkeypatch):
    real = build_mod.train_run
    calls = []

    def crash_on_third(run, start=None):
        calls.append(run.run_id)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(run, start)

    monkeypatch.setattr(build_mod, "train_run", crash_on_third)
    with _open(tmp_path / "r.db") as zoo:
        with pytest.raises(KeyboardInterrupt):
            build_zoo(zoo, "tiny")
        partial = zoo.list()
        assert len(partial) == 4  # two runs x two kept epochs, each record whole
        assert zoo.verify() == []
    monkeypatch.setattr(build_mod, "train_run", real)
    with _open(tmp_path / "r.db") as zoo:
        report = build_zoo(zoo, "tiny")
        assert report.skipped == 2 and report.trained == len(plan_runs(get_preset("tiny"))) - 2
        assert {r.id for r in partial} <= {r.id for r in zoo.list()}


@pytest.mark.parametrize("preset, min_ckpts, min_tasks, min_archs", [("demo", 200, 10, 3), ("full", 600, 25, 3)])
def test_preset_sizes(preset, min_ckpts, min_tasks, min_archs):
    runs = plan_runs(PRESETS[preset])
    assert sum(len(r.kept_epochs) for r in runs) >= min_ckpts
    assert len({r.task for r in runs}) >= min_tasks
    assert len({r.arch.split("-o")[0] for r in runs}) >= min_archs
    assert len({r.run_id for r in runs}) == len(runs)
    assert {r.member for r in runs} == {"base", "finetuned", "independent"}


def test_full_preset_marks_holdout_tasks():
    runs = plan_runs(PRESETS["full"])
    held = {r.task for r in runs if r.holdout}
    assert len(held) == len(PRESETS["full"].holdout) and all(r.member != "base" for r in runs if r.holdout)


def test_unknown_preset_is_a_one_line_error(cli):
    result = cli("zoo", "build", "--preset", "huge")
    assert result.exit_code == 2 and "unknown zoo preset 'huge'" in result.stderr


def test_trainer_is_deterministic_and_learns():
    import torch

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module

    ds = load_dataset("digits[classes=0,1]")
    arch = "mlp-i64-h8-o2"
    weights = []
    for _ in range(2):
        m = init_module(get_adapter(arch).build(arch), seed=3)
        fit(m, ds.x_train, ds.y_train, epochs=3, lr=1e-2, batch_size=32, seed=7)
        weights.append({k: v.clone() for k, v in m.state_dict().items()})
        assert accuracy(m, ds.x_test, ds.y_test) > 0.9
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    epochs = []
    fit(init_module(get_adapter(arch).build(arch), 3), ds.x_train, ds.y_train, steps=25, batch_size=32,
        on_epoch=lambda e, m: epochs.append(e))
    assert epochs == [1, 2, 3]  # 12 batches per epoch: 25 steps end inside epoch 3


def test_datasets_command_lists_availability(cli):
    result = cli("datasets", "--json")
    assert result.exit_code == 0
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["digits"]["available"] is True and rows["mnist1d"]["input_shape"] == [1, 40]
    assert isinstance(rows["fashion_mnist"]["available"], bool)
    one = cli("datasets", "digits[classes=3,5,8]", "--json")
    assert json.loads(one.stdout)["classes"] == ["3", "5", "8"]
    bad = cli("datasets", "digits[rot=45]")
    assert bad.exit_code == 2 and "90, 180 or 270" in bad.stderr


def test_datasets_command_describes_user_data(cli, tmp_path):
    (tmp_path / "t.csv").write_text("a,kind\n" + "".join(f"{i},{'xy'[i % 2]}\n" for i in range(10)))
    ok = cli("datasets", "--data", tmp_path / "t.csv", "--label", "kind", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["classes"] == ["x", "y"]
    bad = cli("datasets", "--data", tmp_path / "t.csv")
    assert bad.exit_code == 2 and "no label column 'label'; columns: a, kind" in bad.stderr
