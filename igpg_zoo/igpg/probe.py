"""Scoring generated or decoded weights on a sample of data: what generation ranks by and what the
training-data curation (igpg/curation) scores members with. Only the *training* split is sampled.

``check_data_fits`` refuses data an architecture cannot take before anything is sampled.
"""

from __future__ import annotations

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.adapters.validation import data_mismatch
from igpg_zoo.errors import GeneratorError
from igpg_zoo.export.batchnorm import reestimate

PROBE = 512  # training samples used for best-of-n, BN recalibration and prediction agreement


def probe_split(data, n: int = PROBE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed sample of the training split (never the test split): (x, y) tensors."""
    x, y = data.x_train, data.y_train
    if len(y) > n:
        idx = np.random.default_rng(seed).choice(len(y), n, replace=False)
        x, y = x[idx], y[idx]
    return torch.tensor(np.asarray(x), dtype=torch.float32), torch.tensor(np.asarray(y), dtype=torch.long)


@torch.no_grad()
def check_data_fits(arch: str, x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse data the architecture cannot take (input shape) or label (more classes than outputs)."""
    if why := data_mismatch(get_adapter(arch), arch, tuple(x.shape[1:]), int(y.max()) + 1):
        raise GeneratorError(why)  # what the arch string declares
    module = get_adapter(arch).build(arch).eval()
    try:
        logits = module(x[:2])  # (2, K)
    except RuntimeError:
        raise GeneratorError(f"the data's inputs (shape {tuple(x.shape[1:])}) do not fit '{arch}'; "
                             "pick an architecture whose input matches them") from None
    classes, outputs = int(y.max()) + 1, logits.shape[-1]
    if classes > outputs:
        raise GeneratorError(f"the data has labels up to {classes - 1} but '{arch}' has {outputs} outputs; "
                             f"pick an architecture ending in -o{classes}")


def build_loaded(arch: str, weights: dict[str, torch.Tensor], x=None) -> torch.nn.Module:
    """The adapter's module with ``weights`` loaded strictly; BN statistics re-estimated on ``x``
    (and written back into ``weights``)."""
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights, strict=True)
    if x is not None and reestimate(module, [x[i:i + 128] for i in range(0, len(x), 128)]):
        for name, t in module.state_dict().items():
            weights[name] = t.detach().clone()
    return module.eval()


@torch.no_grad()
def accuracy_on(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` that ``module`` labels ``y``."""
    return float((module(x).argmax(1) == y).float().mean())


def split_accuracy(arch: str, weights: dict[str, torch.Tensor], data, split: str = "test") -> float:
    """Accuracy of ``weights`` on a whole split (``"test"`` or ``"train"``) of ``data``."""
    module = build_loaded(arch, dict(weights))
    x = torch.tensor(np.asarray(getattr(data, f"x_{split}")), dtype=torch.float32)
    return accuracy_on(module, x, torch.tensor(np.asarray(getattr(data, f"y_{split}")), dtype=torch.long))
