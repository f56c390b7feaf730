"""The user's data for fine-tuning: load, fingerprint, and split off the held-out part.

The user's training split is divided (stratified, fixed by the seed) into the part that trains and
the part that decides early stopping and draws the curves; the test split is only ever scored at
the end. Every start of one request sees the same parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igpg_zoo.data.dataset import Dataset, fingerprint, stratified_split
from igpg_zoo.errors import DatasetError


@dataclass(frozen=True, eq=False)
class Split:
    """Tensors of the three parts: train (fits), val (early stopping, curves), test (final score)."""

    dataset: Dataset
    x_train: torch.Tensor  # (N, *input_shape) float32
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    fingerprint: str  # sha256 of the user's arrays (train and test splits)

    @property
    def n_classes(self) -> int:
        return self.dataset.info.n_classes

    def train_part(self) -> Dataset:
        """The dataset with only the training part as its training split (what generation may score on)."""
        info = self.dataset.info
        return Dataset(info, self.x_train.numpy(), self.y_train.numpy(), self.x_val.numpy(), self.y_val.numpy(),
                       self.dataset.class_names)


def load(data: str | Path | Dataset, label: str = "label") -> Dataset:
    """A Dataset from a path (.npz / .csv / image folder) or as given."""
    if isinstance(data, Dataset):
        return data
    from igpg_zoo.data.userdata import load_user_data

    return load_user_data(data, label=label)


def available_bytes() -> int | None:
    """Physical memory free now (None where the system does not say)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(ds: Dataset, n_params: int, runs: int) -> None:
    """Refuse before any work when the data's tensors and the runs' weights, gradients and Adam moments
    (4 float32 copies each) clearly exceed the free memory."""
    need = 2 * sum(np.asarray(a).size * 4 for a in (ds.x_train, ds.x_test)) + runs * 4 * 4 * n_params
    free = available_bytes()
    if free is not None and need > free:
        raise DatasetError(f"fine-tuning needs about {need / 2**30:.1f} GiB but {free / 2**30:.1f} GiB are free; "
                           "use a smaller sample, a smaller architecture or fewer --compare starts")


def split(ds: Dataset, val_fraction: float, seed: int) -> Split:
    """Hold out ``val_fraction`` of every class of the training split; refuse data too small to split."""
    y = np.asarray(ds.y_train)
    if len(y) == 0 or len(np.asarray(ds.y_test)) == 0:
        raise DatasetError(f"{ds.name}: the data holds no samples to train or test on; give a labelled sample")
    counts = np.bincount(y, minlength=ds.info.n_classes)
    if (counts < 2).any():
        missing = int(np.argmin(counts))
        raise DatasetError(f"{ds.name}: class {missing} has {counts[missing]} training sample(s); fine-tuning holds "
                           "some out for early stopping, so every class needs 2+ (add samples of it)")
    tr, va = stratified_split(y, val_fraction, seed)

    def t(a, idx, dtype):
        return torch.tensor(np.asarray(a)[idx], dtype=dtype)

    everything = np.arange(len(ds.y_test))
    return Split(ds, t(ds.x_train, tr, torch.float32), t(y, tr, torch.long), t(ds.x_train, va, torch.float32),
                 t(y, va, torch.long), t(ds.x_test, everything, torch.float32),
                 t(ds.y_test, everything, torch.long), fingerprint(ds))
