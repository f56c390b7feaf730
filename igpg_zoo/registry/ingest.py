"""Turning (weights, metadata) into what the store inserts: validated, canonical, embedded.

``Ingest`` keeps per-call caches (adapter, validated key/shape signature and description per
architecture, dataset vectors per dataset) and embeds only texts it has not seen, in one batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from igpg_zoo.errors import ConfigError, InvalidMetadata, ZooError
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.registry import metadata
from igpg_zoo.registry.store import CheckpointStore, NewCheckpoint

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Prepared:
    """One validated checkpoint before embedding: its blob bytes and everything but the text vector."""

    meta: CheckpointMeta
    data: bytes  # canonical safetensors bytes
    sha256: str
    n_params: int
    identity: str
    text: str
    text_sha: str
    dataset_vector: np.ndarray | None

    def with_vector(self, embedder: str, vector: np.ndarray) -> NewCheckpoint:
        return NewCheckpoint(
            meta=self.meta, name=metadata.default_name(self.meta), n_params=self.n_params, sha256=self.sha256,
            size_bytes=len(self.data), identity=self.identity, embedder=embedder, text=self.text,
            text_sha=self.text_sha, text_vector=vector, dataset_vector=self.dataset_vector,
        )


def record_text(task: str, dataset: str, description: str) -> str:
    """The text embedded for a record: task, dataset, then the adapter's description."""
    return f"task: {task}; dataset: {dataset}; {description}"


def _dataset_vector(name: str, embedder) -> np.ndarray | None:
    if not name:
        return None
    try:
        from igpg_zoo.data.embedding import dataset_embedding_for
    except (ImportError, AttributeError):
        return None
    try:
        vector = dataset_embedding_for(name, text_embedder=embedder)
    except ZooError:  # an unknown (user) dataset simply has no dataset embedding
        return None
    return None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1)


def read_for_add(adapter: Any, path: Path) -> dict[str, torch.Tensor] | dict[str, np.ndarray]:
    """The weights of a file to add: numpy arrays where that is exact and cheap (a ``.safetensors``
    file, an adapter that reads files the default way), else the adapter's own reader."""
    from igpg_zoo.adapters.base import Adapter
    from igpg_zoo.registry.checkpoint_io import read_arrays

    path = Path(path)
    if type(adapter).read_weights is Adapter.read_weights and path.suffix.lower() == ".safetensors":
        arrays = read_arrays(path)
        if arrays is not None:
            return arrays
    return adapter.read_weights(path)


def _has_arrays(weights: dict) -> bool:
    return any(isinstance(v, np.ndarray) for v in weights.values())


class Ingest:
    """Prepares checkpoints for one ``add``/``add_many`` call."""

    def __init__(self, store: CheckpointStore, embedder: Callable[[], object]):
        self.store = store
        self._embedder = embedder  # called only when a text needs embedding
        self._adapters: dict[str, object] = {}
        self._signatures: dict[str, dict[str, tuple[int, ...]]] = {}
        self._descriptions: dict[str, str] = {}
        self._datasets: dict[str, np.ndarray | None] = {}
        self._vectors: dict[str, np.ndarray] = {}  # text sha -> vector

    def prepare(self, weights: dict[str, torch.Tensor], meta: CheckpointMeta) -> Prepared:
        from igpg_zoo.registry.checkpoint_io import canonical_bytes, n_params, sha256, strip_prefixes

        if not isinstance(meta, CheckpointMeta):
            raise InvalidMetadata(f"metadata must be a CheckpointMeta, got {type(meta).__name__}")
        meta = metadata.validate(meta)
        # one spelling per architecture (e.g. smallnet drops the default activation), so filters match
        meta = replace(meta, arch=self._adapter(meta.arch).canonical_arch(meta.arch))
        if not isinstance(weights, dict) or not weights:
            raise InvalidMetadata("weights must be a non-empty dict of tensor name -> tensor")
        weights = strip_prefixes(weights)
        self._validate(weights, meta.arch)
        data = canonical_bytes(weights)
        digest = sha256(data)
        text = record_text(meta.task, meta.dataset, self._describe(meta.arch))
        if meta.dataset_embedding is not None:
            dataset_vector = np.asarray(meta.dataset_embedding, dtype=np.float32)
        else:
            if meta.dataset not in self._datasets:
                self._datasets[meta.dataset] = _dataset_vector(meta.dataset, self._embedder())
            dataset_vector = self._datasets[meta.dataset]
        return Prepared(
            meta=replace(meta, dataset_embedding=None), data=data, sha256=digest, n_params=n_params(weights),
            identity=metadata.identity(digest, meta), text=text,
            text_sha=hashlib.sha256(text.encode()).hexdigest(), dataset_vector=dataset_vector,
        )

    def _adapter(self, arch: str):
        if arch not in self._adapters:
            from igpg_zoo.adapters import get_adapter

            self._adapters[arch] = get_adapter(arch)
        return self._adapters[arch]

    def _validate(self, weights: dict[str, torch.Tensor] | dict[str, np.ndarray], arch: str) -> None:
        signature = {k: tuple(v.shape) for k, v in weights.items()}
        if self._signatures.get(arch) == signature and not _has_arrays(weights):
            return  # same keys and shapes as weights already validated for this arch
        if _has_arrays(weights):  # read without torch: check against the architecture's cached signature
            from igpg_zoo.registry.arch_signatures import expected, fits

            if fits(expected(self._adapter(arch), arch), weights):
                self._signatures[arch] = signature
                return
        from igpg_zoo.adapters.validation import validate_weights
        from igpg_zoo.registry.checkpoint_io import as_tensors

        validate_weights(self._adapter(arch), arch, as_tensors(weights))  # raises with the one-line reason
        self._signatures[arch] = signature

    def _describe(self, arch: str) -> str:
        if arch not in self._descriptions:
            self._descriptions[arch] = self._adapter(arch).describe(arch)
        return self._descriptions[arch]

    def embed(self, items: list[Prepared]) -> list[NewCheckpoint]:
        """Text vectors for prepared items: from memory, then the database, then one embedding batch."""
        if not items:
            return []
        embedder = self._embedder()
        self._check_embedder(embedder)
        wanted = {p.text_sha: p.text for p in items if p.text_sha not in self._vectors}
        if wanted:
            self._vectors.update(self.store.cached_vectors(wanted, embedder.name))
        missing = {sha: text for sha, text in wanted.items() if sha not in self._vectors}
        if missing:
            vectors = np.asarray(embedder.embed(list(missing.values())), dtype=np.float32)  # (m, dim)
            self._vectors.update(zip(missing, vectors, strict=True))
        return [p.with_vector(embedder.name, self._vectors[p.text_sha]) for p in items]

    def _check_embedder(self, embedder) -> None:
        if getattr(self, "_embedder_checked", False):
            return
        others = sorted(set(self.store.embedders()) - {embedder.name})
        if others:
            raise ConfigError(
                f"the registry's vectors come from embedder {', '.join(others)}, not {embedder.name}; "
                "use the same embedder (IGPG_ZOO_EMBEDDER) or run 'igpg-zoo reindex --reembed'"
            )
        self._embedder_checked = True
