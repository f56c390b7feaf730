"""Keeps the FAISS index (a cache) in step with the vectors in the database.

The database is the truth. After a write the index is updated; if that fails, the write stands,
a warning says so and ``reindex`` repairs it. Before the first search of a session the index is
checked against the database ids and rebuilt, with a warning, when it is out of step.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from igpg_zoo.registry.filters import Filters
from igpg_zoo.registry.store import CheckpointStore

OVERFETCH = 20  # a filtered search first takes this many times k of the best unfiltered hits
MIN_CANDIDATES = 200


class SearchCache:
    """The VectorIndex of one registry, opened lazily."""

    def __init__(self, store: CheckpointStore, path: Path, approx_threshold: int):
        self.store = store
        self.path = Path(path)
        self.approx_threshold = approx_threshold
        self._index = None
        self._checked = False  # checked against the database in this session

    def index(self, dim: int):
        from igpg_zoo.search.index import VectorIndex

        if self._index is None or self._index.dim != dim:
            self._index = VectorIndex(self.path, dim, self.approx_threshold)
            self._checked = False
        return self._index

    def synced(self, dim: int):
        """The index, checked against the database once per session and rebuilt when out of step."""
        index = self.index(dim)
        if not self._checked:
            ids = self.store.embedded_ids()
            if not index.matches(ids):
                if len(ids) and (self.path.exists() or self.path.with_name(self.path.name + ".json").exists()):
                    warnings.warn(f"search index {self.path} is out of step with the database; rebuilding it "
                                  f"from the {len(ids)} stored vectors", stacklevel=3)
                self.rebuild(dim)
            self._checked = True
        return index

    def search(self, q: np.ndarray, k: int, filters: Filters) -> list[tuple[int, float]]:
        """The k best (id, score) among records passing ``filters``; call ``synced`` first.

        With filters, the best unfiltered candidates (a few hundred ids) are filtered in SQL; only
        when fewer than k of them pass does the search run within every id that passes the filters,
        which costs a scan of the filter at large sizes.
        """
        index = self._index
        if filters.empty:
            return index.search(q, k, None)
        total = len(index)
        fetch = min(total, max(MIN_CANDIDATES, OVERFETCH * k))
        candidates = index.search(q, fetch, None)
        passing = set(self.store.ids(filters, among=[i for i, _ in candidates]).tolist())
        hits = [h for h in candidates if h[0] in passing][:k]
        if len(hits) == k or fetch >= total:
            return hits
        allowed = self.store.ids(filters)
        return index.search(q, k, allowed) if len(allowed) else []

    def rebuild(self, dim: int | None = None) -> int:
        """Rebuild from the stored vectors and save; returns the number of vectors."""
        ids, vectors = self.store.vectors()
        dim = int(vectors.shape[1]) if len(ids) else dim
        if dim is None:
            return 0
        index = self.index(dim)
        index.rebuild(ids, vectors)
        index.save()
        self._checked = True
        return len(ids)

    def after_add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self._guarded(lambda: self._add(np.asarray(ids, dtype=np.int64), vectors))

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        index = self.index(int(vectors.shape[1]))
        before = np.setdiff1d(self.store.embedded_ids(), ids)
        if index.matches(before):
            index.add(ids, vectors)
            index.save()
        else:
            self.rebuild()
        self._checked = True

    def after_remove(self, checkpoint_id: int) -> None:
        self._guarded(lambda: self._remove(int(checkpoint_id)))

    def _remove(self, checkpoint_id: int) -> None:
        dim = self.store.dim() or (self._index.dim if self._index is not None else None)
        if dim is None:  # the registry holds no vectors any more
            if self._index is not None and self._index.matches([checkpoint_id]):
                self._index.remove([checkpoint_id])
                self._index.save()
            return
        index = self.index(dim)
        after = self.store.embedded_ids()
        if index.matches(np.union1d(after, [checkpoint_id])):
            index.remove([checkpoint_id])
            index.save()
        else:
            self.rebuild()
        self._checked = True

    def _guarded(self, update) -> None:
        try:
            update()
        except Exception as err:  # the database is right; the cache can be rebuilt
            self._index, self._checked = None, False
            warnings.warn(f"search index {self.path} was not updated ({type(err).__name__}: {err}); "
                          "the database is right, run 'igpg-zoo reindex'", stacklevel=4)

    def problems(self) -> list[str]:
        """What is wrong between the database vectors and the index file (for ``verify``)."""
        ids = self.store.embedded_ids()
        dim = self.store.dim()
        if dim is None:
            return []
        from igpg_zoo.search.index import VectorIndex

        index = VectorIndex(self.path, dim, self.approx_threshold)
        if index.matches(ids):
            return []
        if not self.path.exists():
            return [f"search index {self.path} is missing; run 'igpg-zoo reindex'"]
        have = index.ids()
        extra, missing = np.setdiff1d(have, ids), np.setdiff1d(ids, have)
        return [f"search index {self.path} is out of step with the database ({len(missing)} record(s) missing "
                f"from it, {len(extra)} unknown id(s) in it); run 'igpg-zoo reindex'"]
