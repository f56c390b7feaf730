"""The fine-tuning loop: Adam on cross-entropy, a seeded batch order, held-out evaluations along the
way (the curve), early stopping on them, and the best held-out weights kept.

Step 0 is evaluated before any update, so a curve shows where a start begins. With ``early_stop``
off every run takes the same number of steps (what ``--compare`` needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from igpg_zoo.finetune.config import FinetuneConfig
from igpg_zoo.finetune.data import Split
from igpg_zoo.finetune.head import accuracy, seeded_module

#: progress(step, total_steps, held-out accuracy or None): called after every step
Progress = Callable[[int, int, "float | None"], None]


@dataclass
class Curve:
    steps: list[int] = field(default_factory=list)  # optimiser steps done when evaluated (0: before training)
    val_acc: list[float] = field(default_factory=list)  # held-out accuracy there
    loss: list[float | None] = field(default_factory=list)  # mean training loss since the previous evaluation

    def to_dict(self) -> dict:
        return {"steps": list(self.steps), "val_acc": [round(v, 6) for v in self.val_acc],
                "loss": [None if v is None else round(v, 6) for v in self.loss]}


@dataclass
class Trained:
    weights: dict[str, torch.Tensor]  # the best held-out weights
    curve: Curve
    best_step: int
    best_val: float
    steps_run: int
    stopped_early: bool


def schedule(n_train: int, cfg: FinetuneConfig) -> tuple[int, int, int]:
    """(steps per epoch, total steps, steps between evaluations)."""
    per_epoch = -(-n_train // cfg.batch_size)
    total = per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    every = max(1, per_epoch // cfg.evals_per_epoch)
    return per_epoch, total, every


def train(arch: str, weights: dict[str, torch.Tensor], split: Split, cfg: FinetuneConfig, early_stop: bool = True,
          progress: Progress | None = None, on_eval: Callable[[int, torch.nn.Module], None] | None = None) -> Trained:
    """Fine-tune ``weights`` of ``arch`` on ``split``'s training part; returns the best held-out state.

    ``on_eval(step, module)`` is called at every evaluation (step 0 included), e.g. to score other data there.
    """
    module = seeded_module(arch, cfg.seed)
    module.load_state_dict(weights, strict=True)
    per_epoch, total, every = schedule(len(split.y_train), cfg)
    patience_evals = cfg.patience * max(1, per_epoch // every)
    curve = Curve([0], [accuracy(module, split.x_val, split.y_val)], [None])
    best = (curve.val_acc[0], 0, _state(module))
    if on_eval is not None:
        on_eval(0, module)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, since_best, losses = 0, 0, []
    module.train()
    while step < total and not (early_stop and cfg.patience and since_best >= patience_evals):
        order = torch.randperm(len(split.y_train), generator=gen)
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = F.cross_entropy(module(split.x_train[idx]), split.y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            val = None
            if step % every == 0 or step == total:
                val = accuracy(module, split.x_val, split.y_val)
                curve.steps.append(step), curve.val_acc.append(val), curve.loss.append(sum(losses) / len(losses))
                losses = []
                if on_eval is not None:
                    on_eval(step, module)
                if val > best[0]:
                    best, since_best = (val, step, _state(module)), 0
                else:
                    since_best += 1
            if progress is not None:
                progress(step, total, val)
            if step >= total or (early_stop and cfg.patience and since_best >= patience_evals):
                break
    module.eval()
    return Trained(best[2], curve, best[1], best[0], step, step < total)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
