"""The residual quantizer and the chunk VQ-VAE: shapes, distances, revival, masking, overfitting a tiny set."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.quantize import EMAQuantizer, ResidualQuantizer, sq_distances
from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
from igpg_zoo.igpg.vqvae import ChunkVQVAE, TokenizerConfig, masked_mse

pytestmark = pytest.mark.usefixtures("torch_one_thread")


TINY = dict(chunk_size=16, tokens_per_chunk=2, code_dim=8, codebook_size=32, hidden=(32,))


def test_distances_match_the_broadcast_formula():
    torch.manual_seed(0)
    z, c = torch.randn(50, 6), torch.randn(20, 6)
    brute = (z[:, None, :] - c[None]).pow(2).sum(-1)
    assert torch.allclose(sq_distances(z, c), brute, atol=1e-4)


def test_the_quantizer_runs_and_passes_gradients():
    torch.manual_seed(0)
    model = ChunkVQVAE(TokenizerConfig(**TINY)).train()
    x = torch.randn(40, 16)
    loss, idx, parts = model(x, torch.ones_like(x, dtype=torch.bool))
    assert idx.shape == (40, 2) and int(idx.min()) >= 0 and int(idx.max()) < 32
    assert torch.isfinite(loss) and parts["recon"] > 0
    loss.backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0  # straight-through reaches the encoder
    model.eval()
    assert torch.equal(model.encode(x)[1], model.encode(x)[1])  # no noise in eval mode


def test_residual_stages_quantize_what_the_earlier_ones_left():
    torch.manual_seed(0)
    q = ResidualQuantizer(4, 16, stages=3).train()
    z = torch.randn(256, 4)
    for _ in range(20):
        q(z)
    q.eval()
    z_q, idx, _ = q(z)
    assert idx.shape == (256, 3)
    assert torch.allclose(q.lookup(idx), z_q, atol=1e-6)  # tokens alone rebuild the quantized vector
    first = q.stages[0].lookup(idx[:, 0])
    residual = z - first
    second = q.stages[1]  # stage 2 picks the code nearest to stage 1's residual
    assert torch.equal(idx[:, 1], sq_distances(residual, second.codebook).argmin(1))
    assert float((z - z_q).pow(2).mean()) < float(residual.pow(2).mean())  # later stages refine


def test_ema_revives_dead_codes():
    torch.manual_seed(0)
    q = EMAQuantizer(4, 16, decay=0.5, dead_threshold=0.5).train()
    z = torch.randn(64, 4)
    q(z)  # seeds the codebook from data
    q.codebook[3] = 1e3  # a code nothing will ever pick
    q.embed_sum[3] = 1e3
    for _ in range(5):
        q(z)
    assert q.revived > 0
    assert float(sq_distances(q.codebook[3:4], z).min()) < 1.0  # re-seeded near the data


def test_garbage_in_padding_changes_neither_loss_nor_gradients():
    x = torch.randn(24, 16)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[:, 10:] = False  # the last 6 positions are padding
    garbage = x.clone()
    garbage[~mask] = torch.randn(int((~mask).sum())) * 100
    results = []
    for inp in (x * mask, garbage):
        torch.manual_seed(0)
        model = ChunkVQVAE(TokenizerConfig(**TINY)).train()
        torch.manual_seed(1)
        loss, _, _ = model(inp, mask)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (l1, g1), (l2, g2) = results
    assert torch.equal(l1, l2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))
    # and the masked loss itself ignores whatever the reconstruction puts there
    x_hat = torch.randn(24, 16, requires_grad=True)
    masked_mse(x, x_hat, mask).backward()
    assert float(x_hat.grad[~mask].abs().sum()) == 0.0


def test_config_round_trips_and_refuses_unknown_keys():
    cfg = TokenizerConfig(hidden=[8, 8])
    assert TokenizerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(GeneratorError):
        TokenizerConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    assert TokenizerConfig.from_dict({**cfg.to_dict(), "rvq_stacked": False}) == cfg  # retired, was off
    removed = {"quantizer": "rvq", "kl_weight": 1e-3, "tau_start": 1.0, "tau_end": 0.05, "align": False,
               "encode_search": 0, "search_candidates": 64}  # what configs of the removed options said when unused
    assert TokenizerConfig.from_dict({**cfg.to_dict(), **removed}) == cfg
    for used in ({"quantizer": "gumbel"}, {"align": True}, {"encode_search": 2}):
        with pytest.raises(GeneratorError, match="retrain the tokenizer"):
            TokenizerConfig.from_dict({**cfg.to_dict(), **removed, **used})
    as_now = {"anchor": False, "direct_codes": True}  # removed, as the code does
    assert TokenizerConfig.from_dict({**cfg.to_dict(), **as_now}) == cfg
    for other in ({"anchor": True}, {"direct_codes": False}):
        with pytest.raises(GeneratorError, match="retrain the tokenizer"):
            TokenizerConfig.from_dict({**cfg.to_dict(), **as_now, **other})
    for removed_value in ({"mode": "model"}, {"norm": "fanin"}, {"codec": "vqgan"}):  # values no codec uses now
        with pytest.raises(GeneratorError, match=f"unknown tokenizer {next(iter(removed_value))}"):
            TokenizerConfig.from_dict({**cfg.to_dict(), **removed_value})
    before_codecs = {k: v for k, v in cfg.to_dict().items() if k not in ("codec", "mode", "norm", "sub_dim")}
    assert TokenizerConfig.from_dict(before_codecs).codec == "vqvae"  # a config from before the codecs
    with pytest.raises(GeneratorError):
        TokenizerConfig.from_dict({**cfg.to_dict(), "rvq_stacked": True})  # retired, was on: cannot rebuild
    off = {"sensitivity": 0.0, "sensitivity_cap": 100.0}  # the Fisher-weighted refine loss, retired
    assert TokenizerConfig.from_dict({**cfg.to_dict(), **off}) == cfg
    with pytest.raises(GeneratorError):
        TokenizerConfig.from_dict({**cfg.to_dict(), **off, "sensitivity": 0.5})
    with pytest.raises(GeneratorError):
        TokenizerConfig(chunk_size=0)


def test_vqvae_overfits_a_tiny_set():
    """Three 99-parameter MLPs: eval-mode reconstruction MSE (normalised units, ~1 before) falls below 0.06."""
    adapter = SmallNetAdapter()
    items = []
    for seed in range(3):
        torch.manual_seed(seed)
        items.append((adapter.build("mlp-i8-h8-o3").state_dict(), "mlp-i8-h8-o3"))
    cfg = TokenizerConfig(chunk_size=16, tokens_per_chunk=4, code_dim=8, codebook_size=64,
                          hidden=(64,), batch_size=64, lr=1e-2, steps=400, refine_steps=150)
    tok, report = fit_tokenizer(items, cfg, seed=0, progress=False)
    assert report["recon_mse"] < 0.06, report
    assert report["n_chunks"] == 3 * 7  # 99 params -> 7 chunks of 16


def test_a_steps_override_scales_both_phases():
    adapter = SmallNetAdapter()
    items = [(adapter.build("mlp-i8-h8-o3").state_dict(), "mlp-i8-h8-o3")]
    cfg = TokenizerConfig(steps=20, refine_steps=40, batch_size=8, **TINY)
    tok, report = fit_tokenizer(items, cfg, steps=5, progress=False)
    assert (report["steps"], report["refine_steps"]) == (5, 10)
    assert (tok.config.steps, tok.config.refine_steps) == (5, 10)  # the stored config says what ran


def test_direct_codes_start_at_zero_and_are_fitted_by_the_refine_phase():
    from dataclasses import replace

    cfg = TokenizerConfig(**TINY)
    model = ChunkVQVAE(cfg).eval()
    idx = torch.randint(0, 32, (5, 2))
    assert torch.equal(model.decode_indices(idx), model.decoder(model.quantizer.lookup(idx)))  # zero at init
    adapter = SmallNetAdapter()
    arch = "mlp-i8-h8-o3"
    items = []
    for s in range(3):
        torch.manual_seed(s)
        items.append((adapter.build(arch).state_dict(), arch))
    tok, _ = fit_tokenizer(items, replace(cfg, steps=20, refine_steps=30, batch_size=16), progress=False)
    assert tok.model.direct.weight.abs().sum() > 0
    fitted = {p.data_ptr() for p in tok.model.decoder_parameters()}
    assert {p.data_ptr() for p in tok.model.direct.parameters()} <= fitted
    from igpg_zoo.igpg.tokenizer import Tokenizer

    again = Tokenizer.from_state(*tok.state())  # the direct vectors travel in the artifact
    tokens = tok.encode(items[1][0], arch)
    back, back2 = tok.decode_params(tokens, arch), again.decode_params(tokens, arch)
    assert all(torch.equal(back[k], back2[k]) for k in back)
