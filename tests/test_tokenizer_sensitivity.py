"""Sensitivity-weighted refinement: the Fisher diagonal, the chunk weights, and what weighting may change."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.igpg.sensitivity import chunk_weights, fisher_diagonal, model_fisher
from igpg_zoo.igpg.tokenizer_train import fit_tokenizer, train_tokenizer
from igpg_zoo.igpg.vectorize import Layout, Normalizer, flatten
from igpg_zoo.igpg.vqvae import TokenizerConfig
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.zoo import open_zoo

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = dict(chunk_size=32, tokens_per_chunk=2, code_dim=8, codebook_size=32, hidden=(32,), batch_size=32)
ARCH = "mlp-i64-h8-o10"  # fits digits' 64 features


def test_fisher_of_a_softmax_regression_matches_the_closed_form():
    # log p(y|x) = W x + b - logsumexp: F[W_kj] = E_x p_k (1 - p_k) x_j^2, F[b_k] = E_x p_k (1 - p_k)
    torch.manual_seed(0)
    lin = torch.nn.Linear(5, 3)
    x = torch.randn(40, 5)
    f = fisher_diagonal(lin, x, batch_size=16)
    p = torch.softmax(lin(x), -1).detach()  # (n, 3)
    v = p * (1 - p)  # (n, 3)
    assert torch.allclose(f["weight"], torch.einsum("nk,nj->kj", v, x.pow(2)) / len(x), rtol=1e-4, atol=1e-7)
    assert torch.allclose(f["bias"], v.mean(0), rtol=1e-4, atol=1e-7)


def test_model_fisher_on_a_dataset_and_the_cases_it_cannot_weigh():
    module = get_adapter(ARCH).build(ARCH)
    f = model_fisher(module.state_dict(), ARCH, "digits", n=64)
    assert set(f) == {k for k, _ in module.named_parameters()}
    assert all(bool((v >= 0).all()) for v in f.values()) and sum(float(v.sum()) for v in f.values()) > 0
    assert model_fisher(module.state_dict(), ARCH, "no-such-dataset", n=64) is None  # a user's own data
    wrong = "mlp-i4-h8-o3"
    assert model_fisher(get_adapter(wrong).build(wrong).state_dict(), wrong, "digits", n=64) is None  # shape


def _items(n=4):
    out = []
    for i in range(n):
        torch.manual_seed(i)
        out.append((get_adapter(ARCH).build(ARCH).state_dict(), ARCH))
    return out


@pytest.mark.parametrize("strength, cap", [(0.0, 100.0), (0.5, 100.0), (1.0, 1e9), (1.0, 2.0)])
def test_chunk_weights_mean_cap_mix_and_padding(strength, cap):
    items = _items(3)
    layout = Layout.of(ARCH)
    normalizer = Normalizer("global").fit([(flatten(w, layout), layout) for w, _ in items])
    fishers = [model_fisher(w, ARCH, "digits", n=64) for w, _ in items[:2]] + [None]  # the third is unknown
    W = chunk_weights(fishers, [ARCH] * 3, normalizer, 32, "layer", strength, cap)
    from igpg_zoo.igpg.vectorize import chunk

    masks = torch.cat([chunk(torch.zeros(layout.numel), layout, 32, "layer")[1] for _ in range(3)])
    assert W.shape == masks.shape
    assert bool((W[~masks] == 0).all())  # padding never weighs
    per_model = W[masks].view(3, -1)
    assert torch.allclose(per_model[2], torch.ones(layout.numel))  # no Fisher: uniform
    known = per_model[:2]
    assert float(known.max()) <= (1 - strength) + strength * cap + 1e-5
    if cap > 1e6:  # uncapped: the known models' weights average exactly 1
        assert float(known.mean()) == pytest.approx(1.0, rel=1e-5)
    if strength == 0:
        assert bool((known == 1).all())


def _fit(items, sensitivity, fishers):
    cfg = TokenizerConfig(**TINY, steps=40, refine_steps=200, sensitivity=sensitivity)
    return fit_tokenizer(items, cfg, seed=0, progress=False, fishers=fishers)


def test_weighting_moves_the_error_to_where_it_costs_less_and_never_changes_a_token():
    items = _items(4)
    fishers = [model_fisher(w, ARCH, "digits", n=128) for w, _ in items]
    plain, _ = _fit(items, 0.0, fishers)
    weighted, report = _fit(items, 1.0, fishers)
    assert report["sensitivity_weighted_models"] == 4
    layout = Layout.of(ARCH)
    cost = {}
    for name, tok in [("plain", plain), ("weighted", weighted)]:
        total = 0.0
        for (w, arch), f in zip(items, fishers):
            assert torch.equal(tok.encode(w, arch), plain.encode(w, arch))  # the decoder changes, the tokens not
            err = flatten(tok.round_trip(w, arch), layout) - flatten(w, layout)
            total += float((flatten(f, layout) * err.pow(2)).sum())  # ~ 2 x the expected KL the error causes
        cost[name] = total
    assert cost["weighted"] < 0.8 * cost["plain"]


def test_without_any_fisher_the_stored_config_says_unweighted():
    tok, report = _fit(_items(2), 0.5, None)
    assert tok.config.sensitivity == 0.0 and "sensitivity_weighted_models" not in report
    tok, _ = _fit(_items(2), 0.5, [None, None])
    assert tok.config.sensitivity == 0.0


def test_train_tokenizer_weighs_the_records_it_can_load(tmp_path):
    with open_zoo(str(tmp_path / "registry.db")) as zoo:
        for i, ((w, arch), dataset) in enumerate(zip(_items(3), ["digits", "digits", "my-private-data"])):
            zoo.add_weights(w, CheckpointMeta(arch=arch, task="t", dataset=dataset, name=f"m{i}", kind="trained"))
        art = train_tokenizer(zoo, TokenizerConfig(**TINY, steps=20, refine_steps=20, sensitivity=0.5), progress=False)
        assert art.provenance["report"]["sensitivity_weighted_models"] == 2
        assert art.config["tokenizer"]["sensitivity"] == 0.5


def test_sensitivity_out_of_range_is_refused():
    from igpg_zoo.errors import GeneratorError

    with pytest.raises(GeneratorError):
        TokenizerConfig(sensitivity=1.5)
    with pytest.raises(GeneratorError):
        TokenizerConfig(sensitivity_cap=0)
