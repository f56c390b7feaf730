"""Which architecture a model takes for the user's data, and its head: resize, features, ridge fit.

A stored model whose output count differs from the user's classes keeps its body and gets a new
classifier: the same architecture string with ``-o<classes>`` when the adapter accepts it and only
the head's shapes change; otherwise, with more outputs than classes, the same architecture (the
extra outputs are fitted to never win). Heads are solved in closed form (ridge regression of
one-hot labels on the penultimate features), only ever on the sample's fit part.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import ZooError

_OUT = re.compile(r"-o([1-9][0-9]*)(?=-|$)")
SWITCHED_OFF = -1e4  # bias of an output beyond the user's classes


@lru_cache(maxsize=256)
def output_count(arch: str, input_shape: tuple[int, ...]) -> int | None:
    """The output count of ``arch`` on inputs of ``input_shape``; None when they do not fit."""
    try:
        module = get_adapter(arch).build(arch).eval()
        with torch.no_grad():
            out = module(torch.zeros(2, *input_shape))
    except (ZooError, RuntimeError, ValueError, TypeError):
        return None
    return int(out.shape[-1]) if out.ndim == 2 else None


def _heads_only_differ(arch: str, other: str) -> bool:
    try:
        a, b = get_adapter(arch), get_adapter(other)
    except ZooError:
        return False
    if a is not b:
        return False
    heads = set(a.head_names(arch))
    sa = {s.name: s.shape for s in a.param_layout(arch)}
    sb = {s.name: s.shape for s in b.param_layout(other)}
    return sa.keys() == sb.keys() and all(sa[k] == sb[k] for k in sa if k not in heads)


@lru_cache(maxsize=256)
def target_arch(arch: str, input_shape: tuple[int, ...], n_classes: int) -> str | None:
    """The architecture a member of ``arch`` becomes for the data, or None when it cannot take it."""
    outputs = output_count(arch, input_shape)
    if outputs is None:
        return None
    if outputs == n_classes:
        return arch
    found = _OUT.findall(arch)
    if len(found) == 1:
        other = _OUT.sub(f"-o{n_classes}", arch)
        try:
            other = get_adapter(other).canonical_arch(other)
        except ZooError:
            other = None
        if other and output_count(other, input_shape) == n_classes and _heads_only_differ(arch, other):
            return other
    return arch if outputs > n_classes else None


def transplant(weights: dict[str, torch.Tensor], arch: str, target: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """``weights`` of ``arch`` moved to ``target``: the body as it is, the head freshly initialised."""
    if target == arch:
        return dict(weights)
    torch.manual_seed(seed)
    out = {k: v.clone() for k, v in get_adapter(target).build(target).state_dict().items()}
    heads = set(get_adapter(target).head_names(target))
    for name, value in weights.items():
        if name in out and name not in heads and out[name].shape == value.shape:
            out[name] = value
    return out


def build(arch: str, weights: dict[str, torch.Tensor], x_fit: np.ndarray | None = None) -> torch.nn.Module:
    """The module with ``weights`` loaded; batch-norm statistics re-estimated on ``x_fit`` when it has any."""
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights, strict=True)
    if x_fit is not None and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()):
        from igpg_zoo.export.batchnorm import reestimate

        x = torch.as_tensor(x_fit, dtype=torch.float32)
        reestimate(module, [x[i:i + 128] for i in range(0, len(x), 128)])
    return module.eval()


def _head(module: torch.nn.Module, arch: str) -> torch.nn.Module | None:
    names = get_adapter(arch).head_names(arch)
    if not names:
        return None
    head = module.get_submodule(names[0].rsplit(".", 1)[0]) if "." in names[0] else None
    return head if isinstance(head, torch.nn.Linear) else None


@torch.no_grad()
def features(module: torch.nn.Module, arch: str, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """(N, D) penultimate features (the head's inputs), or the outputs when the head is not linear."""
    head = _head(module, arch)
    feats: list[torch.Tensor] = []
    outs: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, i, o: feats.append(i[0].flatten(1))) if head is not None else None
    try:
        xt = torch.as_tensor(x, dtype=torch.float32)
        for i in range(0, len(xt), batch):
            outs.append(module(xt[i:i + batch]))
    finally:
        if hook is not None:
            hook.remove()
    return torch.cat(feats if head is not None else outs).double().numpy()


def ridge_solve(F: np.ndarray, y: np.ndarray, n_out: int, ridge: float) -> np.ndarray:
    """(D+1, n_out) ridge solution of one-hot ``y`` on ``F`` with a bias column; unused outputs switched off."""
    A = np.concatenate([F, np.ones((len(F), 1))], axis=1)
    Y = np.zeros((len(y), n_out))
    Y[np.arange(len(y)), y] = 1.0
    W = np.linalg.solve(A.T @ A + ridge * len(F) * np.eye(A.shape[1]), A.T @ Y)
    unused = np.setdiff1d(np.arange(n_out), np.unique(y))
    W[:, unused] = 0.0
    W[-1, unused] = SWITCHED_OFF
    return W


def predict(F: np.ndarray, W: np.ndarray) -> np.ndarray:
    return (np.concatenate([F, np.ones((len(F), 1))], axis=1) @ W).argmax(1)


@torch.no_grad()
def set_head(module: torch.nn.Module, arch: str, W: np.ndarray) -> bool:
    """Write the ridge solution into the module's linear head; False when it has none."""
    head = _head(module, arch)
    if head is None or head.in_features != W.shape[0] - 1 or head.out_features != W.shape[1]:
        return False
    head.weight.copy_(torch.as_tensor(W[:-1].T, dtype=head.weight.dtype))
    if head.bias is not None:
        head.bias.copy_(torch.as_tensor(W[-1], dtype=head.bias.dtype))
    return True
