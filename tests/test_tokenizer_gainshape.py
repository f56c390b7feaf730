"""The gain-shape codec (large models): k-means, gain digits, residual shape codes, "auto" selection, the API."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.gainshape import LOG2_RANGE, GainShapeCodec
from igpg_zoo.igpg.quantize import kmeans
from igpg_zoo.igpg.tokenizer import Tokenizer
from igpg_zoo.igpg.tokenizer_train import train_tokenizer
from igpg_zoo.igpg.vqvae import GAINSHAPE, GAINSHAPE_FROM, TokenizerConfig
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_kmeans_finds_separated_clusters_and_is_deterministic():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=torch.Generator().manual_seed(i)) for i, c in enumerate(centres)])
    found = kmeans(x, 3, 10, torch.Generator().manual_seed(0))
    again = kmeans(x, 3, 10, torch.Generator().manual_seed(0))
    assert torch.equal(found, again)
    assert torch.cdist(centres, found).min(1).values.max() < 0.2


def _codec(K, d, L, V=64, seed=0):
    cfg = TokenizerConfig(codec="gainshape", chunk_size=K, sub_dim=d, tokens_per_chunk=L, codebook_size=V)
    codec = GainShapeCodec(cfg)
    scales = torch.logspace(-3, 1, 40)[:, None]  # chunks of very different scales, as a network's tensors are
    x = scales * torch.randn(40, K, generator=torch.Generator().manual_seed(seed))
    codec.fit(x, torch.Generator().manual_seed(seed))
    return codec, x


@pytest.mark.parametrize("K,d,L", [(16, 4, 1), (16, 4, 2), (32, 8, 3), (8, 8, 2)])
def test_codec_shapes_tokens_and_relative_error(K, d, L):
    codec, x = _codec(K, d, L)
    _, tokens, _ = codec.encode(x)
    assert tokens.shape == (40, codec.chunk_tokens) and codec.chunk_tokens == L * (1 + K // d)
    assert int(tokens.min()) >= 0 and int(tokens.max()) < 64
    back = codec.decode_indices(tokens)
    rel = ((back - x).pow(2).sum(1) / x.pow(2).sum(1))  # per chunk: the scale is carried, so no chunk is lost
    assert back.shape == x.shape and float(rel.max()) < 1.0


def test_more_stages_reconstruct_better_and_decoded_chunks_keep_their_energy():
    errs = []
    for L in (1, 2, 3):
        codec, x = _codec(16, 4, L)
        back = codec.decode_indices(codec.encode(x)[1])
        errs.append(float((back - x).pow(2).sum() / x.pow(2).sum()))
        step = (LOG2_RANGE[1] - LOG2_RANGE[0]) / (64 ** L - 1)  # log2 units per gain level
        rms = x.double().pow(2).mean(1).sqrt()
        assert float((codec._gain_of(codec._digits(rms)).log2() - rms.log2()).abs().max()) <= step / 2 + 1e-9
        kept = back.double().pow(2).mean(1).sqrt() / rms  # the gain is fitted to the coded shape
        assert float((kept.log2()).abs().max()) <= step / 2 + 1e-6
    assert errs[0] > errs[1] > errs[2]


def test_sub_dim_must_divide_the_chunk():
    with pytest.raises(GeneratorError, match="multiple"):
        GainShapeCodec(TokenizerConfig(codec="gainshape", chunk_size=12, sub_dim=8))


@pytest.mark.parametrize("codec,largest,expected", [
    ("auto", GAINSHAPE_FROM - 1, "vqvae"), ("auto", GAINSHAPE_FROM, "gainshape"), ("vqvae", 10 ** 6, "vqvae"),
    ("gainshape", 100, "gainshape")])
def test_auto_picks_the_codec_by_model_size(codec, largest, expected):
    cfg = TokenizerConfig(codec=codec).resolved(largest)
    assert cfg.codec == expected
    if codec == "auto" and expected == "gainshape":
        assert all(getattr(cfg, k) == v for k, v in GAINSHAPE.items())
    if codec != "auto":
        assert cfg == TokenizerConfig(codec=codec)  # an explicit choice is kept as given


def test_auto_keeps_what_a_recipe_changed():
    cfg = TokenizerConfig(chunk_size=32, hidden=(8,)).resolved(GAINSHAPE_FROM)
    assert cfg.codec == "gainshape" and cfg.chunk_size == 32 and cfg.sub_dim == GAINSHAPE["sub_dim"]


def test_config_refuses_an_unknown_codec_and_reads_old_configs_as_vqvae():
    with pytest.raises(GeneratorError, match="codec"):
        TokenizerConfig(codec="zip")
    old = {k: v for k, v in TokenizerConfig().to_dict().items() if k not in ("codec", "sub_dim")}
    assert TokenizerConfig.from_dict(old).codec == "vqvae"


LARGE = "mlp-i64-h320-o10"  # 24,010 parameters: over GAINSHAPE_FROM


def test_a_large_zoo_gets_the_gainshape_codec_through_the_api(tmp_path):
    assert sum(s.numel for s in get_adapter(LARGE).param_layout(LARGE)) >= GAINSHAPE_FROM
    with open_zoo(str(tmp_path / "registry.db")) as zoo:
        for i in range(2):
            torch.manual_seed(i)
            meta = CheckpointMeta(arch=LARGE, task="digits", dataset="digits", metrics=(Metric("acc", 0.5, "digits"),),
                                  name=f"m{i}", kind="trained")
            zoo.add_weights(get_adapter(LARGE).build(LARGE).state_dict(), meta)
        art = train_tokenizer(zoo, TokenizerConfig(codebook_size=64), seed=1, progress=False)
        assert art.config["tokenizer"]["codec"] == "gainshape" and art.name.startswith("tokenizer-gainshape")
        assert art.provenance["report"]["steps"] == 0 and art.provenance["report"]["relative_mse"] < 0.2
        tok, again = Tokenizer.load(zoo), Tokenizer.load(zoo, art.id)
        weights = zoo.load_weights(zoo.list()[0].id)
        tokens = tok.encode(weights, LARGE)
        assert tokens.shape == (tok.sequence_length(LARGE),) and torch.equal(tokens, again.encode(weights, LARGE))
        decoded = tok.decode(tokens, LARGE)
        get_adapter(LARGE).build(LARGE).load_state_dict(decoded, strict=True)
        rel = sum(float((decoded[k] - weights[k]).pow(2).sum()) for k in weights) / sum(
            float(w.pow(2).sum()) for w in weights.values())
        assert rel < 0.2
        with pytest.raises(GeneratorError, match="tokens"):
            tok.decode(tokens[:-1], LARGE)
