"""Both training stages on a GPU (skipped without one; run on the device machine), and the CPU path
they share: the trained model comes back on the CPU and works there."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.igpg.prior import Prior, PriorConfig
from igpg_zoo.igpg.prior_dataset import TokenSet
from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior
from igpg_zoo.igpg.sampling import SamplingSettings, sample_tokens
from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
from igpg_zoo.igpg.vqvae import TokenizerConfig

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _zoo(n: int = 6) -> list[tuple[dict, str]]:
    g = torch.Generator().manual_seed(0)
    arch = "mlp-i4-h16-o3"
    return [({"fc1.weight": torch.randn(16, 4, generator=g), "fc1.bias": torch.randn(16, generator=g),
              "head.weight": torch.randn(3, 16, generator=g), "head.bias": torch.randn(3, generator=g)}, arch)
            for _ in range(n)]


@pytest.mark.parametrize("device", DEVICES)
def test_tokenizer_trains_on_the_device_and_comes_back_to_the_cpu(device):
    items = _zoo()
    cfg = TokenizerConfig(chunk_size=32, tokens_per_chunk=2, code_dim=16, codebook_size=32, hidden=(64,),
                          steps=150, refine_steps=150, batch_size=32)
    tok, report = fit_tokenizer(items, cfg, seed=0, progress=False, device=device)
    assert report["device"] == device
    assert all(p.device.type == "cpu" for p in tok.model.parameters())
    weights, arch = items[0]
    tokens = tok.encode(weights, arch)
    assert torch.equal(tokens, tok.encode(weights, arch))  # deterministic, on the CPU
    restored = tok.decode_params(tokens, arch)
    assert set(restored) == set(weights) and report["recon_mse"] <= report["recon_mse_before_refine"]  # refining the decoder helped


@pytest.mark.parametrize("device", DEVICES)
def test_prior_trains_on_the_device_and_samples_on_the_cpu(device):
    g = torch.Generator().manual_seed(0)
    tokens = [torch.randint(8, (12,), generator=g) for _ in range(3)]
    conds = [{"task": torch.randn(8, generator=g), "arch_text": torch.ones(8)} for _ in range(3)]
    cfg = PriorConfig(vocab_size=8, block_size=12, n_layer=1, n_head=2, n_embd=32, text_dim=8, window_context=4,
                      cond_dropout=0.0, dropout=0.1)
    torch.manual_seed(0)
    prior = Prior(cfg)
    result = fit_prior(prior, TokenSet(tokens, conds, [0, 1, 2]),
                       PriorTrainConfig(steps=200, batch_size=6, lr=3e-3, warmup=10, log_every=50), device=device)
    assert result.losses[-1] < result.losses[0] / 2  # it learnt on the device
    assert all(p.device.type == "cpu" for p in prior.parameters()) and not prior.training
    again = sample_tokens(prior, conds[1], 12, settings=SamplingSettings(temperature=0.0))
    assert torch.equal(again[0], tokens[1])  # three sequences, memorised: greedy sampling replays its own
