"""A small, deterministic classifier trainer shared by the zoo build and the generator benchmark.

``fit`` runs Adam on cross-entropy with a seeded data order: the same module state, data and seed
give the same weights. ``accuracy`` evaluates in eval mode. Inputs are numpy or tensors of shape
``(N, *input_shape)``; labels int ``(N,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-2
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0


def _tensor(a, dtype) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.tensor(np.asarray(a), dtype=dtype)  # a copy: datasets hand out read-only arrays


def init_module(module: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every parameterised layer from ``seed`` (deterministic, order of modules)."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        for m in module.modules():
            if m is not module and hasattr(m, "reset_parameters"):
                m.reset_parameters()
    finally:
        torch.random.set_rng_state(gen_state)
    return module


def fit(module: nn.Module, x, y, epochs: int | None = None, lr: float = 1e-2, batch_size: int = 64,
        seed: int = 0, steps: int | None = None, weight_decay: float = 0.0,
        on_epoch: Callable[[int, nn.Module], None] | None = None) -> nn.Module:
    """Train ``module`` in place for ``epochs`` passes (or ``steps`` batches); returns it in eval mode.

    ``on_epoch(epoch, module)`` is called after every finished epoch (1-based), e.g. to keep
    late-epoch checkpoints. The data order comes from ``seed`` alone.
    """
    xt, yt = _tensor(x, torch.float32), _tensor(y, torch.int64)
    n = len(yt)
    if n == 0:
        raise ValueError("fit needs at least one sample")
    per_epoch = -(-n // batch_size)
    total = steps if steps is not None else (epochs if epochs is not None else 10) * per_epoch
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    min_batch = 2 if _has_batchnorm(module) else 1  # BatchNorm cannot train on one sample
    module.train()
    step = 0
    while step < total:
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = order[i: i + batch_size]
            if len(idx) >= min_batch:  # a lone last sample is skipped, the step still counted
                loss = F.cross_entropy(module(xt[idx]), yt[idx])  # (B, K) logits vs (B,)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            step += 1
            if step >= total:
                break
        if on_epoch is not None and (step % per_epoch == 0 or step >= total):
            module.eval()
            on_epoch(-(-step // per_epoch), module)
            module.train()
    return module.eval()


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


@torch.no_grad()
def predict(module: nn.Module, x, batch_size: int = 2048) -> np.ndarray:
    """Predicted labels (N,) in eval mode."""
    was_training = module.training
    module.eval()
    xt = _tensor(x, torch.float32)
    out = [module(xt[i: i + batch_size]).argmax(1) for i in range(0, len(xt), batch_size)]
    module.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy(module: nn.Module, x, y, batch_size: int = 2048) -> float:
    """Fraction of samples classified correctly."""
    y = np.asarray(y)
    if len(y) == 0:
        return float("nan")
    return float((predict(module, x, batch_size) == y).mean())
