"""Dataset embeddings: one fixed-length vector per dataset, whatever its input shape.

IGPG conditions generation on the mean of sample features over a few samples per class. Here a
pluggable *sample encoder* maps samples to features (default ``randfeat``: a fixed-seed random
ReLU layer over a canonical 256-vector of each sample, no weights to download), and the
embedding concatenates four L2-normalised, weighted blocks (then the whole is L2-normalised):

==========  ======  ==============================================================================
block       dims    content
==========  ======  ==============================================================================
meta        4       modality one-hot (image, sequence, tabular), n_classes / 10
global      64      fixed random projection of the mean class prototype (what the data look like)
classes     320     10 slots x 32: each class prototype minus the mean, projected, in label order,
                    zero-padded (classes beyond 10 are left out)
text        384     sentence embedding of the dataset description (igpg_zoo.search.embed)
==========  ======  ==============================================================================

So ``digits[classes=3,5,8]`` and ``digits[classes=2,5,8]`` differ in their class slots, the same
dataset always gives the same vector, and a user's own sample of a dataset lands near it.
A user with local CLIP weights registers an encoder: ``register_encoder("clip", factory)``, then
``IGPG_ZOO_DATASET_ENCODER=clip``; the block projections adapt to the encoder's feature size.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from igpg_zoo.data.dataset import Dataset, cache_dir
from igpg_zoo.errors import ConfigError, DatasetError
from igpg_zoo.records import DatasetInfo

ENCODER_ENV = "IGPG_ZOO_DATASET_ENCODER"
MAX_CLASSES = 10
CLASS_DIM = 32
GLOBAL_DIM = 64
TEXT_DIM = 384
MODALITIES = ("image", "sequence", "tabular")
LAYOUT = {"meta": (0, 4), "global": (4, 68), "classes": (68, 388), "text": (388, 772)}
EMBEDDING_DIM = 772
WEIGHTS = {"meta": 0.3, "global": 0.6, "classes": 1.0, "text": 0.5}
VERSION = 1  # part of the cache key: bump when the recipe changes


@runtime_checkable
class SampleEncoder(Protocol):
    """Maps samples of a dataset (``(N, *info.input_shape)``) to features ``(N, dim)``."""

    name: str
    dim: int

    def encode(self, x: np.ndarray, info: DatasetInfo) -> np.ndarray: ...


# -- the default encoder ------------------------------------------------------------------------

CANON = 256  # every sample becomes a 256-vector before the random layer


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation between pixel centres, edges held (what
    ``scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")`` does along one axis, without its import)."""
    c = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1.0 - (c - i0))
    np.add.at(m, (np.arange(n_out), i1), c - i0)
    return m


def _canonical(x: np.ndarray, modality: str) -> np.ndarray:
    """(N, *shape) -> (N, 256): images averaged over channels and resized to 16x16 (bilinear), sequences
    resampled to 256 steps, tables zero-padded; images and sequences standardised per sample."""
    n = len(x)
    if modality == "image":
        img = x.reshape(n, -1, *x.shape[-2:]).mean(1)  # (N, H, W)
        h, w = img.shape[1:]
        v = (_resize_matrix(h, 16) @ img @ _resize_matrix(w, 16).T).reshape(n, -1)
    elif modality == "sequence":
        seq = x.reshape(n, -1)  # (N, L)
        grid = np.linspace(0, seq.shape[1] - 1, CANON)
        v = np.stack([np.interp(grid, np.arange(seq.shape[1]), s) for s in seq])
    else:
        flat = x.reshape(n, -1)[:, :CANON]  # (N, F)
        return np.pad(flat, ((0, 0), (0, CANON - flat.shape[1])))
    v = v - v.mean(1, keepdims=True)
    return v / np.maximum(v.std(1, keepdims=True), 1e-6)  # (N, 256)


class RandomFeatureEncoder:
    """relu(W v + b) with W, b drawn from a fixed seed: deterministic and weight-free."""

    name = "randfeat"
    dim = 256

    def __init__(self, seed: int = 20250404):
        rng = np.random.default_rng(seed)
        self.w = rng.standard_normal((CANON, self.dim)) / np.sqrt(CANON)  # (256, D)
        self.b = rng.uniform(-1.0, 1.0, self.dim)  # (D,)

    def encode(self, x: np.ndarray, info: DatasetInfo) -> np.ndarray:
        v = _canonical(np.asarray(x, dtype=np.float64), info.modality)  # (N, 256)
        return np.maximum(v @ self.w + self.b, 0.0)  # (N, D)


_ENCODERS: dict[str, Callable[[], SampleEncoder]] = {"randfeat": RandomFeatureEncoder}
_encoder_cache: dict[str, SampleEncoder] = {}


def register_encoder(name: str, factory: Callable[[], SampleEncoder]) -> None:
    """Make a sample encoder available by name (e.g. one wrapping local CLIP weights)."""
    _ENCODERS[name] = factory
    _encoder_cache.pop(name, None)


def get_encoder(name: str | None = None) -> SampleEncoder:
    """The named encoder, else ``$IGPG_ZOO_DATASET_ENCODER``, else ``randfeat``."""
    name = name or os.environ.get(ENCODER_ENV) or "randfeat"
    if name not in _ENCODERS:
        raise ConfigError(f"unknown dataset encoder '{name}'; registered: {', '.join(sorted(_ENCODERS))}")
    if name not in _encoder_cache:
        enc = _ENCODERS[name]()
        if not isinstance(enc, SampleEncoder):
            raise ConfigError(f"dataset encoder '{name}' lacks name / dim / encode()")
        _encoder_cache[name] = enc
    return _encoder_cache[name]


# -- the embedding -------------------------------------------------------------------------------


def _projection(d_in: int, d_out: int, tag: int) -> np.ndarray:
    return np.random.default_rng([d_in, d_out, tag]).standard_normal((d_in, d_out)) / np.sqrt(d_in)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


def sample_per_class(y: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """Per class (label order) the indices of up to ``k`` samples, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(int(y.max()) + 1 if len(y) else 0):
        idx = np.flatnonzero(y == c)
        out.append(idx[rng.permutation(len(idx))[:k]])
    return out


def _text_embedder():
    from igpg_zoo.config import resolve_config
    from igpg_zoo.search.embed import get_embedder

    return get_embedder(resolve_config().embedder)


def text_block(text: str, embedder=None) -> np.ndarray:
    """(384,) unit vector of ``text``; an embedder of another size is folded to 384 dims."""
    embedder = embedder or _text_embedder()
    v = np.asarray(embedder.embed([text]), dtype=np.float64)[0]
    if v.shape[0] != TEXT_DIM:
        v = v @ _projection(v.shape[0], TEXT_DIM, 3)
    return _unit(v)


@dataclass(frozen=True)
class DataBlocks:
    meta: np.ndarray  # (4,)
    global_: np.ndarray  # (64,)
    classes: np.ndarray  # (320,)


def data_blocks(ds: Dataset, samples_per_class: int = 5, encoder: SampleEncoder | None = None) -> DataBlocks:
    """The data-derived blocks (everything but the text), unweighted."""
    encoder = encoder or get_encoder()
    x, y = (ds.x_train, ds.y_train) if len(ds.y_train) else (ds.x_test, ds.y_test)
    if len(y) == 0:
        raise DatasetError(f"dataset '{ds.name}' has no samples to embed")
    picks = sample_per_class(y, samples_per_class)
    chosen = np.concatenate(picks)
    feats = np.asarray(encoder.encode(x[chosen], ds.info), dtype=np.float64)  # (n, F)
    bounds = np.cumsum([0] + [len(p) for p in picks])
    protos = np.stack([feats[a:b].mean(0) if b > a else np.zeros(feats.shape[1])
                       for a, b in zip(bounds[:-1], bounds[1:])])  # (C, F)
    present = bounds[1:] > bounds[:-1]
    mean = protos[present].mean(0)  # (F,)
    per_class = (protos - mean) @ _projection(feats.shape[1], CLASS_DIM, 2)  # (C, 32)
    per_class[~present] = 0.0
    slots = np.zeros((MAX_CLASSES, CLASS_DIM))
    slots[: min(MAX_CLASSES, len(per_class))] = per_class[:MAX_CLASSES]
    meta = np.zeros(4)
    meta[MODALITIES.index(ds.info.modality) if ds.info.modality in MODALITIES else 2] = 1.0
    meta[3] = ds.info.n_classes / MAX_CLASSES
    return DataBlocks(meta, mean @ _projection(feats.shape[1], GLOBAL_DIM, 1), slots.reshape(-1))


def combine(blocks: DataBlocks, text: np.ndarray) -> np.ndarray:
    """Weight the unit-normalised blocks into the (772,) float32 embedding (unit length)."""
    parts = {"meta": blocks.meta, "global": blocks.global_, "classes": blocks.classes, "text": text}
    out = np.zeros(EMBEDDING_DIM)
    for key, (a, b) in LAYOUT.items():
        out[a:b] = WEIGHTS[key] * _unit(np.asarray(parts[key], dtype=np.float64))
    return _unit(out).astype(np.float32)


def embed_dataset(ds: Dataset, samples_per_class: int = 5, encoder: SampleEncoder | str | None = None,
                  text_embedder=None) -> np.ndarray:
    """The (772,) dataset embedding of ``ds`` (layout in the module docstring); deterministic."""
    if isinstance(encoder, str) or encoder is None:
        encoder = get_encoder(encoder)
    return combine(data_blocks(ds, samples_per_class, encoder), text_block(ds.info.description, text_embedder))


# -- by name, cached -------------------------------------------------------------------------------

_memory: dict[str, np.ndarray] = {}


def _cache_key(name: str, encoder: SampleEncoder, text_embedder, samples_per_class: int) -> str:
    raw = f"v{VERSION}|{name}|{encoder.name}|{getattr(text_embedder, 'name', '?')}|{samples_per_class}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def dataset_embedding_for(name: str, samples_per_class: int = 5, encoder: str | None = None,
                          text_embedder=None) -> np.ndarray | None:
    """The embedding of a built-in dataset or generated task by name; None for names it cannot load.

    A trailing ``:train`` / ``:test`` is ignored. Cached in memory and under ``cache_dir()``.
    """
    from igpg_zoo.data.tasks import canonical_name, load_dataset

    try:
        canon = canonical_name(name)
    except DatasetError:
        return None
    enc = get_encoder(encoder)
    text_embedder = text_embedder or _text_embedder()
    key = _cache_key(canon, enc, text_embedder, samples_per_class)
    if key in _memory:
        return _memory[key].copy()
    path = cache_dir() / "dataset-embeddings" / f"{key}.npy"
    try:
        vec = np.load(path, allow_pickle=False)
        if vec.shape != (EMBEDDING_DIM,):
            raise ValueError("stale cache entry")
    except (OSError, ValueError):
        try:
            vec = embed_dataset(load_dataset(canon), samples_per_class, enc, text_embedder)
        except DatasetError:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, vec)
        os.replace(tmp, path)
    _memory[key] = vec
    return vec.copy()
