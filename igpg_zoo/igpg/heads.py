"""The classifier of a generated model (``GenerateRequest.head``).

``"generated"`` keeps the sampled classifier; ``"reset"`` re-initialises ``adapter.head_names(arch)``
from the seed; ``"fit"`` (needs data) solves the classifier in closed form: ridge regression of
one-hot labels on the generated body's features over the training sample. A generated head encodes
the label mapping of the zoo task it imitates; on a new task that mapping may be wrong.
"""

from __future__ import annotations

import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError

HEADS = ("generated", "reset", "fit")


def reset_head(weights: dict[str, torch.Tensor], arch: str, seed: int) -> dict[str, torch.Tensor]:
    """``weights`` with the classifier (adapter.head_names) replaced by a fresh seeded init."""
    torch.manual_seed(seed)
    fresh = get_adapter(arch).build(arch).state_dict()
    out = dict(weights)
    for name in get_adapter(arch).head_names(arch):
        out[name] = fresh[name].clone()
    return out


@torch.no_grad()
def fit_head(module: torch.nn.Module, arch: str, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-2) -> None:
    """Set the classifier of ``module`` to the ridge solution on its own penultimate features of ``x``."""
    names = get_adapter(arch).head_names(arch)
    head = module.get_submodule(names[0].rsplit(".", 1)[0])
    if not isinstance(head, torch.nn.Linear):
        raise GeneratorError(f"head '{names[0]}' of '{arch}' is not a linear layer; use head 'reset'")
    feats = []
    handle = head.register_forward_hook(lambda m, inp, out: feats.append(inp[0].flatten(1)))
    try:
        module(x)
    finally:
        handle.remove()
    F = torch.cat([feats[0], torch.ones(len(x), 1)], dim=1).double()  # (N, D+1)
    Y = torch.nn.functional.one_hot(y.clamp(max=head.out_features - 1), head.out_features).double()  # (N, K)
    A = F.T @ F + ridge * len(x) * torch.eye(F.size(1), dtype=F.dtype)
    W = torch.linalg.solve(A, F.T @ Y)  # (D+1, K)
    head.weight.copy_(W[:-1].T.float())
    if head.bias is not None:
        head.bias.copy_(W[-1].float())
