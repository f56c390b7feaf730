"""Vectorization: exact flatten/unflatten for every adapter, chunking, normalisation, buffers."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.adapters import loaded_adapters
from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.errors import CheckpointMismatch, GeneratorError
from igpg_zoo.igpg.vectorize import (
    Layout, Normalizer, chunk, complete_state_dict, flatten, n_chunks, recalibrate_batchnorm, unchunk, unflatten,
)

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


@pytest.mark.parametrize("mode", ["model", "layer", "tensor"])
@pytest.mark.parametrize("K", [7, 64])
def test_chunk_unchunk_exact_and_mask_counts_real_values(mode, K):
    arch = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"
    layout = Layout.of(arch, SmallNetAdapter())
    vec = torch.randn(layout.numel)
    x, m = chunk(vec, layout, K, mode)
    assert x.shape == m.shape == (n_chunks(layout, K, mode), K)
    assert int(m.sum()) == layout.numel and float(x[~m].abs().sum()) == 0.0
    assert torch.equal(unchunk(x, layout, mode), vec)


def test_layer_mode_never_mixes_two_layers_in_a_chunk():
    layout = Layout.of("mlp-i13-h32-o3", SmallNetAdapter())  # 0: 13*32+32, head: 32*3+3
    owner = torch.cat([torch.full((b - a,), float(i)) for i, (a, b) in enumerate(layout.layer_spans())])
    x, m = chunk(owner, layout, 64, "layer")
    for row, mask in zip(x, m):
        assert len(set(row[mask].tolist())) == 1
    assert len(layout.layer_spans()) == 2


def test_tensor_mode_gives_every_tensor_its_own_chunks():
    layout = Layout.of("mlp-i13-h32-o3", SmallNetAdapter())  # 4 tensors: 416, 32, 96, 3 values
    offs = layout.offsets()
    owner = torch.cat([torch.full((b - a,), float(i)) for i, (a, b) in enumerate(zip(offs, offs[1:]))])
    x, m = chunk(owner, layout, 64, "tensor")
    assert x.shape[0] == 7 + 1 + 2 + 1
    for row, mask in zip(x, m):
        assert len(set(row[mask].tolist())) == 1


@pytest.mark.parametrize("kind", ["fanin", "global", "none"])
def test_normaliser_inverts_and_standardises(kind):
    adapter = SmallNetAdapter()
    arch = "cnn-i1x40-c8k5-c16k5-h32-o10-silu-bn"
    layout = Layout.of(arch, adapter)
    vecs = [flatten(adapter.build(arch).state_dict(), layout) for _ in range(3)]
    norm = Normalizer.from_dict(Normalizer(kind).fit([(v, layout) for v in vecs]).to_dict())
    z = norm.normalize(vecs[0], layout)
    assert torch.allclose(norm.denormalize(z, layout), vecs[0], rtol=1e-6, atol=1e-7)
    if kind == "global":
        pooled = torch.cat([norm.normalize(v, layout) for v in vecs])
        assert abs(float(pooled.mean())) < 1e-4 and abs(float(pooled.std()) - 1) < 1e-3
    if kind == "none":
        assert torch.equal(z, vecs[0])


def test_fanin_normaliser_works_for_an_architecture_it_never_saw():
    adapter = SmallNetAdapter()
    seen, unseen = "mlp-i13-h32-o3", "mlp-i13-h64-h64-o3"
    lay = Layout.of(seen, adapter)
    norm = Normalizer("fanin").fit([(flatten(adapter.build(seen).state_dict(), lay), lay)])
    lay2 = Layout.of(unseen, adapter)
    z = norm.normalize(flatten(adapter.build(unseen).state_dict(), lay2), lay2)
    assert 0.3 < float(z.std()) < 3  # default init: the sqrt(fan_in) rescale brings it to the same scale


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
    assert recalibrate_batchnorm(module, [x[:32], x[32:]]) >= 1
    assert not module.training
    with torch.no_grad():
        pre = module
        first_conv = [m for m in pre.modules() if isinstance(m, torch.nn.Conv2d)][0]
        h = first_conv(x)
    assert torch.allclose(bn.running_mean, h.mean((0, 2, 3)), atol=1e-4)
    assert all(torch.equal(p, params[n]) for n, p in module.named_parameters())


def test_anchors_centre_each_seen_architecture_and_round_trip():
    adapter = SmallNetAdapter()
    archs = ["mlp-i13-h32-o3", "mlp-i8-h8-o3"]
    layouts = {a: Layout.of(a, adapter) for a in archs}
    vecs = [(flatten(adapter.build(a).state_dict(), layouts[a]), layouts[a]) for a in archs for _ in range(3)]
    norm = Normalizer("fanin").fit(vecs, anchors=True)
    assert sorted(norm.anchors) == sorted(archs)
    zs = torch.stack([norm.normalize(v, lay) for v, lay in vecs if lay.arch == archs[0]])
    assert float(zs.mean(0).abs().max()) < 1e-5  # the architecture's mean is coded as zero
    back = Normalizer.from_dict(norm.to_dict(), norm.tensors())
    v, lay = vecs[0]
    assert torch.allclose(back.denormalize(back.normalize(v, lay), lay), v, rtol=1e-6, atol=1e-7)
    unseen = Layout.of("mlp-i13-h64-o3", adapter)  # no anchor: coded around zero, still invertible
    u = flatten(adapter.build(unseen.arch).state_dict(), unseen)
    assert torch.allclose(back.denormalize(back.normalize(u, unseen), unseen), u, rtol=1e-6, atol=1e-7)
    with pytest.raises(GeneratorError):
        Normalizer.from_dict(norm.to_dict(), {})
