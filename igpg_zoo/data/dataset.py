"""The in-memory dataset record every loader returns, and the deterministic split.

Arrays follow one convention so models and the dataset encoder need no special cases:
``x`` is float32 with per-sample shape ``info.input_shape`` — images ``(C, H, W)`` in [0, 1],
sequences ``(1, L)``, tabular ``(F,)`` standardised with training-split statistics — and ``y``
is int64 in ``0 .. n_classes - 1``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igpg_zoo.records import DatasetInfo

#: Environment variable naming the folder for generated data and cached dataset embeddings.
CACHE_ENV = "IGPG_ZOO_CACHE"


@dataclass(frozen=True, eq=False)
class Dataset:
    info: DatasetInfo
    x_train: np.ndarray  # (N, *input_shape) float32
    y_train: np.ndarray  # (N,) int64
    x_test: np.ndarray  # (M, *input_shape) float32
    y_test: np.ndarray  # (M,) int64
    class_names: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.info.name

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of the ``"train"`` or ``"test"`` split."""
        return (self.x_train, self.y_train) if which == "train" else (self.x_test, self.y_test)


def cache_dir() -> Path:
    """Where generated data lives: ``$IGPG_ZOO_CACHE``, else ``$XDG_CACHE_HOME/igpg-zoo``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "igpg-zoo"


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / test indices holding out ``test_fraction`` of every class, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = max(1, int(round(len(idx) * test_fraction)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_subsample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples keeping the class proportions of ``y`` (at least one each)."""
    if n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts * n / len(y)
    quota = np.maximum(1, np.floor(share).astype(int))
    short = n - quota.sum()
    if short > 0:  # largest remainders get the leftover samples
        quota[np.argsort(-(share - np.floor(share)), kind="stable")[:short]] += 1
    quota = np.minimum(quota, counts)
    chosen = []
    for c, q in zip(classes, quota):
        idx = np.flatnonzero(y == c)
        chosen.append(idx[rng.permutation(len(idx))[:q]])
    return np.sort(np.concatenate(chosen))


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature standardisation with training statistics (tabular data)."""
    mean = x_train.mean(0, keepdims=True)
    std = x_train.std(0, keepdims=True)
    std[std < 1e-8] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std


def as_arrays(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64)


def fingerprint(ds: Dataset) -> str:
    """sha256 over a dataset's arrays (dtype, shape, bytes) and class names: what recorded answers,
    cached scores and fine-tuning lineage name the data by."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    h.update("\x1f".join(ds.class_names).encode())
    return h.hexdigest()
