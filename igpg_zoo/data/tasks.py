"""Generated task families: a base dataset plus bracketed options, applied left to right.

Grammar (docs/datasets.md)::

    NAME   := BASE OPTION* [":" SPLIT]
    OPTION := "[" KEY ["=" VALUE] "]"
    classes=3,5,8 | classes=0-4    keep these classes, relabelled 0..k-1 in ascending order
    perm=SEED                      permute the labels with a seeded permutation
    rot=90|180|270                 rotate images counter-clockwise
    flip                           mirror images left-right / reverse sequences
    invert                         images: 1 - x; sequences and tables: -x
    noise=SIGMA                    add Gaussian noise (seeded by the name), 0 < SIGMA <= 5
    size=S                         resize images to SxS (bilinear)
    rgb                            one-channel images -> three identical channels
    colour=SEED                    one-channel images -> three channels: light strokes on a darker
                                   background, one colour pair per SEED, a little jitter per image
    n=COUNT                        keep COUNT training samples (stratified); the test split is unchanged
    ntest=COUNT                    keep COUNT test samples (stratified)

e.g. ``digits[classes=3,5,8]``, ``digits[rot=90]``, ``fashion_mnist[classes=0-4][n=2000]``,
``fashion_mnist[n=2000][ntest=1000][size=32][colour=1]`` (3x32x32, for timm models).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from igpg_zoo.data.dataset import Dataset, as_arrays, stratified_subsample
from igpg_zoo.data.sources import get_source
from igpg_zoo.errors import DatasetError

SPLITS = ("train", "test")
_NAME = re.compile(r"^([a-z][a-z0-9_]*)((?:\[[^\[\]]*\])*)$")
_OPTION = re.compile(r"\[([a-z]+)(?:=([^\[\]]*))?\]")
_FLAGS = ("flip", "invert", "rgb")
_KEYS = ("classes", "perm", "rot", "flip", "invert", "noise", "size", "rgb", "colour", "n", "ntest")
_TO_RGB = ("rgb", "colour")  # options that turn one-channel images into three channels


@dataclass(frozen=True)
class TaskSpec:
    base: str
    options: tuple[tuple[str, str], ...]  # canonical (key, value); value "" for flags
    n_classes: int = 0  # after the options (known without loading any data)

    @property
    def name(self) -> str:
        return self.base + "".join(f"[{k}={v}]" if v else f"[{k}]" for k, v in self.options)


def split_suffix(name: str) -> tuple[str, str | None]:
    """``"digits[rot=90]:test"`` -> ``("digits[rot=90]", "test")``; no suffix -> split None."""
    stem, sep, split = name.rpartition(":")
    if sep and split in SPLITS:
        return stem, split
    return name, None


def _int(key: str, value: str, lo: int, hi: int) -> int:
    try:
        v = int(value)
    except ValueError:
        v = lo - 1
    if not lo <= v <= hi:
        raise DatasetError(f"option [{key}={value}] needs an integer in {lo}..{hi}")
    return v


def _parse_classes(value: str, n_classes: int) -> list[int]:
    out: set[int] = set()
    for part in value.split(","):
        lo, dash, hi = part.strip().partition("-")
        bounds = (lo, hi) if dash else (lo, lo)
        a, b = (_int("classes", s, 0, n_classes - 1) for s in bounds)
        out.update(range(a, b + 1))
    if len(out) < 2:
        raise DatasetError(f"option [classes={value}] must keep at least 2 classes")
    return sorted(out)


def _check_channels(key: str, modality: str, channels: int) -> None:
    if key in _TO_RGB and modality != "image":
        raise DatasetError(f"option [{key}] applies to image datasets only")
    if key in _TO_RGB and channels != 1:
        raise DatasetError(f"option [{key}] turns one-channel images into three; these images already have "
                           f"{channels} channels, so leave it out")


def _canonical_option(key: str, value: str | None, modality: str, n_classes: int,
                      channels: int = 1) -> tuple[str, str]:
    if key not in _KEYS:
        raise DatasetError(f"unknown dataset option [{key}]; known: {', '.join(_KEYS)} (see docs/datasets.md)")
    _check_channels(key, modality, channels)
    if key in _FLAGS:
        if value:
            raise DatasetError(f"option [{key}] takes no value")
        return key, ""
    if not value:
        raise DatasetError(f"option [{key}] needs a value, e.g. [{key}=...]; see docs/datasets.md")
    if key in ("rot", "size") and modality != "image":
        raise DatasetError(f"option [{key}] applies to image datasets only")
    if key == "classes":
        return key, ",".join(map(str, _parse_classes(value, n_classes)))
    if key == "rot":
        if value not in ("90", "180", "270"):
            raise DatasetError(f"option [rot={value}] must be 90, 180 or 270")
        return key, value
    if key == "noise":
        try:
            sigma = float(value)
        except ValueError:
            sigma = -1.0
        if not 0 < sigma <= 5:
            raise DatasetError(f"option [noise={value}] needs a number in (0, 5]")
        return key, f"{sigma:g}"
    limits = {"perm": (0, 2**31 - 1), "colour": (0, 2**31 - 1), "size": (4, 64), "n": (2, 10**7),
              "ntest": (2, 10**7)}[key]
    return key, str(_int(key, value, *limits))


def parse_task(name: str) -> TaskSpec:
    """Parse and canonicalise a task name (a trailing ``:train`` / ``:test`` is ignored)."""
    stem, _ = split_suffix(name.strip())
    m = _NAME.match(stem)
    if not m:
        raise DatasetError(f"cannot parse dataset name '{name}'; expected e.g. digits or digits[classes=3,5,8]")
    source = get_source(m.group(1))
    n_classes = source.info.n_classes
    channels = source.info.input_shape[0] if source.info.modality == "image" else 0
    options = []
    for key, value in _OPTION.findall(m.group(2)):
        opt = _canonical_option(key, value, source.info.modality, n_classes, channels)
        if opt[0] == "classes":
            n_classes = len(opt[1].split(","))
        if opt[0] in _TO_RGB:
            channels = 3
        options.append(opt)
    return TaskSpec(source.info.name, tuple(options), n_classes)


def canonical_name(name: str) -> str:
    return parse_task(name).name


# -- transforms ------------------------------------------------------------------------------


def _relabel(ds: Dataset, keep: list[int]) -> Dataset:
    lut = np.full(ds.info.n_classes, -1, dtype=np.int64)
    lut[keep] = np.arange(len(keep))
    tr, te = np.isin(ds.y_train, keep), np.isin(ds.y_test, keep)
    names = tuple(ds.class_names[c] for c in keep)
    return replace(ds, x_train=ds.x_train[tr], y_train=lut[ds.y_train[tr]], x_test=ds.x_test[te],
                   y_test=lut[ds.y_test[te]], class_names=names, info=replace(ds.info, n_classes=len(keep)))


def _permute(ds: Dataset, seed: int) -> Dataset:
    perm = np.random.default_rng(seed).permutation(ds.info.n_classes)  # old label -> new label
    names = [""] * len(perm)
    for old, new in enumerate(perm):
        names[new] = ds.class_names[old]
    return replace(ds, y_train=perm[ds.y_train], y_test=perm[ds.y_test], class_names=tuple(names))


def _map_x(ds: Dataset, fn, **info) -> Dataset:
    return replace(ds, x_train=fn(ds.x_train, "train"), x_test=fn(ds.x_test, "test"),
                   info=replace(ds.info, **info) if info else ds.info)


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    from scipy.ndimage import zoom

    n, c, h, w = x.shape
    return zoom(x, (1, 1, size / h, size / w), order=1, grid_mode=True, mode="nearest")  # (N, C, S, S)


def _apply(ds: Dataset, key: str, value: str, seed: int) -> Dataset:
    image = ds.info.modality == "image"
    if key == "classes":
        return _relabel(ds, [int(v) for v in value.split(",")])
    if key == "perm":
        return _permute(ds, int(value))
    if key == "rot":
        return _map_x(ds, lambda x, _: np.rot90(x, int(value) // 90, axes=(-2, -1)))
    if key == "flip":
        return _map_x(ds, lambda x, _: x[..., ::-1])
    if key == "invert":
        return _map_x(ds, lambda x, _: 1.0 - x if image else -x)
    if key == "noise":
        rngs = {s: np.random.default_rng([seed, i]) for i, s in enumerate(("train", "test"))}
        sigma = float(value)
        return _map_x(ds, lambda x, s: x + sigma * rngs[s].standard_normal(x.shape))
    if key == "size":
        s = int(value)
        return _map_x(ds, lambda x, _: _resize(x, s), input_shape=(ds.info.input_shape[0], s, s))
    if key in _TO_RGB:
        return _to_rgb(ds, key, value, seed)
    if key == "ntest":
        keep = stratified_subsample(ds.y_test, int(value), seed)
        return replace(ds, x_test=ds.x_test[keep], y_test=ds.y_test[keep])
    keep = stratified_subsample(ds.y_train, int(value), seed)  # key == "n"
    return replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep])


def _to_rgb(ds: Dataset, key: str, value: str, seed: int) -> Dataset:
    """``rgb``: the one channel three times; ``colour``: the palette of SEED, jittered per image."""
    shape = (3, *ds.info.input_shape[1:])
    if key == "rgb":
        return _map_x(ds, lambda x, _: np.repeat(x, 3, axis=1), input_shape=shape)
    from igpg_zoo.data.procedural import COLOUR_JITTER, colourise, set_palette

    palette = set_palette(int(value))  # the same colours for every task with this SEED, in both splits
    rngs = {s: np.random.default_rng([seed, i]) for i, s in enumerate(("train", "test"))}
    return _map_x(ds, lambda x, s: colourise(np.clip(x, 0.0, 1.0), rngs[s], palette, COLOUR_JITTER),
                  input_shape=shape)


# -- descriptions and loading ----------------------------------------------------------------


def _join(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _modifier(key: str, value: str, modality: str) -> str:
    image = modality == "image"
    return {
        "perm": f"with labels permuted (seed {value})",
        "rot": f"rotated {value} degrees",
        "flip": "mirrored left-right" if image else "reversed",
        "invert": "with inverted intensities" if image else "with negated values",
        "noise": f"with added Gaussian noise (sigma {value})",
        "size": f"resized to {value}x{value} pixels",
        "rgb": "as 3-channel RGB",
        "colour": f"coloured with stroke and background palette {value}",
        "n": f"trained on {value} samples",
        "ntest": f"tested on {value} samples",
    }.get(key, "")


def describe_task(spec: TaskSpec, class_names: tuple[str, ...]) -> str:
    """The task text, e.g. ``classify 8x8 images of handwritten digits 3, 5 and 8, rotated 90 degrees``."""
    source = get_source(spec.base)
    text = source.phrase.format(classes=_join(class_names))
    mods = [_modifier(k, v, source.info.modality) for k, v in spec.options]
    mods = [m for m in mods if m]
    return text + (", " + ", ".join(mods) if mods else "")


def _freeze(ds: Dataset) -> Dataset:
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a.flags.writeable = False
    return ds


@lru_cache(maxsize=16)
def _load_canonical(name: str) -> Dataset:
    spec = parse_task(name)
    source = get_source(spec.base)
    ds = source.load()
    prefix = spec.base
    for key, value in spec.options:
        prefix += f"[{key}={value}]" if value else f"[{key}]"
        ds = _apply(ds, key, value, seed=zlib.crc32(prefix.encode()))
    x_train, y_train = as_arrays(ds.x_train, ds.y_train)
    x_test, y_test = as_arrays(ds.x_test, ds.y_test)
    info = replace(ds.info, name=spec.name, description=describe_task(spec, ds.class_names),
                   source=source.info.source)
    return _freeze(Dataset(info, x_train, y_train, x_test, y_test, ds.class_names))


def load_dataset(name: str) -> Dataset:
    """Load a built-in dataset or generated task by name (cached; arrays are read-only)."""
    return _load_canonical(canonical_name(name))
