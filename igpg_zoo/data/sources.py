"""The base datasets: scikit-learn's bundled sets, Fashion-MNIST (Debian package), MNIST-1D, shapes.

Everything is offline. Fashion-MNIST is read from the files of Debian's ``dataset-fashion-mnist``
package; MNIST-1D is generated with ``mnist1d.data.make_dataset`` (never its downloader) and the
arrays are cached under :func:`igpg_zoo.data.dataset.cache_dir`. ``shapes`` (32x32 colour images
of six shapes) is drawn procedurally (:mod:`igpg_zoo.data.procedural`) in about a second.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from igpg_zoo.data.dataset import Dataset, as_arrays, cache_dir, standardize, stratified_split
from igpg_zoo.data.procedural import SHAPE_CLASSES
from igpg_zoo.errors import DatasetError
from igpg_zoo.records import DatasetInfo

FASHION_ENV = "IGPG_ZOO_FASHION_MNIST"  # a folder holding the four *-ubyte.gz files
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
                   "bag", "ankle boot")
MNIST1D_VERSION = 1  # bump when the generation arguments change
SPLIT_SEED = 0  # the built-in datasets' train/test split never changes


@dataclass(frozen=True)
class Source:
    """A base dataset: its descriptor, how to phrase its task, and its loader."""

    info: DatasetInfo
    class_names: tuple[str, ...]
    phrase: str  # task text with "{classes}" for the class list
    load: Callable[[], Dataset]


# -- scikit-learn -------------------------------------------------------------------------


def _sklearn(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    return bunch.data, bunch.target


def _load_digits() -> Dataset:
    x, y = _sklearn("digits")
    x = x.reshape(-1, 1, 8, 8) / 16.0  # (N, 1, 8, 8) in [0, 1]
    tr, te = stratified_split(y, 0.2, SPLIT_SEED)
    return Dataset(SOURCES["digits"].info, *as_arrays(x[tr], y[tr]), *as_arrays(x[te], y[te]),
                   SOURCES["digits"].class_names)


def _tabular_loader(name: str) -> Callable[[], Dataset]:
    def load() -> Dataset:
        x, y = _sklearn(name)
        tr, te = stratified_split(y, 0.2, SPLIT_SEED)
        x_train, x_test = standardize(x[tr], x[te])
        return Dataset(SOURCES[name].info, *as_arrays(x_train, y[tr]), *as_arrays(x_test, y[te]),
                       SOURCES[name].class_names)

    return load


# -- Fashion-MNIST --------------------------------------------------------------------------


def fashion_mnist_dir() -> Path | None:
    """The folder holding the Fashion-MNIST files, or None when the package is not installed."""
    candidates = [Path(os.environ[FASHION_ENV])] if os.environ.get(FASHION_ENV) else []
    candidates.append(FASHION_DIR)
    if shutil.which("dpkg"):
        try:
            out = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        candidates += [Path(p).parent for p in out.splitlines() if p.endswith(FASHION_FILES["x_train"])]
    for folder in candidates:
        if all((folder / f).is_file() for f in FASHION_FILES.values()):
            return folder
    return None


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@lru_cache(maxsize=1)
def _load_fashion_mnist() -> Dataset:
    folder = fashion_mnist_dir()
    if folder is None:
        raise DatasetError(
            "Fashion-MNIST is not installed: run 'sudo apt-get install dataset-fashion-mnist' "
            f"(or set {FASHION_ENV} to a folder holding the four *-ubyte.gz files)"
        )
    try:
        a = {k: _read_idx(folder / f) for k, f in FASHION_FILES.items()}
    except (OSError, ValueError, IndexError) as exc:
        raise DatasetError(f"cannot read Fashion-MNIST in {folder}: {exc}; reinstall dataset-fashion-mnist") from None
    scale = lambda x: x.reshape(-1, 1, 28, 28) / np.float32(255.0)  # noqa: E731  (N, 1, 28, 28)
    return Dataset(SOURCES["fashion_mnist"].info, *as_arrays(scale(a["x_train"]), a["y_train"]),
                   *as_arrays(scale(a["x_test"]), a["y_test"]), FASHION_CLASSES)


# -- MNIST-1D -------------------------------------------------------------------------------


def _generate_mnist1d() -> dict[str, np.ndarray]:
    """``make_dataset`` with the default arguments; it reseeds the global RNGs, so restore them."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": d["x"], "y": d["y"], "x_test": d["x_test"], "y_test": d["y_test"]}


@lru_cache(maxsize=1)
def _load_mnist1d() -> Dataset:
    path = cache_dir() / f"mnist1d-v{MNIST1D_VERSION}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, KeyError, ValueError):
        arrays = _generate_mnist1d()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    seq = lambda x: x.reshape(-1, 1, x.shape[-1])  # noqa: E731  (N, 1, 40)
    return Dataset(SOURCES["mnist1d"].info, *as_arrays(seq(arrays["x"]), arrays["y"]),
                   *as_arrays(seq(arrays["x_test"]), arrays["y_test"]), SOURCES["mnist1d"].class_names)


# -- procedural colour shapes -------------------------------------------------------------


@lru_cache(maxsize=1)
def _load_shapes() -> Dataset:
    from igpg_zoo.data.procedural import SHAPES_PER_CLASS, SHAPES_SEED, make_shapes

    n_train, n_test = SHAPES_PER_CLASS
    x_train, y_train = make_shapes(n_train, SHAPES_SEED)
    x_test, y_test = make_shapes(n_test, SHAPES_SEED + 1)
    return Dataset(SOURCES["shapes"].info, *as_arrays(x_train, y_train), *as_arrays(x_test, y_test),
                   SOURCES["shapes"].class_names)


# -- the catalog ---------------------------------------------------------------------------

DIGIT_NAMES = tuple(str(i) for i in range(10))

SOURCES: dict[str, Source] = {
    "digits": Source(
        DatasetInfo("digits", "image", (1, 8, 8), 10,
                    "8x8 greyscale images of handwritten digits 0-9 (1797 images)", "scikit-learn"),
        DIGIT_NAMES, "classify 8x8 images of handwritten digits {classes}", _load_digits),
    "fashion_mnist": Source(
        DatasetInfo("fashion_mnist", "image", (1, 28, 28), 10,
                    "28x28 greyscale photos of clothing in 10 classes (70000 images)", "Debian dataset-fashion-mnist"),
        FASHION_CLASSES, "classify Fashion-MNIST clothing images: {classes}", _load_fashion_mnist),
    "mnist1d": Source(
        DatasetInfo("mnist1d", "sequence", (1, 40), 10,
                    "1-D signals of length 40 encoding digits 0-9 (5000 sequences)", "mnist1d make_dataset"),
        DIGIT_NAMES, "classify MNIST-1D signals of digits {classes}", _load_mnist1d),
    "shapes": Source(
        DatasetInfo("shapes", "image", (3, 32, 32), 6,
                    "32x32 colour images of 6 procedural shapes in random colours (7200 images)", "igpg-zoo procedural"),
        SHAPE_CLASSES,
        "classify 32x32 colour images of shapes: {classes}", _load_shapes),
    "iris": Source(
        DatasetInfo("iris", "tabular", (4,), 3, "4 measurements of iris flowers of 3 species (150 samples)",
                    "scikit-learn"),
        ("setosa", "versicolor", "virginica"), "classify iris flowers by species: {classes}",
        _tabular_loader("iris")),
    "wine": Source(
        DatasetInfo("wine", "tabular", (13,), 3, "13 chemical measurements of wines from 3 cultivars (178 samples)",
                    "scikit-learn"),
        ("cultivar 0", "cultivar 1", "cultivar 2"), "classify wines by cultivar from chemical analysis: {classes}",
        _tabular_loader("wine")),
    "breast_cancer": Source(
        DatasetInfo("breast_cancer", "tabular", (30,), 2,
                    "30 features of breast mass cell nuclei, malignant or benign (569 samples)", "scikit-learn"),
        ("malignant", "benign"), "classify breast tumours as {classes} from cell-nucleus features",
        _tabular_loader("breast_cancer")),
}


def get_source(name: str) -> Source:
    if name not in SOURCES:
        raise DatasetError(f"unknown dataset '{name}'; known: {', '.join(SOURCES)} (see 'igpg-zoo datasets')")
    return SOURCES[name]


def is_available(name: str) -> bool:
    """Whether a base dataset can be loaded on this machine without installing anything."""
    return name != "fashion_mnist" or fashion_mnist_dir() is not None
