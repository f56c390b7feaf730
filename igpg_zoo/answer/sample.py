"""The user's sample as the answer scores on it: a fit part and a held-out part of the training split.

Heads are fitted on the fit part only and every estimate is measured on the held-out part; the
data's own test split is never read, so a later fine-tuning run can be judged on it. The
fingerprint names the data and the split, so cached scores and recorded answers match only the
same sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from igpg_zoo.data.dataset import Dataset, fingerprint, stratified_split, stratified_subsample
from igpg_zoo.errors import DatasetError


@dataclass(frozen=True, eq=False)
class UserSample:
    dataset: Dataset
    x_fit: np.ndarray  # (n_fit, *input_shape) float32
    y_fit: np.ndarray  # (n_fit,) int64
    x_held: np.ndarray  # (n_held, *input_shape)
    y_held: np.ndarray  # (n_held,)
    fingerprint: str  # sha256 of the data and of the split settings

    @property
    def n_classes(self) -> int:
        return self.dataset.info.n_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.dataset.info.input_shape)

    def fit_dataset(self) -> Dataset:
        """The fit part as a Dataset (training split only: what generation may see)."""
        return Dataset(self.dataset.info, self.x_fit, self.y_fit, self.x_fit[:0], self.y_fit[:0],
                       self.dataset.class_names)


def split_sample(ds: Dataset, probe: int = 512, held_fraction: float = 0.3, seed: int = 0) -> UserSample:
    """At most ``probe`` stratified training samples, ``held_fraction`` of them held out for scoring."""
    if not 0.0 < held_fraction < 1.0:
        raise DatasetError(f"held_fraction must lie strictly between 0 and 1, got {held_fraction}")
    y = np.asarray(ds.y_train)
    if len(y) == 0:
        raise DatasetError(f"{ds.name}: the data holds no training samples; give at least 2 per class")
    if len(np.unique(y)) < 2:
        raise DatasetError(f"{ds.name}: the training split holds one class only; give samples of 2 or more classes")
    keep = stratified_subsample(y, probe, seed)
    fit, held = stratified_split(y[keep], held_fraction, seed)
    if len(fit) == 0 or len(held) == 0:
        raise DatasetError(f"{ds.name}: too few samples to hold some out for scoring ({len(keep)}); give more")
    x = np.asarray(ds.x_train)
    digest = hashlib.sha256(f"{fingerprint(ds)}|{probe}|{held_fraction}|{seed}".encode()).hexdigest()
    return UserSample(ds, x[keep[fit]], y[keep[fit]], x[keep[held]], y[keep[held]], digest)
