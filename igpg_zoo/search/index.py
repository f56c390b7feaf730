"""The FAISS index: a cache of the text vectors stored in the database, keyed by checkpoint id.

At or below ``approx_threshold`` live records the index is exact (``IndexFlatIP``); above it, HNSW
(``IndexHNSWFlat``, inner product), whose parameters come from ``bench/registry_bench.py``'s recall
measurement. Both sit in an ``IndexIDMap2`` so FAISS labels are checkpoint ids.

HNSW cannot delete, so removed ids become tombstones (kept in the sidecar, filtered out of every
search) until they exceed a quarter of the stored vectors, when the index is compacted.

Nothing is read before the first call that needs it, and ``faiss`` is imported only then.
Mutations are in memory until ``save()``, which writes the index and then its JSON sidecar, each
through a temporary file, fsync and rename. A missing, unreadable or inconsistent pair of files
makes ``matches()`` False; the Zoo then rebuilds from the vectors in the database.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from igpg_zoo.errors import IntegrityError

FORMAT_VERSION = 1
FLAT, HNSW = "flat", "hnsw"

# HNSW parameters, chosen from the recall measurement in bench/results/registry.md
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 64

BRUTE_FORCE_LIMIT = 4096  # filtered searches over at most this many ids score them directly (exact)
MAX_FILTERED_EF = 4096  # the widest HNSW beam a filtered search uses
COMPACT_FRACTION = 0.25  # compact an HNSW index when tombstones exceed this share of its vectors


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    try:
        fd = os.open(final.parent, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


class VectorIndex:
    """A FAISS index of checkpoint ids -> unit vectors, searched by inner product."""

    def __init__(self, path: Path, dim: int, approx_threshold: int, *, hnsw_m: int = HNSW_M,
                 ef_construction: int = HNSW_EF_CONSTRUCTION, ef_search: int = HNSW_EF_SEARCH):
        self.path = Path(path)
        self.sidecar = self.path.with_name(self.path.name + ".json")
        self.dim = int(dim)
        self.approx_threshold = int(approx_threshold)
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self._loaded = False
        self._index = None  # faiss.IndexIDMap2, or None when missing / invalid
        self._kind = FLAT
        self._dead = np.zeros(0, dtype=np.int64)  # sorted tombstoned ids (HNSW only)
        self._live: np.ndarray | None = None  # sorted live ids, cached

    # -- state ---------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        self._ensure_loaded()
        return self._kind

    def __len__(self) -> int:
        return len(self.ids())

    def ids(self) -> np.ndarray:
        """The live ids, sorted (empty when the index is missing)."""
        self._ensure_loaded()
        if self._index is None:
            return np.zeros(0, dtype=np.int64)
        if self._live is None:
            import faiss

            stored = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            self._live = np.setdiff1d(stored, self._dead, assume_unique=False)
        return self._live

    def matches(self, ids) -> bool:
        """True when the index file is readable, has this dimension and holds exactly these ids."""
        self._ensure_loaded()
        if self._index is None:
            return False
        want = np.unique(_as_ids(ids))
        return len(want) == len(_as_ids(ids)) and np.array_equal(self.ids(), want)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._read()

    def _read(self) -> None:
        import faiss

        try:
            meta = json.loads(self.sidecar.read_text())
            index = faiss.read_index(str(self.path))
            dead = np.asarray(meta.get("tombstones", []), dtype=np.int64)
            ok = (meta.get("format") == FORMAT_VERSION and meta.get("dim") == self.dim == index.d
                  and meta.get("kind") in (FLAT, HNSW) and isinstance(index, faiss.IndexIDMap2)
                  and index.ntotal == meta.get("count", -1) + len(dead))
        except (OSError, ValueError, TypeError, AttributeError, RuntimeError):
            return  # missing or unreadable: matches() is False
        if ok:
            self._index, self._kind, self._dead = index, meta["kind"], np.sort(dead)

    def _require(self):
        self._ensure_loaded()
        if self._index is None:
            raise IntegrityError(
                f"the search index {self.path} is missing or out of step with the database; "
                "run `igpg-zoo reindex`"
            )
        return self._index

    # -- building ------------------------------------------------------------------------------

    def _empty(self, kind: str):
        import faiss

        if kind == HNSW:
            inner = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.ef_construction
            inner.hnsw.efSearch = self.ef_search
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)

    def _check(self, ids: np.ndarray, vectors) -> np.ndarray:
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids given to the index must be distinct")
        return vectors

    def rebuild(self, ids, vectors) -> None:
        """Replace the whole index by these vectors (exact or HNSW by their count)."""
        ids = _as_ids(ids)
        vectors = self._check(ids, vectors)
        kind = HNSW if len(ids) > self.approx_threshold else FLAT
        index = self._empty(kind)
        if len(ids):
            index.add_with_ids(vectors, ids)
        self._loaded = True
        self._index, self._kind = index, kind
        self._dead, self._live = np.zeros(0, dtype=np.int64), None

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """Every live (id, vector) pair, reconstructed from the index."""
        import faiss

        index = self._require()
        stored = faiss.vector_to_array(index.id_map).astype(np.int64)
        vectors = faiss.downcast_index(index.index).reconstruct_n(0, index.ntotal)  # (ntotal, dim)
        keep = ~np.isin(stored, self._dead)
        return stored[keep], vectors[keep]

    def add(self, ids, vectors) -> None:
        """Add new ids; switches to HNSW when the count passes the threshold."""
        ids = _as_ids(ids)
        vectors = self._check(ids, vectors)
        index = self._require()
        if len(ids) == 0:
            return
        if np.isin(ids, self.ids()).any():
            raise IntegrityError(
                f"ids {np.intersect1d(ids, self.ids())[:5].tolist()} are already in the search index; "
                "run `igpg-zoo reindex`"
            )
        if np.isin(ids, self._dead).any():  # an id reused after removal: drop its old vector first
            self.rebuild(*self._stored())
            index = self._index
        if self._kind == FLAT and len(self.ids()) + len(ids) > self.approx_threshold:
            old_ids, old_vectors = self._stored()
            self.rebuild(np.concatenate([old_ids, ids]), np.concatenate([old_vectors, vectors]))
            return
        index.add_with_ids(vectors, ids)
        self._live = None

    def remove(self, ids) -> None:
        """Remove ids (unknown ids are ignored); HNSW tombstones them."""
        import faiss

        index = self._require()
        ids = np.intersect1d(_as_ids(ids), self.ids())
        if len(ids) == 0:
            return
        if self._kind == FLAT:
            index.remove_ids(faiss.IDSelectorBatch(ids))
            self._live = None
            return
        self._dead = np.union1d(self._dead, ids)
        self._live = None
        live = len(self.ids())
        if live <= self.approx_threshold or len(self._dead) > COMPACT_FRACTION * index.ntotal:
            self.rebuild(*self._stored())

    # -- persistence ---------------------------------------------------------------------------

    def save(self) -> None:
        """Write the index, then its sidecar, each atomically (temp file, fsync, rename)."""
        import faiss

        index = self._require()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(index, str(tmp))
            _fsync_replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {"format": FORMAT_VERSION, "dim": self.dim, "kind": self._kind, "count": len(self.ids()),
                "hnsw": {"M": self.hnsw_m, "efConstruction": self.ef_construction} if self._kind == HNSW else None,
                "tombstones": self._dead.tolist()}
        tmp = self.sidecar.with_name(f".{self.sidecar.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(meta))
            _fsync_replace(tmp, self.sidecar)
        finally:
            tmp.unlink(missing_ok=True)

    # -- search --------------------------------------------------------------------------------

    def search(self, q, k: int, allowed=None) -> list[tuple[int, float]]:
        """The k ids with the highest inner product with q, best first, as (id, score) pairs.

        ``allowed``: only these ids may be returned (the ids that pass structured filters).
        """
        import faiss

        index = self._require()
        q = np.ascontiguousarray(np.asarray(q, dtype=np.float32).reshape(1, self.dim))  # (1, dim)
        live = self.ids()
        if k <= 0 or len(live) == 0:
            return []
        selector = None
        if allowed is not None:
            allowed = _as_ids(allowed)
            if len(allowed) <= BRUTE_FORCE_LIMIT:
                return self._score_directly(q[0], np.intersect1d(allowed, live), k)
            if len(self._dead):
                allowed = np.setdiff1d(allowed, self._dead)
            selector = faiss.IDSelectorBatch(allowed)  # unknown ids in it are harmless
        elif len(self._dead):
            batch = faiss.IDSelectorBatch(self._dead)
            selector = faiss.IDSelectorNot(batch)
        if self._kind == HNSW:
            ef = max(self.ef_search, k)
            if allowed is not None:  # a filter hides most of the graph: widen the beam as it narrows
                ef = max(ef, min(MAX_FILTERED_EF, ef * len(live) // max(len(allowed), 1)))
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, labels = index.search(q, min(k, len(live)), params=params)  # (1, k)
        hits = [(int(i), float(s)) for i, s in zip(labels[0], scores[0]) if i >= 0]
        return sorted(hits, key=lambda h: (-h[1], h[0]))

    def _score_directly(self, q: np.ndarray, allowed: np.ndarray, k: int) -> list[tuple[int, float]]:
        if len(allowed) == 0:
            return []
        vectors = self._index.reconstruct_batch(allowed)  # (m, dim)
        scores = vectors @ q  # (m,)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(allowed[i]), float(scores[i])) for i in top]
