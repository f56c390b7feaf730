"""Vectorization: exact flatten/unflatten for every adapter, chunking, normalisation, buffers."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.adapters import loaded_adapters
from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.errors import CheckpointMismatch, GeneratorError
from igpg_zoo.export.batchnorm import reestimate
from igpg_zoo.igpg.vectorize import Layout, Normalizer, chunk, complete_state_dict, flatten, n_chunks, unchunk, unflatten

SMALLNET = [
    "mlp-i13-h32-o3",
    "mlp-i1x8x8-h32-h16-o10-tanh",
    "cnn-i1x8x8-c8k3-c16k3-o10-gelu",
    "cnn-i1x40-c8k5-c16k5-h32-o10-silu-bn",
    "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn",
]
CASES = [(a, a.test_arch) for a in loaded_adapters()] + [(SmallNetAdapter(), arch) for arch in SMALLNET]


def _random_weights(adapter, arch, seed=0):
    torch.manual_seed(seed)
    module = adapter.build(arch)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()  # every value distinct, so a misplaced slice cannot go unnoticed
    return module.state_dict()


@pytest.mark.parametrize("adapter,arch", CASES, ids=[arch for _, arch in CASES])
def test_flatten_unflatten_is_bit_exact_and_loads_strictly(adapter, arch):
    layout = Layout.of(arch, adapter)
    weights = _random_weights(adapter, arch)
    vec = flatten(weights, layout)
    assert vec.shape == (layout.numel,)
    params = unflatten(vec, layout)
    assert list(params) == [s.name for s in layout.specs]
    for name, t in params.items():
        assert torch.equal(t, weights[name].float()), name
    assert torch.equal(flatten(params, layout), vec)
    module = adapter.build(arch)
    full = {**{k: v for k, v in weights.items() if k not in params}, **params}
    module.load_state_dict(full, strict=True)


@pytest.mark.parametrize("K", [7, 64])
def test_chunk_unchunk_exact_and_mask_counts_real_values(K):
    arch = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"
    layout = Layout.of(arch, SmallNetAdapter())
    vec = torch.randn(layout.numel)
    x, m = chunk(vec, layout, K)
    assert x.shape == m.shape == (n_chunks(layout, K), K)
    assert int(m.sum()) == layout.numel and float(x[~m].abs().sum()) == 0.0
    assert torch.equal(unchunk(x, layout), vec)


def test_a_chunk_never_mixes_two_layers():
    layout = Layout.of("mlp-i13-h32-o3", SmallNetAdapter())  # 0: 13*32+32, head: 32*3+3
    owner = torch.cat([torch.full((b - a,), float(i)) for i, (a, b) in enumerate(layout.spans())])
    x, m = chunk(owner, layout, 64)
    for row, mask in zip(x, m):
        assert len(set(row[mask].tolist())) == 1
    assert len(layout.spans()) == 2


@pytest.mark.parametrize("arch", ["cnn-i1x40-c8k5-c16k5-h32-o10-silu-bn", "mlp-i13-h32-o3"])
def test_normaliser_inverts_standardises_and_survives_storage(arch):
    adapter = SmallNetAdapter()
    layout = Layout.of(arch, adapter)
    vecs = [flatten(adapter.build(arch).state_dict(), layout) for _ in range(3)]
    norm = Normalizer.from_dict(Normalizer().fit([(v, layout) for v in vecs]).to_dict())
    assert torch.allclose(norm.denormalize(norm.normalize(vecs[0])), vecs[0], rtol=1e-6, atol=1e-7)
    pooled = torch.cat([norm.normalize(v) for v in vecs])
    assert abs(float(pooled.mean())) < 1e-4 and abs(float(pooled.std()) - 1) < 1e-3


@pytest.mark.parametrize("stored", [{"kind": "fanin", "stats": {"weight": [0, 1]}, "anchored_archs": []},
                                    {"kind": "global", "stats": {"all": [0, 1]}, "anchored_archs": ["mlp-i4-h8-o3"]}])
def test_normalisations_no_longer_supported_are_refused(stored):
    with pytest.raises(GeneratorError, match="retrain the tokenizer"):
        Normalizer.from_dict(stored)


def test_flatten_refuses_missing_or_misshapen_tensors():
    adapter = SmallNetAdapter()
    layout = Layout.of("mlp-i13-h32-o3", adapter)
    weights = adapter.build("mlp-i13-h32-o3").state_dict()
    with pytest.raises(CheckpointMismatch):
        flatten({k: v for k, v in weights.items() if k != layout.specs[0].name}, layout)
    with pytest.raises(CheckpointMismatch):
        flatten({**weights, layout.specs[0].name: torch.zeros(2, 2)}, layout)
    with pytest.raises(GeneratorError):
        unflatten(torch.zeros(layout.numel + 1), layout)


def test_buffers_default_then_recalibrate_to_the_data():
    adapter = SmallNetAdapter()
    arch = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"
    layout = Layout.of(arch, adapter)
    params = unflatten(flatten(_random_weights(adapter, arch), layout), layout)
    full = complete_state_dict(params, arch)
    module = adapter.build(arch)
    module.load_state_dict(full, strict=True)
    bn = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    torch.manual_seed(0)
    x = torch.randn(64, 1, 8, 8) * 3 + 2
    assert reestimate(module, [x[:32], x[32:]]) >= 1
    assert not module.training
    with torch.no_grad():
        pre = module
        first_conv = [m for m in pre.modules() if isinstance(m, torch.nn.Conv2d)][0]
        h = first_conv(x)
    assert torch.allclose(bn.running_mean, h.mean((0, 2, 3)), atol=1e-4)
    assert all(torch.equal(p, params[n]) for n, p in module.named_parameters())
