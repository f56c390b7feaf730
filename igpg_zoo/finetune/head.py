"""Fit a start to the user's classes: change the architecture's class count, keep the body, and
replace or fit the classifier.

A start's head encodes the label mapping of the task it came from; on the user's data that mapping
means nothing even when the class count agrees. ``adapt`` therefore decides per policy:
``fit`` solves the classifier in closed form on the training part (ridge regression of one-hot
labels on the body's penultimate features), ``replace`` re-initialises it from the seed, ``keep``
keeps it (class counts must agree) and ``auto`` keeps a right-sized head only when it scores higher
on the training part than a fitted one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import CheckpointMismatch, ConfigError, DatasetError

_OUT = re.compile(r"(?<=-)o([1-9][0-9]*)(?=-|$)")  # the class count of a smallnet-style arch string
RIDGE = 1e-2


@dataclass
class Adapted:
    arch: str  # the architecture with the user's class count
    weights: dict[str, torch.Tensor]
    head: str  # "kept" | "fitted" | "replaced" | "fresh" (random init: nothing to adapt)


def outputs_of(module: nn.Module, x: torch.Tensor) -> int:
    """The number of outputs ``module`` gives for a batch of the user's inputs (refuses inputs it cannot take)."""
    try:
        with torch.no_grad():
            return int(module.eval()(x[:2]).shape[-1])
    except RuntimeError:
        raise DatasetError(f"the data's inputs (shape {tuple(x.shape[1:])}) do not fit this architecture; pick a "
                           "start whose input matches them") from None


def retarget(arch: str, n_classes: int) -> str:
    """``arch`` with ``n_classes`` outputs (``-o<K>`` of the smallnet grammar); as given when already so."""
    found = list(_OUT.finditer(arch))
    if not found:
        return arch
    last = found[-1]
    return f"{arch[:last.start()]}o{n_classes}{arch[last.end():]}"


def seeded_module(arch: str, seed: int) -> nn.Module:
    """A fresh module of ``arch`` initialised from ``seed`` alone."""
    from igpg_zoo.zoobuild.trainer import init_module

    return init_module(get_adapter(arch).build(arch), seed)


def adapt(arch: str, weights: dict[str, torch.Tensor] | None, x: torch.Tensor, y: torch.Tensor, n_classes: int,
          policy: str, seed: int) -> Adapted:
    """The start ``(arch, weights)`` fitted to ``n_classes`` on the training part ``(x, y)``.

    ``weights`` None is random init (seeded). The body must load unchanged; only the head may differ.
    """
    target = retarget(arch, n_classes)
    module = seeded_module(target, seed)
    outputs = outputs_of(module, x)
    if outputs < n_classes:
        raise ConfigError(f"'{arch}' has {outputs} outputs and its class count cannot be changed, but the data has "
                          f"{n_classes} classes; start from an architecture with {n_classes} outputs")
    if weights is None:
        return Adapted(target, _state(module), "fresh")
    head_names = set(get_adapter(target).head_names(target))
    _load_body(module, weights, head_names, arch)
    same_head = all(n in weights and weights[n].shape == module.state_dict()[n].shape for n in head_names)
    if policy == "keep" or (policy == "auto" and same_head):
        if not same_head:
            raise ConfigError(f"--head keep needs the start's {outputs} outputs to match the data's classes; use "
                              "--head fit or replace")
        kept = {**_state(module), **{n: weights[n] for n in head_names}}
        if policy == "keep":
            return Adapted(target, kept, "kept")
        return _better_of_kept_and_fitted(target, module, kept, x, y)
    if policy == "replace":
        return Adapted(target, _state(module), "replaced")
    fit_head(module, target, x, y)
    return Adapted(target, _state(module), "fitted")


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _load_body(module: nn.Module, weights: dict[str, torch.Tensor], head_names: set[str], arch: str) -> None:
    own = module.state_dict()
    body = {k: v for k, v in weights.items() if k not in head_names}
    wrong = sorted(k for k in own if k not in head_names and (k not in body or body[k].shape != own[k].shape))
    if wrong:
        raise CheckpointMismatch(f"the start's weights do not fit '{arch}' ({', '.join(wrong[:3])}); the record is "
                                 "damaged or of another architecture")
    module.load_state_dict({**own, **body})


def _better_of_kept_and_fitted(arch: str, module: nn.Module, kept: dict, x, y) -> Adapted:
    module.load_state_dict(kept)
    kept_acc = accuracy(module, x, y)
    fit_head(module, arch, x, y)
    if accuracy(module, x, y) > kept_acc:
        return Adapted(arch, _state(module), "fitted")
    return Adapted(arch, kept, "kept")


@torch.no_grad()
def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    was = module.training
    module.eval()
    hits = sum(int((module(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(y), batch))
    module.train(was)
    return hits / max(1, len(y))


@torch.no_grad()
def fit_head(module: nn.Module, arch: str, x: torch.Tensor, y: torch.Tensor, ridge: float = RIDGE) -> None:
    """Set the classifier of ``module`` to the ridge solution on its own penultimate features of ``x``."""
    names = get_adapter(arch).head_names(arch)
    head = module.get_submodule(names[0].rsplit(".", 1)[0]) if names else None
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"the head of '{arch}' is not a linear layer; use --head replace")
    feats: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda m, inp, out: feats.append(inp[0].flatten(1)))
    was = module.training
    module.eval()
    try:
        module(x)
    finally:
        handle.remove()
        module.train(was)
    f = torch.cat([feats[0], torch.ones(len(x), 1)], dim=1).double()  # (N, D+1)
    targets = nn.functional.one_hot(y, head.out_features).double()  # (N, K)
    a = f.T @ f + ridge * len(x) * torch.eye(f.size(1), dtype=f.dtype)
    w = torch.linalg.solve(a, f.T @ targets)  # (D+1, K)
    head.weight.copy_(w[:-1].T.float())
    if head.bias is not None:
        head.bias.copy_(w[-1].float())
