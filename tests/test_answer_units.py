"""The answer's parts: the sample split, which architecture takes the data, estimates, diversification,
the decision, and that the CLI module imports nothing heavy."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from igpg_zoo.data.userdata import build_dataset


def _blobs(n_classes: int, n: int = 300, informative: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    centres = rng.normal(size=(n_classes, 16)) * 3
    x = rng.normal(size=(n, 16)) + (centres[y] if informative else 0.0)
    return x, y


def _sample(n_classes=3, **kw):
    from igpg_zoo.answer.sample import split_sample

    x, y = _blobs(n_classes, **kw)
    return split_sample(build_dataset(x, y, "blobs", "blobs.npz"), probe=200, held_fraction=0.3)


def test_the_sample_splits_the_training_part_only_and_fingerprints_it():
    from igpg_zoo.answer.sample import split_sample

    x, y = _blobs(3)
    ds = build_dataset(x, y, "blobs", "blobs.npz")
    s = split_sample(ds, probe=200, held_fraction=0.3)
    assert len(s.y_fit) + len(s.y_held) == 200 and set(s.y_held) == {0, 1, 2}
    train_rows = {r.tobytes() for r in ds.x_train}
    assert all(r.tobytes() in train_rows for r in np.concatenate([s.x_fit, s.x_held]))  # never the test split
    assert not {r.tobytes() for r in s.x_fit} & {r.tobytes() for r in s.x_held}
    assert split_sample(ds, probe=200, held_fraction=0.3).fingerprint == s.fingerprint
    assert split_sample(ds, probe=200, held_fraction=0.3, seed=1).fingerprint != s.fingerprint


@pytest.mark.parametrize("arch, shape, classes, expect", [
    ("mlp-i16-h8-o3", (16,), 3, "mlp-i16-h8-o3"),
    ("mlp-i16-h8-o3", (16,), 5, "mlp-i16-h8-o5"),  # resized head
    ("mlp-i16-h8-o3", (16,), 2, "mlp-i16-h8-o2"),
    ("mlp-i16-h8-o3", (4,), 3, None),  # the input does not fit
    ("cnn-i1x8x8-c4k3-o10", (1, 8, 8), 4, "cnn-i1x8x8-c4k3-o4"),
    ("cnn-i1x8x8-c4k3-o10", (64,), 4, None),
])
def test_target_arch(arch, shape, classes, expect):
    from igpg_zoo.answer.heads import target_arch

    assert target_arch(arch, shape, classes) == expect


def test_transplant_keeps_the_body_and_replaces_the_head():
    import torch

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.answer.heads import transplant

    torch.manual_seed(3)
    w = get_adapter("mlp-i16-h8-o3").build("mlp-i16-h8-o3").state_dict()
    out = transplant(w, "mlp-i16-h8-o3", "mlp-i16-h8-o5")
    heads = set(get_adapter("mlp-i16-h8-o5").head_names("mlp-i16-h8-o5"))
    assert all(torch.equal(out[k], w[k]) for k in w if k not in heads)
    assert all(out[k].shape[0] == 5 for k in heads)
    get_adapter("mlp-i16-h8-o5").build("mlp-i16-h8-o5").load_state_dict(out, strict=True)


@pytest.mark.parametrize("estimate", ["ridge", "knn", "logme", "margin", "loo_acc", "loo_margin"])
def test_every_estimate_prefers_features_that_carry_the_labels(estimate):
    from igpg_zoo.answer.estimate import estimates, score_features

    good, bad = _sample(informative=True), _sample(informative=False)
    g = score_features(good.x_fit, good.x_held, good, 3, estimate, 1e-2).value
    b = score_features(bad.x_fit, bad.x_held, bad, 3, estimate, 1e-2).value
    assert g > b
    assert estimates(good.x_fit, good.x_held, good, 3, 1e-2)[estimate] == pytest.approx(g)  # the bench's values


def test_the_settings_name_every_estimate_and_default_to_one():
    from igpg_zoo.answer.estimate import estimates
    from igpg_zoo.answer.settings import ESTIMATES, AnswerSettings, SelectSettings

    s = _sample()
    assert set(ESTIMATES) <= estimates(s.x_fit, s.x_held, s, 3, 1e-2).keys()
    assert AnswerSettings().estimate == SelectSettings().estimate and AnswerSettings().estimate in ESTIMATES


@pytest.mark.parametrize("n, d, classes, seed", [(40, 5, 2, 0), (60, 7, 3, 1), (30, 40, 4, 2)])  # d > n too
def test_leave_one_out_scores_equal_refitting_without_each_sample(n, d, classes, seed):
    from igpg_zoo.answer.estimate import LOO_GRID, loo_scores, mean_margin

    rng = np.random.default_rng(seed)
    F, y = rng.normal(size=(n, d)), np.arange(n) % classes
    got = loo_scores(F, y, classes)
    A, Y = np.c_[F, np.ones(n)], np.eye(classes)[y]
    lam = got["loo_ridge"] * (np.linalg.svd(A, compute_uv=False) ** 2).sum() / A.shape[1]
    assert got["loo_ridge"] in LOO_GRID
    pred = np.array([A[i] @ np.linalg.solve(A[np.arange(n) != i].T @ A[np.arange(n) != i] + lam * np.eye(d + 1),
                                            A[np.arange(n) != i].T @ Y[np.arange(n) != i]) for i in range(n)])
    assert got["loo_acc"] == pytest.approx(float((pred.argmax(1) == y).mean()))
    assert got["loo_margin"] == pytest.approx(mean_margin(pred, y), abs=1e-8)


@pytest.mark.parametrize("outputs, y, expect", [
    ([[1.0, 0.0], [0.2, 0.6]], [0, 1], 0.7),  # (1 - 0 + 0.6 - 0.2) / 2
    ([[0.0, 1.0, 0.5]], [0], -1.0),
])
def test_mean_margin(outputs, y, expect):
    from igpg_zoo.answer.estimate import mean_margin

    assert mean_margin(np.array(outputs), np.array(y)) == pytest.approx(expect)


def test_outputs_beyond_the_users_classes_never_win():
    from igpg_zoo.answer.heads import predict, ridge_solve

    s = _sample(n_classes=2)
    W = ridge_solve(s.x_fit, s.y_fit, 5, 1e-2)
    assert set(predict(s.x_held, W)) <= {0, 1}


def _cand(task, arch, acc, rid):
    from igpg_zoo.answer.candidates import Candidate
    from igpg_zoo.records import Checkpoint, Metric

    rec = Checkpoint(rid, f"m{rid}", arch, task, task, 10, (Metric("acc", acc, task),), (), "", "", "", "0" * 64, 1)
    return Candidate("retrieved", arch, rec, data_similarity=1.0 - rid / 100)


def test_diversify_keeps_the_best_measured_member_of_each_group_in_group_order():
    from igpg_zoo.answer.candidates import diversify

    found = [_cand("a", "x", 0.5, 1), _cand("a", "x", 0.9, 2), _cand("b", "x", 0.7, 3), _cand("a", "y", 0.1, 4),
             _cand("a", "x", 0.8, 5)]
    kept = diversify(found)
    assert [(c.record.id, c.group_size) for c in kept] == [(2, 3), (3, 1), (4, 1)]
    assert kept[0].data_similarity == found[0].data_similarity  # the group keeps its first position's score


@pytest.mark.parametrize("r, g, mode, has_data, choice", [
    (0.9, 0.8, "auto", True, "retrieved"), (0.8, 0.9, "auto", True, "generated"),
    (0.9, 0.9, "auto", True, "retrieved"),  # a tie goes to the measured member
    (0.9, 0.95, "retrieve", True, "retrieved"), (0.95, 0.9, "generate", True, "generated"),
    (None, None, "auto", False, "retrieved"),
])
def test_decision(r, g, mode, has_data, choice):
    from igpg_zoo.answer.candidates import Candidate
    from igpg_zoo.answer.decide import decide

    ret = _cand("a", "x", 0.9, 1)
    ret.estimate = r
    gen = Candidate("generated", "x", draw={"arch": "x", "index": 0, "log_likelihood": -40.0, "nearest": {}})
    gen.estimate = g
    d = decide([ret], [gen], mode, has_data)
    assert d.choice == choice and d.chosen is (ret if choice == "retrieved" else gen)
    if has_data and mode == "auto":
        assert f"{r:.3f}" in d.reason and f"{g:.3f}" in d.reason


def test_the_cli_modules_import_nothing_heavy():
    code = ("import sys, igpg_zoo.cli.answer_cmds, igpg_zoo.answer; "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
