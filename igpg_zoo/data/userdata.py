"""A user's own labelled data: ``.npz`` (``x``, ``y``), ``.csv`` (a named label column) or an image folder.

Shapes decide the modality: ``x`` of shape ``(N, F)`` is tabular, ``(N, 1, L)`` a sequence,
``(N, H, W)`` / ``(N, C, H, W)`` / ``(N, H, W, C)`` (C in 1, 3, 4) images. Integer images are scaled
to [0, 1] (uint8 by 255, otherwise by their maximum); tabular features are standardised with
training statistics. Labels of any kind map to ``0..k-1`` in sorted order. Without an explicit
test split (``x_test``/``y_test`` in the ``.npz``) a stratified split fixed by ``seed`` is made.
Nothing here unpickles: ``np.load(..., allow_pickle=False)`` only.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from igpg_zoo.data.dataset import Dataset, as_arrays, standardize, stratified_split
from igpg_zoo.errors import DatasetError
from igpg_zoo.records import DatasetInfo

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def _modality(x: np.ndarray, where: str) -> tuple[str, np.ndarray]:
    """The modality and x in the package convention ((N, C, H, W), (N, 1, L) or (N, F))."""
    if x.ndim == 2:
        return "tabular", x
    if x.ndim == 3 and x.shape[1] == 1:
        return "sequence", x
    if x.ndim == 3:
        return "image", x[:, None]  # (N, 1, H, W)
    if x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = np.moveaxis(x, -1, 1)  # (N, H, W, C) -> (N, C, H, W)
    if x.ndim == 4:
        return "image", x
    raise DatasetError(f"{where}: x has shape {x.shape}; expected (N, F), (N, 1, L), (N, H, W) or (N, C, H, W)")


def _image_scale(x: np.ndarray) -> float:
    """The divisor that brings raw images into [0, 1]."""
    if x.dtype == np.uint8:
        return 255.0
    top = float(np.max(x)) if x.size and x.dtype.kind in "biuf" else 1.0
    return top if top > 1.0 else 1.0


def _labels(y: np.ndarray, where: str) -> tuple[np.ndarray, tuple[str, ...]]:
    if y.ndim != 1:
        raise DatasetError(f"{where}: y must be one label per sample (shape (N,)), got shape {y.shape}")
    if y.dtype.kind in "fc" and np.isnan(y).any():
        raise DatasetError(f"{where}: y has {int(np.isnan(y).sum())} NaN label(s); drop those samples or label them")
    values, codes = np.unique(y, return_inverse=True)
    if len(values) < 2:
        raise DatasetError(f"{where}: needs at least 2 classes, found {len(values)}")
    return codes.astype(np.int64), tuple(str(v) for v in values)


def _check_x(x: np.ndarray, n: int, where: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: x must be numeric, got dtype {x.dtype}")
    if len(x) != n:
        raise DatasetError(f"{where}: x has {len(x)} samples but y has {n} labels")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise DatasetError(f"{where}: x contains NaN or infinite values; clean or drop them first")
    return x


def _check_fits(arch: str | None, sample_shape: tuple[int, ...], n_labels: int, where: str) -> None:
    """Refuse data that does not match what ``arch`` declares (input shape, output count)."""
    if arch is None:
        return
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.adapters.validation import data_mismatch

    why = data_mismatch(get_adapter(arch), arch, sample_shape, n_labels)
    if why:
        raise DatasetError(f"{where}: {why}")


def build_dataset(x, y, name: str, where: str, seed: int = 0, test_fraction: float = 0.2,
                  test: tuple[np.ndarray, np.ndarray] | None = None, arch: str | None = None) -> Dataset:
    """A :class:`Dataset` from raw arrays (validates, scales, splits); with ``arch``, refuses data
    that does not match what the architecture declares before anything else is judged."""
    y = np.asarray(y)
    codes, class_names = _labels(y, where)
    modality, x = _modality(np.asarray(x), where)
    if x.ndim and 0 in x.shape[1:]:
        raise DatasetError(f"{where}: samples have shape {x.shape[1:]}, which holds no values; "
                           "give at least one feature (a .csv needs a column besides the label)")
    _check_fits(arch, tuple(int(s) for s in x.shape[1:]), len(class_names), where)
    scale = _image_scale(x)
    x = _check_x(x, len(codes), where)
    if test is None:
        counts = np.bincount(codes)
        if counts.min() < 2:
            raise DatasetError(f"{where}: class '{class_names[counts.argmin()]}' has one sample; every class needs 2+")
        tr, te = stratified_split(codes, test_fraction, seed)
        x_train, y_train, x_test, y_test = x[tr], codes[tr], x[te], codes[te]
    else:
        x_train, y_train = x, codes
        lut = {v: i for i, v in enumerate(class_names)}
        y_test = np.array([lut.get(str(v), -1) for v in np.asarray(test[1])], dtype=np.int64)
        if (y_test < 0).any():
            raise DatasetError(f"{where}: y_test has labels that y does not; use the same classes in both")
        x_test = _check_x(_modality(np.asarray(test[0]), where)[1], len(y_test), where)
        if x_test.shape[1:] != x_train.shape[1:]:
            raise DatasetError(f"{where}: x_test samples have shape {x_test.shape[1:]}, x has {x_train.shape[1:]}")
    if modality == "image":
        x_train, x_test = x_train / scale, x_test / scale
    elif modality == "tabular":
        x_train, x_test = standardize(x_train, x_test)
    info = DatasetInfo(name, modality, tuple(int(s) for s in x_train.shape[1:]), len(class_names),
                       f"classify {modality} data into {', '.join(class_names)} (user data {where})", "user")
    return Dataset(info, *as_arrays(x_train, y_train), *as_arrays(x_test, y_test), class_names)


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (an empty one starts with its end record)
_NPY_MAGIC = b"\x93NUMPY"


def _read_magic(path: Path, hint: str) -> bytes:
    try:
        with path.open("rb") as fh:
            return fh.read(6)
    except OSError as exc:
        raise DatasetError(f"{path.name}: cannot read ({exc.strerror or exc}); {hint}") from None


def _load_npz(path: Path, seed: int, arch: str | None = None) -> Dataset:
    hint = "save with np.savez(path, x=..., y=...)"
    magic = _read_magic(path, hint)
    if magic.startswith(_NPY_MAGIC):
        raise DatasetError(f"{path.name}: holds one .npy array, not named arrays x and y; {hint}")
    if not magic.startswith(_ZIP_MAGIC):
        kind = "empty" if not magic else "not an .npz archive (no zip header)"
        raise DatasetError(f"{path.name}: {kind}; {hint}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path.name}: holds one .npy array, not named arrays x and y; {hint}")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # truncated, bad CRC, pickled
        why = "holds an array of Python objects, which is not read" if "pickle" in str(exc) else str(exc)
        raise DatasetError(f"{path.name}: not a readable .npz archive ({why}); {hint}") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise DatasetError(f"{path.name}: missing array(s) {', '.join(missing)}; found {', '.join(arrays) or 'none'}")
    test = (arrays["x_test"], arrays["y_test"]) if {"x_test", "y_test"} <= arrays.keys() else None
    return build_dataset(arrays["x"], arrays["y"], path.stem, path.name, seed, test=test, arch=arch)


def _shown(text: str) -> str:
    """A cell of the user's file as one line (a quoted field may hold line breaks)."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _load_csv(path: Path, label: str, seed: int, arch: str | None = None) -> Dataset:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark
            reader = csv.reader(fh)
            rows = [(reader.line_num, row) for row in reader if row]  # blank lines are no samples
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path.name}: cannot read as UTF-8 .csv ({exc}); save it as UTF-8 CSV") from None
    if len(rows) < 2:
        raise DatasetError(f"{path.name}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0][1]]
    if label not in header:
        columns = _shown(", ".join(header))
        raise DatasetError(f"{path.name}: no label column '{_shown(label)}'; columns: {columns} (pass --label NAME)")
    li = header.index(label)
    feats = [i for i in range(len(header)) if i != li]
    x = np.empty((len(rows) - 1, len(feats)))
    y = []
    for n, (r, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise DatasetError(f"{path.name}: line {r} has {len(row)} fields, the header has {len(header)}")
        y.append(row[li].strip())
        for j, i in enumerate(feats):
            try:
                x[n, j] = float(row[i])
            except ValueError:
                raise DatasetError(f"{path.name}: line {r}, column '{_shown(header[i])}': '{_shown(row[i])}' "
                                   "is not a number") from None
    return build_dataset(x, np.array(y), path.stem, path.name, seed, arch=arch)


def _load_image_folder(path: Path, seed: int, arch: str | None = None) -> Dataset:
    try:
        from PIL import Image
    except ImportError:
        raise DatasetError("reading an image folder needs Pillow: pip install pillow") from None
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DatasetError(f"{path.name}: needs one subfolder per class (2+), found {len(classes)}")
    images, labels, size, mode = [], [], None, None
    for cls in classes:
        files = sorted(f for f in cls.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(f"{path.name}: class folder '{cls.name}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for f in files:
            try:
                with Image.open(f) as im:
                    mode = mode or ("L" if im.mode in ("1", "L", "I", "I;16", "F") else "RGB")
                    size = size or im.size
                    images.append(np.asarray(im.convert(mode).resize(size), dtype=np.uint8))
            except OSError as exc:
                raise DatasetError(f"{path.name}: cannot read image {cls.name}/{f.name} ({exc})") from None
            labels.append(cls.name)
    x = np.stack(images)  # (N, H, W) or (N, H, W, 3)
    return build_dataset(x, np.array(labels), path.name, path.name, seed, arch=arch)


def load_user_data(path: str | Path, label: str = "label", seed: int = 0, arch: str | None = None) -> Dataset:
    """Load a user's labelled data from ``.npz``, ``.csv`` or an image folder (see module doc); with
    ``arch``, the data must match the input shape and output count the architecture declares."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    if path.is_dir():
        return _load_image_folder(path, seed, arch)
    if path.suffix.lower() == ".npz":
        return _load_npz(path, seed, arch)
    if path.suffix.lower() == ".csv":
        return _load_csv(path, label, seed, arch)
    raise DatasetError(f"{path.name}: unsupported data file; use .npz (x, y), .csv (with a label column) or a folder")
