"""Encode-time token search (igpg/code_search.py): never worse per chunk, better overall, deterministic,
decoding untouched, and an option that travels in the artifact."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.code_search import chunk_errors, search_codes
from igpg_zoo.igpg.tokenizer import Tokenizer
from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
from igpg_zoo.igpg.vqvae import ChunkVQVAE, TokenizerConfig

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARCH = "mlp-i8-h8-o3"  # 99 parameters
CFG = TokenizerConfig(chunk_size=16, tokens_per_chunk=3, code_dim=8, codebook_size=32, hidden=(32,),
                      batch_size=32, steps=60, refine_steps=60)


@pytest.fixture(scope="module")
def fitted():
    adapter = SmallNetAdapter()
    items = []
    for seed in range(4):
        torch.manual_seed(seed)
        items.append((adapter.build(ARCH).state_dict(), ARCH))
    tok, _ = fit_tokenizer(items, CFG, seed=0, progress=False)
    return tok, items


def _with(tok, **options) -> Tokenizer:
    """``tok`` rebuilt from its artifact state with encode-time options changed in the stored config."""
    tensors, config = tok.state()
    config["tokenizer"] = replace(tok.config, **options).to_dict()
    return Tokenizer.from_state(tensors, config)


@torch.no_grad()
def _errors(tok, weights):
    x, mask = tok.chunks(weights, ARCH)
    tokens = tok.encode(weights, ARCH).view(-1, tok.config.tokens_per_chunk)
    return chunk_errors(tok.model, x, mask.to(x.dtype), tokens)


@pytest.mark.parametrize("sweeps, candidates", [(1, 4), (2, 32), (3, 1000)])
def test_search_never_raises_a_chunk_error_and_lowers_the_total(fitted, sweeps, candidates):
    tok, items = fitted
    searched = _with(tok, encode_search=sweeps, search_candidates=candidates)
    before = torch.cat([_errors(tok, w) for w, _ in items])
    after = torch.cat([_errors(searched, w) for w, _ in items])
    assert bool((after <= before + 1e-7).all())
    assert float(after.sum()) < float(before.sum())  # a briefly trained tokenizer leaves room to improve


def test_search_is_deterministic_and_leaves_decoding_alone(fitted):
    tok, items = fitted
    searched = _with(tok, encode_search=2)  # the option travels in the artifact config
    assert searched.config.encode_search == 2
    w = items[2][0]
    tokens = searched.encode(w, ARCH)
    assert torch.equal(tokens, searched.encode(w, ARCH))
    decoded, plain = searched.decode_params(tokens, ARCH), tok.decode_params(tokens, ARCH)
    assert all(torch.equal(decoded[k], plain[k]) for k in decoded)


def test_search_needs_the_residual_quantizer():
    model = ChunkVQVAE(replace(CFG, quantizer="ema")).eval()
    x = torch.randn(3, 16)
    with pytest.raises(GeneratorError, match="rvq"):
        search_codes(model, x, torch.ones_like(x), torch.zeros(3, 3, dtype=torch.long), 1, 4)
