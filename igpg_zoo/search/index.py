"""The FAISS index: a cache of the text vectors stored in the database, keyed by checkpoint id.

Records that share a text (seeds and sweeps of one configuration) have identical vectors, so FAISS
holds each distinct vector once, labelled by a *group*; a table maps checkpoint ids to groups.
Identical points would otherwise crowd HNSW's neighbour lists, lowering recall and slowing the build.

At or below ``approx_threshold`` distinct vectors the index is exact (``IndexFlatIP``); above it,
HNSW (``IndexHNSWFlat``, inner product); both in an ``IndexIDMap2`` whose labels are group ids.
The threshold counts vectors, not records, because vectors are what a search scans.
HNSW cannot delete, so a group left without records becomes a tombstone (filtered out of every
search) until tombstones exceed a quarter of the stored vectors, when the index is compacted.
A filtered search (``allowed`` ids) is exact unless the filter passes more than ``EXACT_SCAN_LIMIT``
vectors of an HNSW index: a few thousand allowed vectors are scored directly, up to that limit FAISS
scans its stored vectors scoring only the allowed ones, and a broader filter searches the graph with an
ID selector and a beam widened as the filter narrows.

Nothing is read before the first call that needs it, and ``faiss`` is imported only then.
Mutations are in memory until ``save()``, which writes the index's files atomically
(``index_files.py``). A missing, unreadable or inconsistent set of files makes ``matches()`` False;
the Zoo then rebuilds from the vectors in the database.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from igpg_zoo.errors import IntegrityError
from igpg_zoo.search.allowed import VECTORS_BYTES, Allowed, KeptFilters, best
from igpg_zoo.search.allowed import prepare as prepare_allowed
from igpg_zoo.search.faiss_storage import one_thread, stored_labels, stored_vectors
from igpg_zoo.search.index_files import FLAT, HNSW, IndexFiles

# HNSW parameters, chosen from the recall measurement (`python -m bench registry`)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 256  # recall@10 0.985 on 8k distinct hash vectors (0.895 at 64), 0.3 ms a query

BRUTE_FORCE_LIMIT = 4096  # filtered searches over at most this many vectors score them directly (exact)
# On HNSW, a filter passing at most this many vectors is searched exactly: a scan of the stored vectors
# that scores only the allowed ones (a bitmap selector). A filter hides part of the graph, so an HNSW
# beam wide enough to find k allowed vectors costs more than scoring them (and misses some).
EXACT_SCAN_LIMIT = 65_536
MAX_FILTERED_EF = 4096  # the widest HNSW beam a filtered search uses (broad filters)
COMPACT_FRACTION = 0.25  # compact an HNSW index when tombstones exceed this share of its vectors


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def _digest(row: np.ndarray) -> bytes:
    return hashlib.blake2b(row.tobytes(), digest_size=16).digest()


class VectorIndex:
    """A FAISS index of checkpoint ids -> unit vectors, searched by inner product."""

    def __init__(self, path: Path, dim: int, approx_threshold: int, *, hnsw_m: int = HNSW_M,
                 ef_construction: int = HNSW_EF_CONSTRUCTION, ef_search: int = HNSW_EF_SEARCH):
        self.path = Path(path)
        self.files = IndexFiles(self.path)
        self.dim = int(dim)
        self.approx_threshold = int(approx_threshold)
        self.hnsw_m, self.ef_construction, self.ef_search = hnsw_m, ef_construction, ef_search
        self._loaded = False
        self._stamp = None  # the files' stamp when read or written (IndexFiles.stamp)
        self._index = None  # faiss.IndexIDMap2 labelled by group, or None when missing / invalid
        self._kind = FLAT
        self._ids = np.zeros(0, dtype=np.int64)  # sorted live checkpoint ids
        self._group = np.zeros(0, dtype=np.int64)  # the group of each id
        self._dead = np.zeros(0, dtype=np.int64)  # sorted tombstoned groups (HNSW only)
        self._members = None  # (order, sorted groups): ids of a group, cached
        self._row_of: np.ndarray | None = None  # id -> row, for dense ids, cached
        self._label_pos: np.ndarray | None = None  # group label -> position in FAISS storage, cached
        self._stored: np.ndarray | None = None  # position in FAISS storage -> group label, cached
        self._by_digest: dict[bytes, int] | None = None  # vector digest -> group, built on first add
        self._kept = KeptFilters()  # recent filters' allowed ids, prepared (search/allowed.py)

    # -- state ---------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        self._ensure_loaded()
        return self._kind

    @property
    def valid(self) -> bool:
        """Whether the index is usable: its files were read and are consistent, or it was (re)built."""
        self._ensure_loaded()
        return self._index is not None

    def __len__(self) -> int:
        return len(self.ids())

    def ids(self) -> np.ndarray:
        """The live ids, sorted (empty when the index is missing)."""
        self._ensure_loaded()
        return self._ids

    def matches(self, ids) -> bool:
        """True when the index files are readable, have this dimension and hold exactly these ids."""
        self._ensure_loaded()
        if self._index is None:
            return False
        given = _as_ids(ids)
        want = np.unique(given)
        return len(want) == len(given) and np.array_equal(self._ids, want)

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            self._read()

    def refresh(self) -> None:
        """Read the files again if another process replaced them since this one read or wrote them."""
        if self._loaded and self.files.stamp() != self._stamp:
            self._loaded, self._index = False, None

    def _read(self) -> None:
        self._stamp = self.files.stamp()
        found = self.files.read(self.dim)
        if found is not None:  # else missing or inconsistent: matches() is False
            self._set(*found)

    def _set(self, index, kind: str, ids: np.ndarray, groups: np.ndarray, dead: np.ndarray) -> None:
        self._index, self._kind, self._ids, self._group, self._dead = index, kind, ids, groups, dead
        self._forget()
        self._by_digest = None

    def _forget(self) -> None:
        """Drop the caches derived from the table and the FAISS storage (after any change)."""
        self._members = self._row_of = self._label_pos = self._stored = None
        self._kept.clear()

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

    def _kind_for(self, n_vectors: int) -> str:
        """Exact up to the threshold of distinct vectors (what a search costs), HNSW above it."""
        return HNSW if n_vectors > self.approx_threshold else FLAT

    def _live_vectors(self) -> int:
        return int(self._index.ntotal) - len(self._dead)

    def rebuild(self, ids, vectors) -> None:
        """Replace the whole index by these vectors (exact or HNSW by their count)."""
        ids = _as_ids(ids)
        vectors = self._check(ids, vectors)
        by_digest: dict[bytes, int] = {}
        groups = np.fromiter((by_digest.setdefault(_digest(v), len(by_digest)) for v in vectors),
                             dtype=np.int64, count=len(ids))
        first = np.unique(groups, return_index=True)[1]  # the first row of each group
        self._build(self._kind_for(len(first)), np.arange(len(first), dtype=np.int64), vectors[first])
        order = np.argsort(ids, kind="stable")
        self._loaded = True
        self._ids, self._group, self._by_digest = ids[order], groups[order], by_digest
        self._forget()

    def _build(self, kind: str, labels: np.ndarray, vectors: np.ndarray) -> None:
        index = self._empty(kind)
        if len(labels):
            index.add_with_ids(vectors, labels)
        self._index, self._kind, self._dead = index, kind, np.zeros(0, dtype=np.int64)
        self._forget()

    def _rebuild_groups(self, kind: str) -> None:
        """The same live groups in a fresh index of ``kind`` (drops tombstones)."""
        labels = np.unique(self._group)
        vectors = self._index.reconstruct_batch(labels) if len(labels) else np.zeros((0, self.dim), np.float32)
        self._build(kind, labels, vectors)
        self._by_digest = None

    def _digests(self) -> dict[bytes, int]:
        if self._by_digest is None:
            vectors = stored_vectors(self._index, self.dim)
            self._by_digest = {_digest(v): int(g) for g, v in zip(stored_labels(self._index), vectors)}
        return self._by_digest

    def add(self, ids, vectors) -> None:
        """Add new ids; switches to HNSW when the count passes the threshold."""
        ids = _as_ids(ids)
        vectors = self._check(ids, vectors)
        index = self._require()
        if len(ids) == 0:
            return
        if np.isin(ids, self._ids).any():
            raise IntegrityError(
                f"ids {np.intersect1d(ids, self._ids)[:5].tolist()} are already in the search index; "
                "run `igpg-zoo reindex`"
            )
        by_digest = self._digests()
        next_label = int(max(by_digest.values(), default=-1)) + 1
        groups, new_rows = np.empty(len(ids), dtype=np.int64), []
        for row, v in enumerate(vectors):
            key = _digest(v)
            if key not in by_digest:
                by_digest[key] = next_label
                next_label += 1
                new_rows.append(row)
            groups[row] = by_digest[key]
        if new_rows:
            index.add_with_ids(vectors[new_rows], groups[new_rows])
        self._dead = np.setdiff1d(self._dead, groups)  # a tombstoned vector shared again is live again
        all_ids, all_groups = np.concatenate([self._ids, ids]), np.concatenate([self._group, groups])
        order = np.argsort(all_ids, kind="stable")
        self._ids, self._group = all_ids[order], all_groups[order]
        self._forget()
        if self._kind != self._kind_for(self._live_vectors()):
            self._rebuild_groups(self._kind_for(self._live_vectors()))

    def remove(self, ids) -> None:
        """Remove ids (unknown ids are ignored); a vector no record uses any more goes (HNSW: tombstone)."""
        import faiss

        index = self._require()
        gone = np.isin(self._ids, _as_ids(ids))
        if not gone.any():
            return
        emptied = np.setdiff1d(self._group[gone], self._group[~gone])
        self._ids, self._group = self._ids[~gone], self._group[~gone]
        self._forget()
        if self._kind == FLAT:
            if len(emptied):
                index.remove_ids(faiss.IDSelectorBatch(emptied))
                self._by_digest = None
            return
        self._dead = np.union1d(self._dead, emptied)
        if self._kind_for(self._live_vectors()) == FLAT:
            self._rebuild_groups(FLAT)
        elif len(self._dead) > COMPACT_FRACTION * index.ntotal:
            self._rebuild_groups(HNSW)

    # -- persistence ---------------------------------------------------------------------------

    def save(self) -> None:
        """Write the index, the id table and the sidecar that vouches for both (index_files.py)."""
        index = self._require()
        hnsw = {"M": self.hnsw_m, "efConstruction": self.ef_construction} if self._kind == HNSW else None
        self.files.write(index, self._kind, self._ids, self._group, self._dead, self.dim, hnsw)
        self._stamp = self.files.stamp()

    # -- search --------------------------------------------------------------------------------

    def search(self, q, k: int, allowed=None, key=None) -> list[tuple[int, float]]:
        """The k ids with the highest inner product with q, best first, as (id, score) pairs.

        ``allowed``: only these ids may be returned (the ids that pass structured filters); ``key``
        (hashable, e.g. the filter) names them, so what they mean in the index is prepared once
        and kept for the next searches with the same key until the index changes.
        Ties (records sharing a vector) come in ascending id order.
        """
        import faiss

        index = self._require()
        q = np.ascontiguousarray(np.asarray(q, dtype=np.float32).reshape(1, self.dim))  # (1, dim)
        if k <= 0 or len(self._ids) == 0:
            return []
        mask = selector = None
        n_groups = index.ntotal - len(self._dead)
        if allowed is not None:
            prep = self._allowed(allowed, key)
            if prep is None:
                return []
            mask, labels = prep.mask, prep.labels
            if prep.vectors is not None or len(labels) <= BRUTE_FORCE_LIMIT:
                vectors = prep.vectors if prep.vectors is not None else self._vectors_of(labels)
                scores = np.einsum("gd,d->g", vectors, q[0])  # (g,), no BLAS threads
                return self._expand(*best(labels, scores, k), k, mask)
            if self._kind == HNSW and len(labels) <= EXACT_SCAN_LIMIT:
                return self._expand(*self._scan(q, min(k, len(labels)), prep), k, mask)
            selector = faiss.IDSelectorBatch(labels)
            n_groups = len(labels)
        elif len(self._dead):
            dead = faiss.IDSelectorBatch(self._dead)
            selector = faiss.IDSelectorNot(dead)
        kk = min(k, n_groups)  # every group holds at least one wanted id
        if self._kind == HNSW:
            ef = max(self.ef_search, kk)
            if mask is not None:  # a filter hides most of the graph: widen the beam as it narrows
                ef = max(ef, min(MAX_FILTERED_EF, ef * (index.ntotal - len(self._dead)) // n_groups))
            params = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=selector)
        with one_thread():
            scores, labels = index.search(q, kk, params=params)  # (1, kk)
        found = labels[0] >= 0
        return self._expand(labels[0][found], scores[0][found], k, mask)

    def _allowed(self, allowed, key) -> Allowed | None:
        """The allowed ids in the index's terms (None: none is live); kept under ``key`` when given,
        with the groups' vectors gathered once when they are few enough."""
        if key is not None:
            try:
                return self._kept.get(key)
            except KeyError:
                pass
        prep = prepare_allowed(self._rows(_as_ids(allowed)), len(self._ids), self._group)
        if key is not None:
            if prep is not None and len(prep.labels) * self.dim * 4 <= VECTORS_BYTES:
                prep.vectors = self._vectors_of(prep.labels)
            self._kept.put(key, prep)
        return prep

    def _scan(self, q: np.ndarray, k: int, prep: Allowed) -> tuple[np.ndarray, np.ndarray]:
        """Exact search of the HNSW index's stored vectors, scoring only the allowed groups: (groups,
        scores) best first."""
        import faiss

        flat = faiss.downcast_index(faiss.downcast_index(self._index.index).storage)
        if prep.bitmap is None:
            bits = np.zeros(self._index.ntotal, dtype=bool)
            bits[self._positions(prep.labels)] = True
            prep.bitmap = np.packbits(bits, bitorder="little")  # must outlive the search: FAISS reads it in place
        params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(self._index.ntotal, faiss.swig_ptr(prep.bitmap)))
        with one_thread():
            scores, found = flat.search(q, k, params=params)  # (1, k) storage positions
        kept = found[0] >= 0
        return self._stored_labels()[found[0][kept]], scores[0][kept]

    def _stored_labels(self) -> np.ndarray:
        """The group label of each position in FAISS's storage."""
        if self._stored is None:
            self._stored = stored_labels(self._index)
        return self._stored

    def _positions(self, labels: np.ndarray) -> np.ndarray:
        """Positions in FAISS's storage of these group labels."""
        if self._label_pos is None:
            stored = self._stored_labels()
            self._label_pos = np.full(int(stored.max(initial=-1)) + 1, -1, dtype=np.int64)
            self._label_pos[stored] = np.arange(len(stored))
        return self._label_pos[labels]

    def _vectors_of(self, labels: np.ndarray) -> np.ndarray:
        """The stored vectors of these groups, gathered from FAISS's own storage (no per-vector calls)."""
        return stored_vectors(self._index, self.dim)[self._positions(labels)]  # (g, dim), a copy

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        """Row numbers of the given ids among the live ones (unknown ids dropped)."""
        top = int(self._ids[-1])
        if 0 <= self._ids[0] and top <= 4 * len(self._ids) + 1024:  # dense ids: a lookup table
            if self._row_of is None:
                self._row_of = np.full(top + 1, -1, dtype=np.int64)
                self._row_of[self._ids] = np.arange(len(self._ids))
            ids = ids[(ids >= 0) & (ids <= top)]
            rows = self._row_of[ids]
            return rows[rows >= 0]
        rows = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
        return rows[self._ids[rows] == ids]

    def _expand(self, groups: np.ndarray, scores: np.ndarray, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        """Groups (best first) with their scores -> their (allowed) ids, the groups taken until k ids are
        collected; best first, ties in ascending id order."""
        if self._members is None:
            order = np.argsort(self._group, kind="stable")
            self._members = (order, self._group[order])
        order, sorted_groups = self._members
        groups = np.asarray(groups, dtype=np.int64)
        lo, hi = np.searchsorted(sorted_groups, groups), np.searchsorted(sorted_groups, groups, side="right")
        counts = hi - lo
        nth = np.repeat(np.arange(len(groups)), counts)  # which ranked group each member row belongs to
        rows = order[np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(len(nth))]
        if mask is not None:
            rows, nth = rows[mask[rows]], nth[mask[rows]]
        if len(rows) > k:  # every row of the group holding the k-th id, none after it
            keep = nth <= nth[k - 1]
            rows, nth = rows[keep], nth[keep]
        ids, score = self._ids[rows], np.asarray(scores, dtype=np.float64)[nth]
        top = np.lexsort((ids, -score))[:k]
        return [(int(i), float(s)) for i, s in zip(ids[top], score[top])]

