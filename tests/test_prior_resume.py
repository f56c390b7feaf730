"""--resume continues only the run that wrote the checkpoint; one training writes a checkpoint at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from igpg_zoo.cli.generator_report import prior_note as _prior_note
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg import prior_checkpoint
from igpg_zoo.igpg.prior import Prior, PriorConfig
from igpg_zoo.igpg.prior_dataset import TokenSet
from igpg_zoo.igpg.prior_train import PriorTrainConfig, _optimizer, fit_prior

CFG = PriorConfig(vocab_size=8, block_size=16, n_layer=1, n_head=2, n_embd=32, text_dim=8, window_context=4)
TCFG = PriorTrainConfig(steps=4, batch_size=4, warmup=2, log_every=2, ckpt_every=2)


def _data(ids=(0, 1, 2)) -> TokenSet:
    g = torch.Generator().manual_seed(0)
    tokens = [torch.randint(8, (20,), generator=g) for _ in ids]
    conds = [{"task": torch.randn(8, generator=g), "arch_text": torch.ones(8)} for _ in ids]
    return TokenSet(tokens, conds, list(ids))


@pytest.fixture
def ckpt(tmp_path):
    torch.set_num_threads(1)
    path = tmp_path / "p.pt"
    fit_prior(Prior(CFG), _data(), TCFG, ckpt=path, run={"tokenizer_id": 1})
    return path


@pytest.mark.parametrize("change, data, run, words", [
    ({"seed": 1}, (0, 1, 2), 1, "different seed"),
    ({"batch_size": 2}, (0, 1, 2), 1, "different batch_size"),
    ({}, (0, 1, 5), 1, "different records"),  # another hold-out or filter: other records
    ({}, (0, 1, 2), 2, "different tokenizer_id"),
    ({"steps": 3}, (0, 1, 2), 1, "already at step 4, past the 3"),
])
def test_resume_refuses_a_checkpoint_of_another_run(ckpt, change, data, run, words):
    before = ckpt.read_bytes()
    with pytest.raises(GeneratorError, match=words):
        fit_prior(Prior(CFG), _data(data), replace(TCFG, **change), ckpt=ckpt, resume=True, run={"tokenizer_id": run})
    assert ckpt.read_bytes() == before  # nothing written


@pytest.mark.parametrize("steps, resumed, n_losses", [(4, 4, 0), (6, 4, 1)])
def test_resume_of_the_same_run_continues_or_finds_nothing_left(ckpt, steps, resumed, n_losses):
    result = fit_prior(Prior(CFG), _data(), replace(TCFG, steps=steps), ckpt=ckpt, resume=True,
                       run={"tokenizer_id": 1})
    assert (result.resumed_from, len(result.losses)) == (resumed, n_losses)
    assert torch.load(ckpt, weights_only=True)["step"] == steps


def test_a_second_training_on_the_same_checkpoint_is_refused(ckpt):
    before = ckpt.read_bytes()
    with prior_checkpoint.writer_lock(ckpt):  # a training in progress holds it
        with pytest.raises(GeneratorError, match="another training is writing"):
            fit_prior(Prior(CFG), _data(), TCFG, ckpt=ckpt)
    assert ckpt.read_bytes() == before
    fit_prior(Prior(CFG), _data(), TCFG, ckpt=ckpt)  # released with the first training


def test_each_rank_resumes_its_own_random_state(tmp_path):
    prior = Prior(CFG)
    states = [{"rng": torch.Generator().manual_seed(s).get_state(), "torch_rng": torch.get_rng_state(),
               "cuda_rng": None} for s in (10, 11)]
    path = tmp_path / "p.pt"
    prior_checkpoint.save(path, prior, _optimizer(prior, TCFG), 2, TCFG, states, run={})
    for rank in (0, 1):
        gen = torch.Generator()
        prior_checkpoint.load(path, Prior(CFG), _optimizer(prior, TCFG), gen, rank=rank)
        assert torch.equal(gen.get_state(), states[rank]["rng"])


@pytest.mark.parametrize("info, words", [({"final_loss": None, "seconds": 0.0}, "no steps left"),
                                         ({"final_loss": 1.5, "seconds": 2.0}, "2.0 s, loss 1.500")])
def test_the_train_summary_line_handles_a_complete_checkpoint(info, words):
    assert words in _prior_note(info)
