"""BatchNorm statistics of generated weights: find the ones never estimated, estimate them on data.

A generator emits parameters only; the running mean and variance of every BatchNorm layer start at
the fresh defaults (0 and 1), which make a model with BatchNorm useless until they are
re-estimated on real inputs. ``igpg-zoo generate`` does that on the user's data sample; weights
that leave the registry without it (a generated record exported later) get it here, on the
training split of the record's dataset, and the facts go into the export's provenance
(``provenance["batchnorm"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from igpg_zoo.errors import ExportNotSupported

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

CALIBRATION_SAMPLES = 512  # training samples the statistics are estimated on (as generate's probe)
CALIBRATION_BATCH = 128


@dataclass(frozen=True)
class Calibration:
    """Inputs to estimate BatchNorm statistics on, and where they came from (e.g. ``digits:train``)."""

    x: Any  # (N, *input_shape) array or tensor
    source: str


def batchnorm_layers(module: nn.Module) -> list[str]:
    """Names of the BatchNorm layers that track running statistics."""
    from torch import nn

    return [name for name, m in module.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def fresh_statistics(module: nn.Module) -> list[str]:
    """The BatchNorm layers whose running statistics are still the defaults (mean 0, variance 1)."""
    out = []
    for name in batchnorm_layers(module):
        m = module.get_submodule(name)
        if bool((m.running_mean == 0).all()) and bool((m.running_var == 1).all()):
            out.append(name)
    return out


def training_sample(dataset: str, n: int = CALIBRATION_SAMPLES, seed: int = 0) -> Calibration:
    """Up to ``n`` samples of the training split of ``dataset`` (never its test split), fixed by ``seed``."""
    import numpy as np

    from igpg_zoo.data.tasks import load_dataset, split_suffix

    name = split_suffix(dataset)[0]
    ds = load_dataset(name)
    x = ds.x_train
    if len(x) > n:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))]
    return Calibration(x, f"{ds.name}:train")


def estimate(module: nn.Module, calibration: Calibration) -> dict[str, Any]:
    """Re-estimate every BatchNorm layer's statistics of ``module`` on ``calibration`` (in place; the
    module is left in eval mode); returns the provenance facts."""
    import torch

    x = torch.tensor(_array(calibration.x), dtype=torch.float32)  # a copy: datasets are read-only
    batches = [x[i:i + CALIBRATION_BATCH] for i in range(0, len(x), CALIBRATION_BATCH)]
    if len(batches) > 1 and len(batches[-1]) < 2:  # BatchNorm cannot normalise one sample
        batches = batches[:-1]
    layers = reestimate(module, batches)
    return {"layers": layers, "statistics": "estimated", "on": calibration.source, "samples": int(len(x)),
            "when": "export"}


def reestimate(module: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate the running statistics of every tracking BatchNorm layer as the exact mean over
    ``batches``; returns the number of layers. Only those layers run in training mode (dropout and
    stochastic depth stay off); the module is left in eval mode and its parameters are untouched."""
    import torch

    bns = [module.get_submodule(name) for name in batchnorm_layers(module)]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    module.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # exact cumulative mean over the batches given
        m.train()
    try:
        with torch.no_grad():
            for x in batches:
                module(x)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        module.eval()
    return len(bns)


def calibrated(module: nn.Module, calibration: Calibration) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """``(state dict, facts)`` after re-estimating ``module``'s statistics on ``calibration``; None when it
    has no BatchNorm layer (nothing to do)."""
    if not batchnorm_layers(module):
        return None
    facts = estimate(module, calibration)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}, facts


def calibration_for_record(ck, module: nn.Module) -> Calibration | None:
    """The data a generated record's never-estimated statistics are estimated on before export: its
    dataset's training split. None when there is nothing to estimate; ExportNotSupported (one line,
    what to do) when the dataset does not load here."""
    from igpg_zoo.errors import DatasetError

    if ck.kind != "generated" or not fresh_statistics(module):
        return None
    if ck.dataset:
        try:
            return training_sample(ck.dataset)
        except DatasetError:
            pass
    raise ExportNotSupported(
        f"record #{ck.id} is a generated '{ck.arch}' whose BatchNorm layers have no statistics yet (running "
        f"mean 0, variance 1) and its dataset {ck.dataset or '(none)'!r} does not load here to estimate them on; "
        "generate it again with --dataset or --data (generate estimates them on that data)")


def _array(x) -> np.ndarray:
    import numpy as np

    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
