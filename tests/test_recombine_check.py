"""Checked recombination on a tiny real zoo: which swaps are offered, which pass the check (decoded and
scored on a training sample, never the test split), and that training only ever shows the kept ones."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.errors import GeneratorError

ARCH = "mlp-i64-h8-o3"  # 547 parameters -> 10 chunks of 64 -> 20 tokens, 10 finest codes
TASK = "digits[classes=0,1,2]"

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_token_zoo):
    """(zoo, tokenizer, records, TokenSet): 4 trained members of one task, a 2-stage residual tokenizer."""
    with tiny_token_zoo(tmp_path_factory.mktemp("check"), ARCH, [(seed, TASK, True) for seed in range(4)]) as built:
        yield built[:4]


def test_candidates_are_the_siblings_other_finest_codes(tiny):
    from igpg_zoo.igpg.curation.swaps import candidate_swaps

    _, _, _, data = tiny
    for i in range(len(data)):
        cands = candidate_swaps(data, i)
        assert all(pos % 2 == 1 for pos, _ in cands)  # finest positions only (2 tokens per chunk)
        expected = {(pos, int(data.tokens[j][pos])) for j in data.siblings[i] for pos in range(1, len(data.tokens[i]), 2)
                    if int(data.tokens[j][pos]) != int(data.tokens[i][pos])}
        assert set(cands) == expected and len(cands) == len(expected)


def test_kept_swaps_are_exactly_those_within_tol_on_the_training_sample(tiny, probe_accuracy):
    from igpg_zoo.igpg.curation.swaps import candidate_swaps, check_swaps

    _, tokenizer, records, data = tiny
    allowed, stats = check_swaps(tokenizer, records, data, tol=0.0, per_record=1000)
    assert stats.checked == stats.candidates == sum(len(candidate_swaps(data, i)) for i in range(len(data)))
    verdicts = []
    for i in range(len(data)):
        own = probe_accuracy(tokenizer, data.tokens[i], ARCH, TASK)
        for pos, code in candidate_swaps(data, i):
            t = data.tokens[i].clone()
            t[pos] = code
            verdicts.append(probe_accuracy(tokenizer, t, ARCH, TASK) >= own - 1e-9)
            assert (code in allowed[i].get(pos, ())) == verdicts[-1]
    assert any(verdicts) and not all(verdicts)  # the check separates swaps here
    assert stats.kept == sum(verdicts) and stats.records_without_data == 0


@pytest.mark.parametrize("tol, per_record", [(1.0, 1000), (1.0, 3), (0.0, 3)])
def test_a_cap_checks_a_seeded_subset_and_a_loose_tol_keeps_everything_checked(tiny, tol, per_record):
    from igpg_zoo.igpg.curation.swaps import check_swaps

    _, tokenizer, records, data = tiny
    a, stats = check_swaps(tokenizer, records, data, tol=tol, per_record=per_record, seed=5)
    b, _ = check_swaps(tokenizer, records, data, tol=tol, per_record=per_record, seed=5)
    assert a == b  # the same subset for the same seed
    if tol == 1.0 and per_record == 3:
        c, _ = check_swaps(tokenizer, records, data, tol=tol, per_record=per_record, seed=6)
        assert c != a  # another seed, another subset
    assert stats.checked == min(stats.candidates, per_record * len(data))
    assert all(sum(len(v) for v in kept.values()) <= per_record for kept in a)
    if tol == 1.0:
        assert stats.kept == stats.checked


def test_a_record_whose_dataset_does_not_load_recombines_nothing(tiny):
    from dataclasses import replace

    from igpg_zoo.igpg.curation.swaps import check_swaps

    _, tokenizer, records, data = tiny
    broken = [replace(records[0], dataset="no_such_dataset")] + list(records[1:])
    allowed, stats = check_swaps(tokenizer, broken, data, tol=1.0, per_record=1000)
    assert allowed[0] == {} and stats.records_without_data == 1
    assert all(allowed[i] for i in range(1, len(data)))


def test_the_check_never_reads_the_test_split(tiny, forbid_test_split):
    from igpg_zoo.igpg.curation.swaps import check_swaps

    _, tokenizer, records, data = tiny

    def kept(allowed_stats):  # what was kept and counted; the seconds vary with the machine's load
        allowed, stats = allowed_stats
        return allowed, {**stats.to_dict(), "seconds": None}

    expected = kept(check_swaps(tokenizer, records, data, tol=0.0, per_record=1000))
    forbid_test_split()
    assert kept(check_swaps(tokenizer, records, data, tol=0.0, per_record=1000)) == expected


def test_batchnorm_statistics_are_re_estimated_on_the_sample_as_generate_does():
    import numpy as np

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.igpg.curation.probe import Probe
    from igpg_zoo.igpg.probe import accuracy_on, build_loaded

    arch = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"
    ds = load_dataset("digits")
    x = torch.tensor(np.asarray(ds.x_train[:200]), dtype=torch.float32)
    y = torch.tensor(np.asarray(ds.y_train[:200]), dtype=torch.long)
    torch.manual_seed(0)
    state = get_adapter(arch).build(arch).state_dict()
    for name in state:
        if name.endswith(("running_mean", "running_var")):
            state[name] = state[name] + 50.0  # statistics no decoded model can be trusted with
    expected = accuracy_on(build_loaded(arch, dict(state), x), x, y)
    assert Probe(arch, (x, y)).accuracy_of_state(dict(state)) == pytest.approx(expected)


def _check_on_rank(tokenizer, records, data) -> dict:
    from igpg_zoo.igpg.curation.swaps import allowed_digest, check_swaps

    allowed, stats = check_swaps(tokenizer, records, data, tol=0.0, per_record=1000)
    return {"digest": allowed_digest(allowed), "kept": stats.kept, "checked": stats.checked}


@pytest.mark.slow  # two spawned interpreters import torch: ~15 s quiet
def test_two_gloo_ranks_share_the_check_and_agree_with_one_process(tiny, on_two_gloo_ranks):
    zoo, tokenizer, records, data = tiny
    ranks = on_two_gloo_ranks(zoo, tokenizer, _check_on_rank)
    assert ranks[0] == ranks[1] == _check_on_rank(tokenizer, records, data)


def test_training_draws_only_kept_swaps(tiny):
    from igpg_zoo.igpg.curation.swaps import check_swaps

    _, tokenizer, records, data = tiny
    allowed, _ = check_swaps(tokenizer, records, data, tol=0.0, per_record=1000)
    checked = data.with_allowed(allowed)
    gen, seen = torch.Generator().manual_seed(0), set()
    for _ in range(300):
        for i in range(len(data)):
            out = checked.recombined(i, 4.0, gen)
            for pos in torch.nonzero(out != data.tokens[i]).flatten().tolist():
                assert int(out[pos]) in allowed[i][pos]
                seen.add((i, pos, int(out[pos])))
    assert seen == {(i, pos, c) for i, kept in enumerate(allowed) for pos, codes in kept.items() for c in codes}


def _recipe(**train):
    from igpg_zoo.igpg.prior_train import PriorTrainConfig
    from igpg_zoo.igpg.recipe import Recipe

    return Recipe(prior={"n_layer": 1, "n_embd": 16, "n_head": 1},
                  train=PriorTrainConfig(batch_size=4, warmup=1, recombine=2.0, **train))


def test_train_prior_records_the_check_and_a_resume_must_match_it(tiny, tmp_path):
    from igpg_zoo.igpg.prior_train import train_prior

    zoo, tokenizer, _, _ = tiny
    art = train_prior(zoo, _recipe(steps=4, recombine_tol=0.02), tokenizer_id=tokenizer.artifact_id,
                      ckpt=tmp_path / "p.pt")
    check = art.provenance["recombine_check"]
    assert check["tol"] == 0.02 and 0 < check["kept"] <= check["checked"] <= check["candidates"]
    assert art.config["train"]["recombine_tol"] == 0.02
    resumed = train_prior(zoo, _recipe(steps=6, recombine_tol=0.02), tokenizer_id=tokenizer.artifact_id,
                          ckpt=tmp_path / "p.pt", resume=True)
    assert resumed.provenance["resumed_from"] == 4  # the same check: the same run
    checked = []
    with pytest.raises(GeneratorError, match="another run"):
        train_prior(zoo, _recipe(steps=6, recombine_tol=0.05), tokenizer_id=tokenizer.artifact_id,
                    ckpt=tmp_path / "p.pt", resume=True, curation_progress=lambda done, total: checked.append(done))
    assert checked == []  # refused before the check spent any time


@pytest.mark.parametrize("train, message", [
    ({"recombine_tol": -0.1}, "recombine_tol -0.1 (in [0, 1])"),
    ({"recombine_tol": float("nan")}, "recombine_tol nan (in [0, 1])"),
    ({"recombine": 0.0, "recombine_tol": 0.02}, "set recombine > 0"),
    ({"recombine_tol": 0.02, "recombine_checks": 0}, "recombine_checks 0 (>= 1)"),
])
def test_the_library_and_the_cli_refuse_a_bad_check(train, message, tmp_path, cli, tiny_recipe):
    import math
    import re

    from igpg_zoo.errors import ConfigError
    from igpg_zoo.igpg.prior_train import PriorTrainConfig

    with pytest.raises(ConfigError, match=re.escape(message)):
        PriorTrainConfig(**train)
    yaml_train = {k: (".nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in train.items()}
    path = tmp_path / "bad.yaml"
    path.write_text("train: {" + ", ".join(f"{k}: {v}" for k, v in yaml_train.items()) + "}\n")
    result = cli("train", "--stage", "prior", "--config", path, "--registry", tmp_path / "r.db")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")
    assert not (tmp_path / "r.db").exists()
