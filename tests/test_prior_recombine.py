"""Recombined finest codes in prior training: which tokens move, how many, to what, and what a prior
trained on them samples (new sequences next to the members instead of the members)."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.errors import ConfigError
from igpg_zoo.igpg import prior_checkpoint
from igpg_zoo.igpg.prior import Prior, PriorConfig
from igpg_zoo.igpg.prior_dataset import TokenSet, sibling_lists
from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior
from igpg_zoo.igpg.sampling import SamplingSettings, sample_tokens

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TEXT = 8


def _cond(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"task": torch.randn(TEXT, generator=g), "data": torch.randn(4, generator=g),
            "arch_text": torch.ones(TEXT), "arch_struct": torch.tensor([1.0])}


def _set(seqs: list[list[int]], keys: list, stages: int) -> TokenSet:
    conds = {k: _cond(i) for i, k in enumerate(dict.fromkeys(keys))}
    return TokenSet([torch.tensor(s) for s in seqs], [conds[k] for k in keys], list(range(len(seqs))),
                    sibling_lists(keys), stages)


@pytest.mark.parametrize("keys, expected", [
    (["a", "b", "a", "a"], [[2, 3], [], [0, 3], [0, 2]]),
    ([("iris", "mlp"), ("iris", "cnn"), ("iris", "mlp")], [[2], [], [0]]),
    (["x"], [[]]),
])
def test_siblings_are_the_other_records_of_the_same_condition(keys, expected):
    assert sibling_lists(keys) == expected


# 4 chunks x 3 stages; every member has its own codes everywhere, so every swap is visible
MEMBERS = [[10 * m + j for j in range(12)] for m in range(1, 5)]
FINEST = {2, 5, 8, 11}


@pytest.mark.parametrize("rate, swaps", [(0.5, 0.5), (1.0, 1.0), (2.0, 2.0), (4.0, 4.0), (9.0, 4.0)])
def test_recombination_swaps_rate_finest_codes_per_sequence_for_siblings_codes(rate, swaps):
    data = _set(MEMBERS, ["k"] * 4, stages=3)
    gen = torch.Generator().manual_seed(0)
    counts = []
    for _ in range(2000):
        out = data.recombined(0, rate, gen).tolist()
        moved = {j for j in range(12) if out[j] != MEMBERS[0][j]}
        assert moved <= FINEST  # coarser stages are never touched
        assert all(out[j] in {MEMBERS[m][j] for m in (1, 2, 3)} for j in moved)  # a sibling's code at j
        counts.append(len(moved))
    assert sum(counts) / len(counts) == pytest.approx(swaps, abs=0.1)
    assert data.tokens[0].tolist() == MEMBERS[0]  # the stored sequence is left alone


@pytest.mark.parametrize("rate, keys, stride", [(0.0, ["k"] * 4, 3), (2.0, ["a", "b", "c", "d"], 3),
                                               (2.0, ["k"] * 4, 0)])  # 0: no finest residual codes
def test_no_rate_no_siblings_or_no_finest_codes_leave_the_tokens_as_they_are(rate, keys, stride):
    data = _set(MEMBERS, keys, stages=stride)
    gen = torch.Generator().manual_seed(0)
    assert all(data.recombined(i, rate, gen).tolist() == MEMBERS[i] for i in range(4) for _ in range(20))


def test_recombined_batches_follow_the_generator():
    data = _set(MEMBERS, ["k"] * 4, stages=3)
    cfg = PriorConfig(vocab_size=64, block_size=12, n_layer=1, n_head=1, n_embd=16, text_dim=TEXT, data_dim=4,
                      struct_keys=["depth"])
    picks = [(i, 0) for i in range(4)] * 4
    a, b, c = (data.batch(cfg, picks, 2.0, torch.Generator().manual_seed(s))[0] for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(data.batch(cfg, picks)[0], torch.stack([data.tokens[i] for i, _ in picks]))


# three members of one condition: same coarse codes, their own finest codes (2 chunks x 2 stages)
TRIO = [[1, 2, 3, 4], [1, 5, 3, 6], [1, 7, 3, 8]]


def _trained(recombine: float) -> Prior:
    torch.manual_seed(0)
    prior = Prior(PriorConfig(vocab_size=16, block_size=4, n_layer=2, n_head=2, n_embd=64, text_dim=TEXT,
                              data_dim=4, struct_keys=["depth"], window_context=2, cond_dropout=0.0))
    fit_prior(prior, _set(TRIO, ["k"] * 3, stages=2),
              PriorTrainConfig(steps=200, batch_size=12, lr=3e-3, warmup=10, recombine=recombine))
    return prior


def test_a_prior_trained_on_recombinations_samples_new_sequences_and_keeps_the_coarse_codes():
    shares = {}
    for rate in (0.0, 1.0):
        draws = sample_tokens(_trained(rate), _cond(0), 4, n=300, settings=SamplingSettings(temperature=1.0),
                              seed=0).tolist()
        assert sum(d[0] == 1 and d[2] == 3 for d in draws) >= 0.98 * len(draws)  # the codes all members share
        shares[rate] = sum(d not in TRIO for d in draws) / len(draws)
    assert shares[0.0] < 0.05  # the members, replayed
    assert shares[1.0] > 0.25  # finest codes mixed across members: new sequences


def test_recombination_is_part_of_a_runs_identity():
    ids = [1, 2, 3]
    plain, mixed = (prior_checkpoint.run_identity(PriorTrainConfig(recombine=r), ids, 1) for r in (0.0, 1.0))
    assert "recombine" not in plain  # what checkpoints written before the option hold
    assert mixed["recombine"] == 1.0 and plain != mixed


@pytest.mark.parametrize("value", ["-1", ".nan", ".inf"])  # YAML spellings
def test_the_cli_refuses_a_bad_recombination_rate(value, tmp_path, cli):
    (tmp_path / "r.yaml").write_text(f"train: {{recombine: {value}}}\n")
    result = cli("train", "--stage", "prior", "--config", tmp_path / "r.yaml", "--registry", tmp_path / "r.db")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad training setting: recombine" in lines[0] and "(>= 0)" in lines[0]
    assert not (tmp_path / "r.db").exists()


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_the_library_refuses_a_bad_recombination_rate(value):
    with pytest.raises(ConfigError, match="bad training setting: recombine"):
        PriorTrainConfig(recombine=value)


@pytest.mark.parametrize("stages, stride", [(4, 4), (2, 2), (1, 0)])
def test_only_residual_stages_beyond_the_first_are_finest_codes_to_swap(stages, stride):
    from igpg_zoo.igpg.prior_dataset import finest_stride
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    assert finest_stride(TokenizerConfig(tokens_per_chunk=stages)) == stride
