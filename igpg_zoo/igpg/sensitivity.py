"""How much each weight matters to its model's predictions: the diagonal of the Fisher information.

For a classifier p(y | x; theta) the Fisher diagonal is

    F_i = E_x  sum_y p(y | x) (d log p(y | x) / d theta_i)^2

and a small change d of the weights raises the expected KL between the old and new predictions by
about 1/2 sum_i F_i d_i^2. The tokenizer's refine phase weighs its reconstruction error by F (in the
normalised units it works in), so the decoder spends its capacity where an error costs accuracy
(docs/igpg-tokenizer.md §5). The expectation over y is exact (every class, weighted by the model's own
probabilities; no sampled labels), the one over x is over a sample of the model's training split.
"""

from __future__ import annotations

import numpy as np
import torch

from igpg_zoo.igpg.vectorize import Layout, Normalizer, chunk, flatten

Fisher = dict[str, torch.Tensor] | None  # per-parameter Fisher diagonal of one model; None: unknown


def fisher_diagonal(module: torch.nn.Module, x: torch.Tensor, batch_size: int = 128) -> dict[str, torch.Tensor]:
    """Fisher diagonal of every parameter of ``module`` (a classifier giving logits) over inputs ``x`` (n, ...)."""
    from torch.func import functional_call, grad, vmap

    module.eval()
    params = {k: v.detach() for k, v in module.named_parameters()}
    buffers = {k: v.detach() for k, v in module.named_buffers()}

    def log_probs(p: dict, xi: torch.Tensor) -> torch.Tensor:  # one example -> log p(. | x), (C,)
        return torch.log_softmax(functional_call(module, (p, buffers), (xi.unsqueeze(0),))[0], -1)

    total = {k: torch.zeros_like(v) for k, v in params.items()}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]  # (B, ...)
        with torch.no_grad():
            probs = torch.softmax(functional_call(module, (params, buffers), (xb,)), -1)  # (B, C)
        for y in range(probs.shape[1]):
            g = vmap(grad(lambda p, xi, y=y: log_probs(p, xi)[y]), in_dims=(None, 0))(params, xb)  # name -> (B, *shape)
            w = probs[:, y]  # (B,)
            for k, gk in g.items():
                total[k] += torch.einsum("b,b...->...", w, gk.pow(2))
    return {k: v / max(x.shape[0], 1) for k, v in total.items()}


def model_fisher(weights: dict[str, torch.Tensor], arch: str, dataset: str, n: int = 512) -> dict[str, torch.Tensor] | None:
    """The Fisher diagonal of a stored model on the first ``n`` training examples of its dataset, or None
    when the dataset is not one igpg-zoo can load (a user's own data) or does not fit the architecture:
    that model is then weighed uniformly."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.errors import DatasetError

    try:
        ds = load_dataset(dataset)
    except DatasetError:
        return None
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights, strict=False)  # parameters and whatever buffers the record holds
    x = torch.tensor(np.array(ds.x_train[:n]), dtype=torch.float32)
    try:
        return fisher_diagonal(module, x)
    except RuntimeError:  # the data's shape is not the architecture's input (a mislabelled record)
        return None


def chunk_weights(fishers: list[Fisher], archs: list[str], normalizer: Normalizer,
                  chunk_size: int, mode: str, strength: float, cap: float) -> torch.Tensor:
    """Per-value weights of every model's chunks, (N, K) in the order ``build_chunks`` stacks them.

    In normalised units a value's error costs F_i / a_i^2 (z = a x - b), so that is its sensitivity;
    sensitivities are divided by their mean over every real value of the zoo, capped at ``cap``, and
    mixed with uniform weight: w = (1 - strength) + strength * s. Models without a Fisher get s = 1.
    Padding gets weight 0 (the mask still applies).
    """
    pieces = []
    sens_all: list[torch.Tensor | None] = []
    for fisher, arch in zip(fishers, archs):
        layout = Layout.of(arch)
        if fisher is None:
            sens_all.append(None)
            continue
        a, _ = normalizer._affine(layout)  # (D,) float64
        sens_all.append((flatten(fisher, layout).to(torch.float64) / a.pow(2)).to(torch.float32))
    known = [s for s in sens_all if s is not None]
    mean = float(torch.cat(known).mean()) if known else 1.0
    for sens, arch in zip(sens_all, archs):
        layout = Layout.of(arch)
        s = torch.ones(layout.numel) if sens is None else (sens / max(mean, 1e-30)).clamp(max=cap)
        w, mask = chunk((1 - strength) + strength * s, layout, chunk_size, mode)
        pieces.append(w * mask)
    return torch.cat(pieces)


def zoo_fishers(records: list, items: list[tuple[dict[str, torch.Tensor], str]]) -> list[Fisher]:
    """The Fisher diagonal of every (weights, arch) of ``items`` on its record's dataset (None where unloadable)."""
    return [model_fisher(w, arch, r.dataset) if r.dataset else None for r, (w, arch) in zip(records, items)]
