"""Permutation alignment: exact, function-preserving, and what makes an aligned tokenizer order-blind."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.igpg.align import align, match, permute
from igpg_zoo.igpg.tokenizer import Tokenizer
from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
from igpg_zoo.igpg.vectorize import Layout, flatten
from igpg_zoo.igpg.vqvae import TokenizerConfig

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARCHS = ["mlp-i8-h8-o3", "mlp-i8-h6-h5-o3-tanh", "cnn-i1x8x8-c4k3-c8k3-o10", "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn",
         "cnn-i1x16-c4k3-h5-o2"]
TINY = TokenizerConfig(chunk_size=32, tokens_per_chunk=2, code_dim=8, codebook_size=32, hidden=(32,),
                       batch_size=32, steps=30, refine_steps=10)


def model(arch: str, seed: int, trained_bn: bool = True) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = get_adapter(arch).build(arch)
    if trained_bn:  # non-trivial BN statistics, so reordering them is checked too
        for name, buf in m.named_buffers():
            if "running" in name:
                buf.copy_(torch.rand_like(buf) + 0.5)
    return m.eval()


def random_perms(arch: str, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(grp.size, generator=g) for grp in get_adapter(arch).unit_groups(arch)]


@torch.no_grad()
def outputs(arch: str, weights: dict) -> torch.Tensor:
    m = get_adapter(arch).build(arch)
    m.load_state_dict(weights, strict=True)
    return m.eval()(get_adapter(arch).example_input(arch))


@pytest.mark.parametrize("arch", ARCHS)
def test_a_permutation_keeps_the_function_and_alignment_undoes_it_exactly(arch):
    groups = get_adapter(arch).unit_groups(arch)
    assert groups, "every smallnet has hidden units"
    ref = model(arch, 0).state_dict()
    shuffled = permute(ref, groups, random_perms(arch, 1))
    assert any(not torch.equal(shuffled[k], ref[k]) for k in ref)
    assert torch.allclose(outputs(arch, shuffled), outputs(arch, ref), atol=1e-5)
    back = align(shuffled, ref, groups)
    assert all(torch.equal(back[k], ref[k]) for k in ref)


@pytest.mark.parametrize("arch", ARCHS)
def test_aligning_another_model_keeps_its_function_and_brings_it_closer(arch):
    groups = get_adapter(arch).unit_groups(arch)
    ref, other = model(arch, 0).state_dict(), model(arch, 2).state_dict()
    aligned = align(other, ref, groups)
    assert torch.allclose(outputs(arch, aligned), outputs(arch, other), atol=1e-5)
    layout = Layout.of(arch)
    before = (flatten(other, layout) - flatten(ref, layout)).norm()
    after = (flatten(aligned, layout) - flatten(ref, layout)).norm()
    assert after <= before + 1e-6
    assert all(torch.equal(p, torch.arange(len(p))) for p in match(ref, ref, groups))  # identity is a fixed point


def test_an_aligned_tokenizer_gives_the_same_tokens_in_any_unit_order():
    arch = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"
    items = [(model(arch, s).state_dict(), arch) for s in range(4)]
    tok, _ = fit_tokenizer(items, replace(TINY, align=True), seed=0, progress=False)
    assert set(tok.references) == {arch}
    w = items[2][0]
    shuffled = permute(w, get_adapter(arch).unit_groups(arch), random_perms(arch, 5))
    assert torch.equal(tok.encode(shuffled, arch), tok.encode(w, arch))
    assert torch.equal(tok.encode(tok.canonical(shuffled, arch), arch, canonical=True), tok.encode(w, arch))
    rt = tok.round_trip(shuffled, arch)  # canonical order, BN buffers reordered with it
    assert torch.allclose(outputs(arch, tok.canonical(w, arch)), outputs(arch, w), atol=1e-5)
    tensors, config = tok.state()
    again = Tokenizer.from_state(tensors, config)
    assert set(again.references) == {arch}
    assert torch.equal(again.encode(shuffled, arch), tok.encode(w, arch))
    assert all(torch.equal(rt[k], again.round_trip(w, arch)[k]) for k in rt)


def test_an_unaligned_tokenizer_keeps_no_references_and_sees_the_order():
    arch = "mlp-i8-h8-o3"
    items = [(model(arch, s).state_dict(), arch) for s in range(3)]
    tok, _ = fit_tokenizer(items, TINY, seed=0, progress=False)
    assert tok.references == {} and tok.canonical(items[0][0], arch) is items[0][0]
